//! The two ways WeCom logs a member in (SPEC §4): in-client OAuth inside the
//! WeCom client (silent `snsapi_base`, or `snsapi_privateinfo` with the
//! member's consent for the mobile number), and the web / QR login elsewhere.

use super::browser::BrowserInfo;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginFlow {
    InClient,
    Web,
}

impl LoginFlow {
    /// In-client OAuth inside the WeCom client, web login elsewhere.
    pub fn for_browser(browser: &BrowserInfo) -> Self {
        if browser.client.is_wecom() {
            LoginFlow::InClient
        } else {
            LoginFlow::Web
        }
    }
}

/// What an in-client login asks WeCom for (doc 91022).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum InClientScope {
    /// `snsapi_base` (静默授权): no page, the userid only. Enough for a member
    /// already bound; one not bound yet is asked again with
    /// [`InClientScope::PrivateInfo`].
    Base,
    /// `snsapi_privateinfo` (手动授权): the member confirms on WeCom's page;
    /// the code yields a `user_ticket` for the mobile number. The typed
    /// `authorize-url` asks for it (its caller has no second round).
    #[default]
    PrivateInfo,
}

impl InClientScope {
    /// WeCom's name for it, as [`InClientScope::name`] gives it.
    pub fn parse(name: &str) -> Option<Self> {
        [InClientScope::Base, InClientScope::PrivateInfo]
            .into_iter()
            .find(|scope| scope.name() == name)
    }

    /// The `scope` parameter of WeCom's OAuth URL.
    pub fn name(self) -> &'static str {
        match self {
            InClientScope::Base => "snsapi_base",
            InClientScope::PrivateInfo => "snsapi_privateinfo",
        }
    }
}

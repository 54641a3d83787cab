//! The two ways WeCom logs a member in (SPEC §4): in-client OAuth inside the
//! WeCom client (`snsapi_privateinfo`, yields the mobile number), and the
//! web / QR login elsewhere.

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

//! What the simulator serves, by path, and the per-endpoint call counters.

use std::sync::atomic::{AtomicU64, Ordering};

/// One of the simulator's endpoints: the server API calls and the two
/// browser login pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Endpoint {
    /// `GET /cgi-bin/gettoken?corpid=&corpsecret=`
    GetToken,
    /// `GET /cgi-bin/auth/getuserinfo?access_token=&code=`
    GetUserInfo,
    /// `GET /cgi-bin/user/getuserinfo?access_token=&code=` (legacy, capitalised fields)
    LegacyGetUserInfo,
    /// `POST /cgi-bin/auth/getuserdetail?access_token=` body `{"user_ticket":".."}`
    GetUserDetail,
    /// `GET /cgi-bin/user/get?access_token=&userid=`
    UserGet,
    /// `GET /cgi-bin/agent/get?access_token=&agentid=` (doc 90227)
    AgentGet,
    /// `GET /cgi-bin/department/simplelist?access_token=[&id=]` (doc 95350)
    DepartmentSimpleList,
    /// `GET /cgi-bin/tag/get?access_token=&tagid=` (doc 90213)
    TagGet,
    /// `GET /cgi-bin/tag/list?access_token=` (doc 90216)
    TagList,
    /// `POST /cgi-bin/user/list_id?access_token=` body `{"cursor":"..","limit":N}` (doc 96067)
    UserListId,
    /// `GET /connect/oauth2/authorize` (in-client OAuth page, `open.weixin.qq.com`)
    OAuthPage,
    /// `GET /wwlogin/sso/login` (web / QR login page, `login.work.weixin.qq.com`)
    WebLoginPage,
    /// `GET /node/open/js/wecom-jssdk-2.0.2.js` (the JS-SDK on `wwcdn.weixin.qq.com`):
    /// a stand-in that draws the login panel (`ww.createWWLoginPanel`) from
    /// this simulator's web login page.
    LoginPanelScript,
}

impl Endpoint {
    /// Every endpoint, in declaration order.
    pub const ALL: [Endpoint; 13] = [
        Endpoint::GetToken,
        Endpoint::GetUserInfo,
        Endpoint::LegacyGetUserInfo,
        Endpoint::GetUserDetail,
        Endpoint::UserGet,
        Endpoint::AgentGet,
        Endpoint::DepartmentSimpleList,
        Endpoint::TagGet,
        Endpoint::TagList,
        Endpoint::UserListId,
        Endpoint::OAuthPage,
        Endpoint::WebLoginPage,
        Endpoint::LoginPanelScript,
    ];

    /// The path WeCom serves it at.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::GetToken => "/cgi-bin/gettoken",
            Endpoint::GetUserInfo => "/cgi-bin/auth/getuserinfo",
            Endpoint::LegacyGetUserInfo => "/cgi-bin/user/getuserinfo",
            Endpoint::GetUserDetail => "/cgi-bin/auth/getuserdetail",
            Endpoint::UserGet => "/cgi-bin/user/get",
            Endpoint::AgentGet => "/cgi-bin/agent/get",
            Endpoint::DepartmentSimpleList => "/cgi-bin/department/simplelist",
            Endpoint::TagGet => "/cgi-bin/tag/get",
            Endpoint::TagList => "/cgi-bin/tag/list",
            Endpoint::UserListId => "/cgi-bin/user/list_id",
            Endpoint::OAuthPage => "/connect/oauth2/authorize",
            Endpoint::WebLoginPage => "/wwlogin/sso/login",
            Endpoint::LoginPanelScript => "/node/open/js/wecom-jssdk-2.0.2.js",
        }
    }

    /// The endpoint served at `path`, if any.
    pub fn from_path(path: &str) -> Option<Endpoint> {
        Endpoint::ALL.into_iter().find(|e| e.path() == path)
    }

    /// A server API call (JSON under `/cgi-bin`), as opposed to a browser page.
    pub fn is_api(self) -> bool {
        !matches!(
            self,
            Endpoint::OAuthPage | Endpoint::WebLoginPage | Endpoint::LoginPanelScript
        )
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Calls per endpoint, counted on arrival (faulted calls included).
#[derive(Debug, Default)]
pub(crate) struct Counters([AtomicU64; Endpoint::ALL.len()]);

impl Counters {
    pub(crate) fn hit(&self, endpoint: Endpoint) {
        self.0[endpoint.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn get(&self, endpoint: Endpoint) -> u64 {
        self.0[endpoint.index()].load(Ordering::Relaxed)
    }

    pub(crate) fn reset(&self) {
        for counter in &self.0 {
            counter.store(0, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_round_trip_and_indices_fit() {
        for (i, endpoint) in Endpoint::ALL.into_iter().enumerate() {
            assert_eq!(endpoint.index(), i);
            assert_eq!(Endpoint::from_path(endpoint.path()), Some(endpoint));
        }
        assert_eq!(Endpoint::from_path("/cgi-bin/gettoken/"), None);
        assert_eq!(Endpoint::from_path("/wwopen/sso/qrConnect"), None);
        assert!(Endpoint::UserGet.is_api() && !Endpoint::OAuthPage.is_api());
    }

    #[test]
    fn counters_count_and_reset() {
        let counters = Counters::default();
        counters.hit(Endpoint::GetToken);
        counters.hit(Endpoint::GetToken);
        counters.hit(Endpoint::WebLoginPage);
        assert_eq!(counters.get(Endpoint::GetToken), 2);
        assert_eq!(counters.get(Endpoint::WebLoginPage), 1);
        assert_eq!(counters.get(Endpoint::UserGet), 0);
        counters.reset();
        assert_eq!(counters.get(Endpoint::GetToken), 0);
    }
}

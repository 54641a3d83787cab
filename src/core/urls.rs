//! The URLs WeCom and the admin see: in-client OAuth, web login, callback and
//! homepage links.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use url::form_urlencoded;

use super::browser::Language;
use super::flow::InClientScope;
use super::settings::Authenticator;

/// What `encodeURIComponent` leaves alone, and nothing more.
const URI_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

pub fn encode_component(value: &str) -> String {
    utf8_percent_encode(value, URI_COMPONENT).to_string()
}

/// Where WeCom sends the browser back with `code` and `state`.
pub fn callback_url(authenticator: &Authenticator) -> String {
    format!(
        "{}{}/callback",
        authenticator.origin, authenticator.route_prefix
    )
}

/// In-client OAuth with `scope` (doc 91022): `snsapi_base` is silent,
/// `snsapi_privateinfo` asks the member's consent and yields the mobile
/// number. `agentid` is required for the latter (sent with both) and
/// `#wechat_redirect` for the link.
pub fn in_client_oauth_url(
    authenticator: &Authenticator,
    state: &str,
    scope: InClientScope,
) -> String {
    format!(
        "{base}/connect/oauth2/authorize?appid={appid}&redirect_uri={redirect}&response_type=code&scope={scope}&state={state}&agentid={agentid}#wechat_redirect",
        base = authenticator.oauth_base,
        appid = encode_component(&authenticator.corp_id),
        redirect = encode_component(&callback_url(authenticator)),
        scope = scope.name(),
        state = encode_component(state),
        agentid = encode_component(&authenticator.agent_id),
    )
}

/// Web login (QR code, or one click with a signed-in desktop client).
pub fn web_login_url(
    authenticator: &Authenticator,
    state: &str,
    language: Option<Language>,
) -> String {
    let mut url = format!(
        "{base}/wwlogin/sso/login?login_type=CorpApp&appid={appid}&agentid={agentid}&redirect_uri={redirect}&state={state}",
        base = authenticator.sso_base,
        appid = encode_component(&authenticator.corp_id),
        agentid = encode_component(&authenticator.agent_id),
        redirect = encode_component(&callback_url(authenticator)),
        state = encode_component(state),
    );
    if let Some(language) = language {
        url.push_str("&lang=");
        url.push_str(language.code());
    }
    url
}

/// The parameters of WeCom's login panel (`ww.createWWLoginPanel`, doc
/// 98478) for a web login, named as the JS-SDK names them: the web login
/// URL's, and how the panel ends. With `redirect_type` `callback` the panel
/// hands the code to the page (`onLoginSuccess({code})`), which goes to
/// `redirect_uri?code=..&state=..`: the callback, as after a redirect.
/// `top` would have WeCom's frame move the top window, which browsers block
/// for a cross-origin frame without a click of the member's.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LoginPanelParams<'a> {
    pub login_type: &'static str,
    pub appid: &'a str,
    pub agentid: &'a str,
    /// [`callback_url`], not encoded (the SDK encodes it).
    pub redirect_uri: String,
    pub state: &'a str,
    pub redirect_type: &'static str,
    /// `small`: 320 × 380 px, within the login page's column.
    pub panel_size: &'static str,
    pub lang: &'static str,
}

pub fn login_panel_params<'a>(
    authenticator: &'a Authenticator,
    state: &'a str,
    language: Language,
) -> LoginPanelParams<'a> {
    LoginPanelParams {
        login_type: "CorpApp",
        appid: &authenticator.corp_id,
        agentid: &authenticator.agent_id,
        redirect_uri: callback_url(authenticator),
        state,
        redirect_type: "callback",
        panel_size: "small",
        lang: language.code(),
    }
}

/// The login route of the HTTP front for this authenticator.
pub fn login_route_url(authenticator: &Authenticator) -> String {
    let path = login_path(&authenticator.route_prefix, Some(&authenticator.name), None);
    format!("{}{path}", authenticator.origin)
}

/// Our login route's path: `{prefix}/login?authenticator=..&return_to=..`.
pub fn login_path(prefix: &str, authenticator: Option<&str>, return_to: Option<&str>) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    if let Some(name) = authenticator {
        query.append_pair("authenticator", name);
    }
    if let Some(path) = return_to {
        query.append_pair("return_to", path);
    }
    let query = query.finish();
    if query.is_empty() {
        format!("{prefix}/login")
    } else {
        format!("{prefix}/login?{query}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::example::settings as sample;

    fn corp() -> Authenticator {
        sample("corp").check().unwrap()
    }

    #[test]
    fn in_client_oauth_url_is_exactly_as_wecom_documents_it() {
        assert_eq!(
            in_client_oauth_url(&corp(), "STATE123", InClientScope::PrivateInfo),
            "https://open.weixin.qq.com/connect/oauth2/authorize?appid=ww0123456789abcdef\
             &redirect_uri=https%3A%2F%2Fapps.example.com%2Fauth%2Fwecom%2Fcallback\
             &response_type=code&scope=snsapi_privateinfo&state=STATE123&agentid=1000002#wechat_redirect"
        );
        assert!(
            in_client_oauth_url(&corp(), "S", InClientScope::Base)
                .contains("&response_type=code&scope=snsapi_base&state=S&agentid=1000002#")
        );
    }

    #[test]
    fn web_login_url_is_exactly_as_wecom_documents_it() {
        let a = corp();
        assert_eq!(
            web_login_url(&a, "STATE123", None),
            "https://login.work.weixin.qq.com/wwlogin/sso/login?login_type=CorpApp&appid=ww0123456789abcdef\
             &agentid=1000002&redirect_uri=https%3A%2F%2Fapps.example.com%2Fauth%2Fwecom%2Fcallback&state=STATE123"
        );
        assert!(web_login_url(&a, "S", Some(Language::En)).ends_with("&state=S&lang=en"));
    }

    #[test]
    fn bases_and_route_prefix_are_honoured() {
        let mut s = sample("corp");
        s.origin = "http://127.0.0.1:8080".into();
        s.route_prefix = Some("/sso".into());
        s.oauth_base = Some("http://127.0.0.1:9000/".into());
        s.sso_base = Some("http://127.0.0.1:9000".into());
        let a = s.check().unwrap();
        assert_eq!(callback_url(&a), "http://127.0.0.1:8080/sso/callback");
        assert!(in_client_oauth_url(&a, "S", InClientScope::Base).starts_with(
            "http://127.0.0.1:9000/connect/oauth2/authorize?appid=ww0123456789abcdef&redirect_uri=http%3A%2F%2F127.0.0.1%3A8080%2Fsso%2Fcallback&"
        ));
        assert!(
            web_login_url(&a, "S", None).starts_with("http://127.0.0.1:9000/wwlogin/sso/login?")
        );
        assert_eq!(
            login_route_url(&a),
            "http://127.0.0.1:8080/sso/login?authenticator=corp"
        );
    }

    #[test]
    fn components_are_encoded_like_encode_uri_component() {
        assert_eq!(
            encode_component("a b&c=d/é?#"),
            "a%20b%26c%3Dd%2F%C3%A9%3F%23"
        );
        assert_eq!(encode_component("A-z_0.9~"), "A-z_0.9~");
    }
}

//! The browser-facing login pages: the in-client OAuth page
//! (`open.weixin.qq.com/connect/oauth2/authorize`) and the web / QR login page
//! (`login.work.weixin.qq.com/wwlogin/sso/login`).
//!
//! A valid request without `pick` renders a page listing the corp's members
//! and non-members; each entry links to the same URL plus `pick=<userid or id>`.
//! A request with `pick` answers 302 to `redirect_uri?code=..&state=..`, except
//! an in-client `snsapi_privateinfo` login of a member in the visible range:
//! WeCom asks the member to confirm (手动授权, doc 91022), so the page shows
//! the consent screen, whose two links add `consent=agree` (the code then
//! gives a `user_ticket`) or `consent=decline` (the userid only).
//! `snsapi_base` (静默授权) redirects at once. Both are counted
//! ([`crate::SimulatorHandle::consent_pages_shown`]).
//! An invalid request answers 200 with an error page (as WeCom does) whose
//! errcode is also in the `x-wecom-errcode` header.
//!
//! The web login page inside WeCom's login panel (`ww.createWWLoginPanel`,
//! doc 98478; the stand-in script is [`LOGIN_PANEL_SCRIPT`]) carries
//! `redirect_type`: `callback` hands the code to the embedding page
//! (`onLoginSuccess({code})`, posted to the `redirect_uri`'s origin only);
//! `top` sends the top window to `redirect_uri?code=..&state=..`; `self`
//! (and none, outside the panel) redirects the page itself.

use super::endpoint::Endpoint;
use super::model::Corp;
use super::state::{CODE_LIFETIME, CodeRecord, State, Subject};
use super::urls::{Query, append_query, html_escape, http_authority, percent_encode, valid_state};

/// Header carrying the errcode of an error page.
pub const ERRCODE_HEADER: &str = "x-wecom-errcode";

pub(crate) enum PageReply {
    /// 200, the member picker.
    Page(String),
    /// 200, an error page with this errcode.
    Error { errcode: i64, html: String },
    /// 302 to this Location.
    Redirect(String),
    /// 200, JavaScript.
    Script(&'static str),
}

/// The stand-in for WeCom's JS-SDK that draws the login panel.
pub const LOGIN_PANEL_SCRIPT: &str = include_str!("wecom-jssdk.js");

/// A valid login request.
struct Login<'m> {
    corp: &'m Corp,
    /// Effective scope is snsapi_privateinfo (asked for, with an agentid).
    privateinfo: bool,
    redirect_uri: String,
    redirect_authority: String,
    state: String,
}

pub(crate) fn answer(state: &mut State, endpoint: Endpoint, raw_query: &str) -> PageReply {
    if endpoint == Endpoint::LoginPanelScript {
        return PageReply::Script(LOGIN_PANEL_SCRIPT);
    }
    let query = Query::parse(raw_query);
    let in_client = endpoint == Endpoint::OAuthPage;
    let login = match validate(state, in_client, &query) {
        Ok(login) => login,
        Err((errcode, detail)) => return error_page(errcode, &detail),
    };
    let pick = query.get("pick").filter(|p| !p.is_empty());
    let Some(pick) = pick else {
        // Inside the login panel (the JS-SDK passes `redirect_type`): a page
        // that fits its frame.
        let in_panel = endpoint == Endpoint::WebLoginPage && query.get("redirect_type").is_some();
        let english = query.get("lang") == Some("en");
        return PageReply::Page(picker(endpoint, raw_query, &login, in_panel, english));
    };
    let corp = login.corp;
    // (subject, gets a ticket, silent) or the consent screen to show.
    let decided = if let Some(member) = corp.member(pick) {
        let subject = Subject::Member(member.userid.clone());
        let asks_consent = in_client && login.privateinfo && member.visible;
        match query.get("consent") {
            _ if !asks_consent => Ok((subject, false, in_client && !login.privateinfo)),
            Some("agree") => Ok((subject, true, false)),
            Some("decline") => Ok((subject, false, false)),
            _ => Err(consent_page(raw_query, &member.name, corp)),
        }
    } else if let Some(outsider) = corp.non_member(pick) {
        let subject = Subject::NonMember {
            openid: outsider.openid.clone(),
            external_userid: outsider.external_userid.clone(),
        };
        Ok((subject, false, false))
    } else {
        return error_page(
            60111,
            &format!("no member or non-member {pick:?} in this corp"),
        );
    };
    let corp_id = corp.corp_id.clone();
    let redirect_authority = login.redirect_authority.clone();
    let (redirect_uri, login_state) = (login.redirect_uri.clone(), login.state.clone());
    let (subject, ticket_eligible, silent) = match decided {
        Ok(decided) => decided,
        Err(html) => {
            state.authorizations.consent_pages += 1;
            return PageReply::Page(html);
        }
    };
    if silent {
        state.authorizations.silent += 1;
    }
    let record = CodeRecord {
        corp_id,
        subject,
        redirect_authority,
        ticket_eligible,
        expires_at: state.now() + CODE_LIFETIME,
    };
    let code = state.issue_code(record);
    let location = append_query(&redirect_uri, &[("code", &code), ("state", &login_state)]);
    match query.get("redirect_type") {
        Some("callback") if endpoint == Endpoint::WebLoginPage => {
            PageReply::Page(panel_callback_page(&code, &redirect_uri))
        }
        Some("top") if endpoint == Endpoint::WebLoginPage => {
            PageReply::Page(panel_top_page(&location))
        }
        _ => PageReply::Redirect(header_safe(&location)),
    }
}

/// The login panel's end with `redirect_type=callback`: the code goes to
/// the embedding page, as the SDK's `ww-iframe-handle:call` message of
/// `onLoginSuccess`, and only to the origin of `redirect_uri` (the app's
/// trusted domain): another embedder gets nothing.
fn panel_callback_page(code: &str, redirect_uri: &str) -> String {
    let message = serde_json::json!({
        "type": "ww-iframe-handle:call",
        "args": { "type": "call", "name": "onLoginSuccess", "payload": { "code": code } },
    });
    let target = origin_of(redirect_uri);
    script_page(&format!(
        "parent.postMessage({}, {});",
        js_string(&message.to_string()),
        js_string(&target)
    ))
}

/// The login panel's end with `redirect_type=top`: the top window goes to
/// the callback.
fn panel_top_page(location: &str) -> String {
    script_page(&format!(
        "window.top.location.href = {};",
        js_string(location)
    ))
}

fn script_page(script: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"zh\"><head><meta charset=\"utf-8\"><title>企业微信 · 登录成功</title></head>\n\
         <body><p>登录成功 / Logged in</p><script>{script}</script></body></html>\n"
    )
}

/// A JSON string literal, safe inside `<script>` (no `</` to end it).
fn js_string(text: &str) -> String {
    serde_json::Value::from(text)
        .to_string()
        .replace("</", "<\\/")
}

/// `scheme://authority` of an absolute URL.
fn origin_of(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    format!("{}://{}", scheme.to_ascii_lowercase(), &rest[..end])
}

/// Checks the parameters as WeCom does. Errors: 40013 unknown `appid`,
/// 40056 bad `agentid`, 40035 bad `redirect_uri` / `response_type` / `scope` /
/// `login_type`, 84025 bad `state`.
fn validate<'m>(
    state: &'m State,
    in_client: bool,
    query: &Query,
) -> Result<Login<'m>, (i64, String)> {
    let appid = query.get("appid").unwrap_or_default();
    let corp = state
        .model
        .corp(appid)
        .ok_or_else(|| (40013, format!("unknown appid {appid:?}")))?;
    if !in_client && query.get("login_type") != Some("CorpApp") {
        return Err((40035, "login_type must be CorpApp".into()));
    }
    let agent_id = match query.get("agentid").filter(|a| !a.is_empty()) {
        None if in_client => None,
        None => return Err((40056, "agentid is required".into())),
        Some(raw) => {
            let agent = raw
                .parse::<u32>()
                .ok()
                .filter(|_| raw.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|id| corp.agent(id))
                .ok_or_else(|| (40056, format!("{raw:?} is not an app of this corp")))?;
            Some(agent.agent_id)
        }
    };
    let redirect_uri = query.get("redirect_uri").unwrap_or_default();
    let redirect_authority = http_authority(redirect_uri).ok_or_else(|| {
        (
            40035,
            format!("redirect_uri {redirect_uri:?} is not an absolute http(s) URL"),
        )
    })?;
    let mut privateinfo = false;
    if in_client {
        if query.get("response_type") != Some("code") {
            return Err((40035, "response_type must be code".into()));
        }
        privateinfo = match query.get("scope") {
            Some("snsapi_base") => false,
            // Without agentid WeCom silently downgrades to snsapi_base.
            Some("snsapi_privateinfo") => agent_id.is_some(),
            other => {
                return Err((
                    40035,
                    format!("scope {other:?} is not snsapi_base or snsapi_privateinfo"),
                ));
            }
        };
    }
    let login_state = query.get("state").unwrap_or_default();
    if !valid_state(login_state) {
        return Err((84025, "state must be [A-Za-z0-9], at most 128 bytes".into()));
    }
    Ok(Login {
        corp,
        privateinfo,
        redirect_uri: redirect_uri.to_owned(),
        redirect_authority,
        state: login_state.to_owned(),
    })
}

fn error_page(errcode: i64, detail: &str) -> PageReply {
    let message = super::api::errmsg(errcode);
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"zh\"><head><meta charset=\"utf-8\"><title>企业微信 · 错误 {errcode}</title></head>\n\
         <body><h1>出错了 / Error</h1>\n<p>errcode: <b id=\"errcode\">{errcode}</b> ({})</p>\n<p>{}</p>\n\
         <p><a href=\"https://open.work.weixin.qq.com/devtool/query?e={errcode}\">more info</a></p></body></html>\n",
        html_escape(message),
        html_escape(detail)
    );
    PageReply::Error { errcode, html }
}

/// The consent screen of an in-client `snsapi_privateinfo` login: what the
/// app asks to read, and two links (the same URL plus `consent=`).
fn consent_page(raw_query: &str, member: &str, corp: &Corp) -> String {
    let page = format!("{}?{raw_query}", Endpoint::OAuthPage.path());
    let link = |answer: &str| html_escape(&append_query(&page, &[("consent", answer)]));
    format!(
        "<!DOCTYPE html>\n<html lang=\"zh\"><head><meta charset=\"utf-8\"><title>企业微信 · 授权确认</title></head>\n<body>\n\
         <h1>{} 申请获取你的信息</h1>\n<p>{}，该应用将获取你的手机号、邮箱、头像和性别（snsapi_privateinfo）。</p>\n\
         <p><a class=\"consent\" id=\"agree\" href=\"{}\">同意 (Agree)</a></p>\n\
         <p><a class=\"consent\" id=\"decline\" href=\"{}\">拒绝 (Decline)</a></p>\n</body></html>\n",
        html_escape(&corp.name),
        html_escape(member),
        link("agree"),
        link("decline"),
    )
}

fn picker(
    endpoint: Endpoint,
    raw_query: &str,
    login: &Login<'_>,
    in_panel: bool,
    english: bool,
) -> String {
    let corp = login.corp;
    let (title, flow) = if endpoint == Endpoint::OAuthPage {
        let scope = if login.privateinfo {
            "snsapi_privateinfo (asks for consent; gives a user_ticket)"
        } else {
            "snsapi_base (silent; userid only)"
        };
        (
            "企业微信 · 网页授权",
            format!("In-client OAuth, scope {scope}"),
        )
    } else {
        (
            "企业微信 · 扫码登录",
            "Web / QR login (userid only, never a user_ticket)".to_owned(),
        )
    };
    let link = |id: &str| {
        html_escape(&format!(
            "{}?{}{}pick={}",
            endpoint.path(),
            raw_query,
            if raw_query.is_empty() || raw_query.ends_with('&') {
                ""
            } else {
                "&"
            },
            percent_encode(id)
        ))
    };
    let mut html = if in_panel {
        // WeCom's panel shows the company, a QR code and "scan with WeCom";
        // here the member picker stands for whoever scans.
        let scan = if english {
            "Scan with WeCom to log in (simulated: pick who scans)"
        } else {
            "请使用企业微信扫码登录（模拟：选择扫码的成员）"
        };
        format!(
            "<!DOCTYPE html>\n<html lang=\"{}\"><head><meta charset=\"utf-8\"><title>{title}</title>\
             <style>body{{font:14px system-ui,sans-serif;margin:10px 14px;color:#1f2329}}\
             h1{{font-size:16px;margin:0 0 6px}}p{{margin:0 0 8px;color:#646a73;font-size:12px}}\
             h2{{font-size:13px;margin:10px 0 4px}}ul{{padding-left:18px;margin:0}}li{{margin:3px 0}}\
             small{{color:#8f959e}}</style></head>\n<body>\n<h1>{}</h1>\n<p>{scan}</p>\n\
             <h2>成员 / Members</h2>\n<ul>\n",
            if english { "en" } else { "zh" },
            html_escape(&corp.name),
        )
    } else {
        format!(
            "<!DOCTYPE html>\n<html lang=\"zh\"><head><meta charset=\"utf-8\"><title>{title}</title></head>\n<body>\n\
             <h1>{} — {}</h1>\n<p>{}</p>\n<p>Redirects to: <code>{}</code></p>\n<h2>成员 / Members</h2>\n<ul>\n",
            html_escape(&corp.name),
            html_escape(&corp.corp_id),
            html_escape(&flow),
            html_escape(&login.redirect_uri),
        )
    };
    for member in &corp.members {
        let mut notes = Vec::new();
        if !member.visible {
            notes.push("outside the app's visible range");
        }
        if !member.consents_to_privateinfo {
            notes.push("declines privateinfo when asked");
        }
        let notes = if notes.is_empty() {
            String::new()
        } else {
            format!(" <small>({})</small>", notes.join("; "))
        };
        html.push_str(&format!(
            "<li><a class=\"member\" href=\"{}\">{} ({})</a>{notes}</li>\n",
            link(&member.userid),
            html_escape(&member.name),
            html_escape(&member.userid),
        ));
    }
    html.push_str("</ul>\n<h2>非成员 / Not members</h2>\n<ul>\n");
    for outsider in &corp.non_members {
        html.push_str(&format!(
            "<li><a class=\"non-member\" href=\"{}\">{} ({})</a></li>\n",
            link(&outsider.id),
            html_escape(&outsider.name),
            html_escape(&outsider.id),
        ));
    }
    html.push_str("</ul>\n</body></html>\n");
    html
}

/// Percent-encodes what may not stand in a header value (controls, space,
/// non-ASCII), leaving the URL otherwise as the caller gave it.
fn header_safe(url: &str) -> String {
    let mut out = String::with_capacity(url.len());
    for byte in url.bytes() {
        if (0x21..0x7f).contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Model;
    use crate::state::Authorizations;

    const BASE: &str = "appid=ww0123456789abcdef&redirect_uri=https%3A%2F%2Fapps.example.com%2Fcb&response_type=code&scope=snsapi_privateinfo&agentid=1000002&state=abc";

    fn errcode(reply: PageReply) -> Option<i64> {
        match reply {
            PageReply::Error { errcode, .. } => Some(errcode),
            _ => None,
        }
    }

    #[test]
    fn picker_links_add_pick() {
        let mut state = State::new(Model::sample());
        let PageReply::Page(html) = answer(&mut state, Endpoint::OAuthPage, BASE) else {
            panic!("expected the picker");
        };
        assert!(html.contains(&format!(
            "href=\"/connect/oauth2/authorize?{}&amp;pick=zhangsan\"",
            BASE.replace('&', "&amp;")
        )));
        assert!(html.contains("pick=outsider"));
        assert!(!html.contains("<script") && !html.contains("src="));
    }

    /// Inside the login panel (doc 98478): `callback` posts the code to the
    /// app's origin only, `top` moves the top window, `self` redirects.
    #[test]
    fn the_login_panel_ends_as_its_redirect_type_says() {
        let web = "login_type=CorpApp&appid=ww0123456789abcdef&agentid=1000002&redirect_uri=https%3A%2F%2Fapps.example.com%2Fauth%2Fcb&state=abc&pick=zhangsan";
        let mut state = State::new(Model::sample());
        let callback = format!("{web}&redirect_type=callback&panel_size=small");
        let PageReply::Page(html) = answer(&mut state, Endpoint::WebLoginPage, &callback) else {
            panic!("expected the page that hands the code over");
        };
        let code = state.codes.keys().next().expect("a code").clone();
        // To the app's origin only, as the SDK's message (JSON text).
        assert!(html.contains(r#", "https://apps.example.com");"#), "{html}");
        for part in [
            "parent.postMessage(",
            r#"\"type\":\"ww-iframe-handle:call\""#,
            r#"\"name\":\"onLoginSuccess\""#,
            &format!(r#"\"payload\":{{\"code\":\"{code}\"}}"#),
        ] {
            assert!(html.contains(part), "{part} in {html}");
        }
        let top = format!("{web}&redirect_type=top");
        let PageReply::Page(html) = answer(&mut state, Endpoint::WebLoginPage, &top) else {
            panic!("expected the page that moves the top window");
        };
        assert!(
            html.contains(r#"window.top.location.href = "https://apps.example.com/auth/cb?code="#)
        );
        let own = format!("{web}&redirect_type=self");
        let PageReply::Redirect(location) = answer(&mut state, Endpoint::WebLoginPage, &own) else {
            panic!("expected a redirect");
        };
        assert!(location.starts_with("https://apps.example.com/auth/cb?code="));
        let PageReply::Script(js) = answer(&mut state, Endpoint::LoginPanelScript, "") else {
            panic!("expected the script");
        };
        assert!(js.contains("createWWLoginPanel") && js.contains("ww-iframe-handle:call"));
    }

    #[test]
    fn pick_redirects_with_code_and_state() {
        let mut state = State::new(Model::sample());
        let query = format!("{BASE}&pick=zhangsan&consent=agree");
        let PageReply::Redirect(location) = answer(&mut state, Endpoint::OAuthPage, &query) else {
            panic!("expected a redirect");
        };
        assert!(location.starts_with("https://apps.example.com/cb?code="));
        assert!(location.ends_with("&state=abc"));
        let code = state.codes.values().next().expect("a code");
        assert!(code.ticket_eligible);
    }

    /// `snsapi_privateinfo` asks the member to confirm, every time (手动授权);
    /// `snsapi_base` redirects at once (静默授权) and gives no ticket (doc 91022).
    #[test]
    fn privateinfo_shows_the_consent_screen_and_base_is_silent() {
        let mut state = State::new(Model::sample());
        let picked = format!("{BASE}&pick=zhangsan");
        let PageReply::Page(html) = answer(&mut state, Endpoint::OAuthPage, &picked) else {
            panic!("expected the consent screen");
        };
        assert!(html.contains("&amp;consent=agree\"") && html.contains("&amp;consent=decline\""));
        assert!(!html.contains("<script"));
        assert_eq!(state.authorizations.consent_pages, 1);
        assert!(state.codes.is_empty(), "no code before the answer");
        let declined = format!("{picked}&consent=decline");
        let PageReply::Redirect(_) = answer(&mut state, Endpoint::OAuthPage, &declined) else {
            panic!("expected a redirect");
        };
        assert!(!state.codes.values().next().unwrap().ticket_eligible);
        let base = picked.replace("snsapi_privateinfo", "snsapi_base");
        state.codes.clear();
        let PageReply::Redirect(_) = answer(&mut state, Endpoint::OAuthPage, &base) else {
            panic!("snsapi_base redirects at once");
        };
        assert!(!state.codes.values().next().unwrap().ticket_eligible);
        assert_eq!(
            state.authorizations,
            Authorizations {
                silent: 1,
                consent_pages: 1
            }
        );
        // A member outside the visible range is never asked.
        let outside = format!("{BASE}&pick=zhaoliu");
        assert!(matches!(
            answer(&mut state, Endpoint::OAuthPage, &outside),
            PageReply::Redirect(_)
        ));
        assert_eq!(state.authorizations.consent_pages, 1);
    }

    #[test]
    fn validation_errcodes() {
        let mut state = State::new(Model::sample());
        let mut check = |query: &str| errcode(answer(&mut state, Endpoint::OAuthPage, query));
        assert_eq!(check(&BASE.replace("appid=ww", "appid=xx")), Some(40013));
        assert_eq!(
            check(&BASE.replace("agentid=1000002", "agentid=1000003")),
            Some(40056)
        );
        assert_eq!(
            check(&BASE.replace("agentid=1000002", "agentid=+1000002")),
            Some(40056)
        );
        assert_eq!(
            check(&BASE.replace("snsapi_privateinfo", "snsapi_userinfo")),
            Some(40035)
        );
        assert_eq!(
            check(&BASE.replace("response_type=code", "response_type=token")),
            Some(40035)
        );
        assert_eq!(
            check(&BASE.replace("https%3A%2F%2Fapps.example.com", "%2Frelative")),
            Some(40035)
        );
        assert_eq!(check(&BASE.replace("state=abc", "state=a-b")), Some(84025));
        assert_eq!(check(&format!("{BASE}&pick=nobody")), Some(60111));
        assert_eq!(check(BASE), None);
    }

    #[test]
    fn header_safe_escapes_only_what_it_must() {
        assert_eq!(
            header_safe("https://h/a b?x=张"),
            "https://h/a%20b?x=%E5%BC%A0"
        );
        assert_eq!(
            header_safe("https://h/p?a=1&b=%2F"),
            "https://h/p?a=1&b=%2F"
        );
    }
}

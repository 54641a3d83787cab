//! The front's few pages: login, error, signed in. Plain strings, inline CSS,
//! no fonts or images; everything interpolated goes through [`escape_html`].
//! One script only: the login page's start of WeCom's login panel, allowed
//! by its hash ([`login_panel_csp`]).

use std::fmt::Write as _;
use std::sync::LazyLock;

use base64::Engine as _;
use sha2::{Digest, Sha256};

use super::config::LoginPanelScript;
use crate::core::browser::Language;
use crate::core::texts;

/// Escapes text for HTML element content and double- or single-quoted attributes.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const CSS: &str = "body{font-family:system-ui,-apple-system,'PingFang SC','Microsoft YaHei',sans-serif;\
background:#f5f6f7;color:#1f2329;margin:0;padding:2rem 1rem}\
main{max-width:30rem;margin:0 auto;background:#fff;border-radius:8px;padding:1.5rem 1.75rem;\
box-shadow:0 1px 3px rgba(0,0,0,.08)}\
h1{font-size:1.3rem;margin:0 0 1rem}h2{font-size:1rem;margin:0 0 .5rem}\
p{line-height:1.55}ul{padding-left:1.2rem}\
.btn{display:block;text-align:center;background:#0082ef;color:#fff;text-decoration:none;border:0;\
border-radius:6px;padding:.7rem 1rem;margin:.6rem 0;font-size:1rem;width:100%;box-sizing:border-box;cursor:pointer}\
.btn.plain{background:#fff;color:#0082ef;border:1px solid #0082ef}\
.status{color:#8f959e;font-size:.85rem}\
.admin{margin-top:1.5rem;border-top:1px dashed #d0d3d6;padding-top:1rem;font-size:.9rem;color:#646a73}\
code{word-break:break-all;background:#f2f3f5;padding:0 .2rem;border-radius:3px}\
#wecom-login-panel iframe{margin:0 auto}\
.alt{display:block;text-align:center;font-size:.85rem;color:#646a73;margin-top:.6rem}";

/// A whole page around `body` (already HTML).
pub fn page(language: Language, title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"{lang}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <meta name=\"robots\" content=\"noindex\"><title>{title}</title>\
         <style>{CSS}</style></head><body><main>{body}</main></body></html>",
        lang = if language == Language::Zh {
            "zh-CN"
        } else {
            "en"
        },
        title = escape_html(title),
    )
}

/// One button of the login page: its label and link.
pub struct Choice {
    pub label: String,
    pub href: String,
}

pub fn login_page(language: Language, choices: &[Choice]) -> String {
    let mut body = format!("<h1>{}</h1>", texts::LOG_IN_WITH_WECOM.get(language));
    if choices.len() > 1 {
        let _ = write!(body, "<p>{}</p>", texts::CHOOSE.get(language));
    }
    for choice in choices {
        let _ = write!(
            body,
            "<a class=\"btn\" href=\"{}\">{}</a>",
            escape_html(&choice.href),
            escape_html(&choice.label)
        );
    }
    page(language, texts::LOG_IN.get(language), &body)
}

/// WeCom's login panel (`ww.createWWLoginPanel`, doc 98478) in place of
/// the login button, for one authenticator.
pub struct LoginPanel<'a> {
    /// The JS-SDK (`login_panel_script`) and its integrity, if pinned.
    pub script: &'a LoginPanelScript,
    /// The panel's parameters, JSON ([`crate::core::urls::LoginPanelParams`]).
    pub params: &'a str,
    /// WeCom's login page for the same login (state): the button shown
    /// until the script has drawn the panel, and for good if it cannot (a
    /// blocked CDN, a script that fails its integrity, no JavaScript);
    /// under the panel it becomes a small link, for a panel that shows an
    /// error.
    pub fallback: Choice,
    /// Seconds after which the page loads itself again, with a fresh state,
    /// before the login it started expires.
    pub renew_after: u32,
}

/// Loads the JS-SDK (with its integrity, if given), draws the panel, then
/// turns the button into a small link under it, and takes the code the
/// panel hands over (`redirect_type=callback`) to the callback with the
/// page's state. Reloads the page before the state expires. Constant: the
/// page's CSP allows it by its hash.
const LOGIN_PANEL_START: &str = "(function(){\
var box=document.getElementById(\"wecom-login-panel\");if(!box)return;\
var link=box.querySelector(\"a\");var label=link.textContent;var params=JSON.parse(box.getAttribute(\"data-params\"));\
setTimeout(function(){location.reload();},1000*Number(box.getAttribute(\"data-renew-after\")));\
var sdk=document.createElement(\"script\");sdk.src=box.getAttribute(\"data-script\");\
var integrity=box.getAttribute(\"data-integrity\");\
if(integrity){sdk.integrity=integrity;sdk.crossOrigin=\"anonymous\";}\
sdk.onload=function(){var ww=window.ww;\
if(!ww||typeof ww.createWWLoginPanel!==\"function\")return;var panel;\
try{panel=ww.createWWLoginPanel({el:box,params:params,\
onLoginSuccess:function(r){location.replace(params.redirect_uri+\"?code=\"+encodeURIComponent(r.code)+\"&state=\"+encodeURIComponent(params.state));},\
onLoginFail:function(){if(panel)panel.unmount();link.className=\"btn\";link.textContent=label;}});}\
catch(e){return;}link.className=\"alt\";link.textContent=box.getAttribute(\"data-alt\");box.appendChild(link);};\
document.head.appendChild(sdk);})();";

/// `'sha256-…'` of [`LOGIN_PANEL_START`] (CSP Level 2, hash source).
static LOGIN_PANEL_START_HASH: LazyLock<String> = LazyLock::new(|| {
    let digest = Sha256::digest(LOGIN_PANEL_START.as_bytes());
    format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
});

/// The login page with WeCom's login panel.
pub fn login_panel_page(language: Language, panel: &LoginPanel<'_>) -> String {
    let integrity = panel
        .script
        .integrity
        .as_deref()
        .map(|i| format!(" data-integrity=\"{}\"", escape_html(i)))
        .unwrap_or_default();
    let body = format!(
        "<h1>{}</h1><div id=\"wecom-login-panel\" data-script=\"{}\"{integrity} \
         data-params=\"{}\" data-renew-after=\"{}\" data-alt=\"{}\"><a class=\"btn\" href=\"{}\">{}</a></div>\
         <script>{LOGIN_PANEL_START}</script>",
        texts::LOG_IN_WITH_WECOM.get(language),
        escape_html(&panel.script.url),
        escape_html(panel.params),
        panel.renew_after,
        texts::OPEN_WECOM_LOGIN_PAGE.get(language),
        escape_html(&panel.fallback.href),
        escape_html(&panel.fallback.label),
    );
    page(language, texts::LOG_IN.get(language), &body)
}

/// The login panel page's Content-Security-Policy: the protective one, plus
/// exactly what the panel needs: its start script (by hash), the JS-SDK
/// (its URL alone, [`LoginPanelScript::url`]), and frames of WeCom's web
/// login page (`frame_origin`, the origin of `sso_base`: a serialized
/// origin, scheme, host and port only).
pub fn login_panel_csp(script: &LoginPanelScript, frame_origin: &str) -> String {
    format!(
        "default-src 'none'; style-src 'unsafe-inline'; script-src {} {}; \
         frame-src {frame_origin}; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        *LOGIN_PANEL_START_HASH, script.url
    )
}

/// What an error page says.
pub struct ErrorPage<'a> {
    pub title: &'a str,
    pub message: &'a str,
    pub status: u16,
    /// WeCom's errcode, if WeCom answered with one.
    pub errcode: Option<i32>,
    /// For the administrator: a hint, or a list of problems.
    pub admin: Vec<String>,
    /// A link to start again.
    pub retry: Option<(&'a str, String)>,
}

pub fn error_page(language: Language, e: &ErrorPage<'_>) -> String {
    let mut body = format!(
        "<h1>{}</h1><p>{}</p>",
        escape_html(e.title),
        escape_html(e.message)
    );
    if let Some((label, href)) = &e.retry {
        let _ = write!(
            body,
            "<a class=\"btn\" href=\"{}\">{}</a>",
            escape_html(href),
            escape_html(label)
        );
    }
    let _ = write!(body, "<p class=\"status\">HTTP {}", e.status);
    if let Some(code) = e.errcode {
        let _ = write!(body, " · WeCom errcode {code}");
    }
    body.push_str("</p>");
    if !e.admin.is_empty() {
        let _ = write!(
            body,
            "<section class=\"admin\"><h2>{}</h2>",
            texts::FOR_THE_ADMIN.get(language)
        );
        if e.admin.len() == 1 {
            let _ = write!(body, "<p>{}</p>", escape_html(&e.admin[0]));
        } else {
            body.push_str("<ul>");
            for line in &e.admin {
                let _ = write!(body, "<li>{}</li>", escape_html(line));
            }
            body.push_str("</ul>");
        }
        body.push_str("</section>");
    }
    page(language, e.title, &body)
}

/// "Signed in as NAME (userid) · log out": a stand-in for the app in demos.
pub fn signed_in_page(language: Language, name: &str, userid: &str, logout: &str) -> String {
    let body = format!(
        "<h1>{}</h1><p>{} <strong>{}</strong> ({})</p>\
         <form method=\"post\" action=\"{}\"><button class=\"btn plain\" type=\"submit\">{}</button></form>",
        texts::WECOM.get(language),
        texts::SIGNED_IN_AS.get(language),
        escape_html(name),
        escape_html(userid),
        escape_html(logout),
        texts::LOG_OUT.get(language),
    );
    page(language, name, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_every_special_character() {
        assert_eq!(
            escape_html(r#"<script>alert('x')</script>&"a""#),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;a&quot;"
        );
        assert_eq!(escape_html("张三"), "张三");
    }

    #[test]
    fn pages_load_nothing_from_elsewhere() {
        let html = login_page(
            Language::Zh,
            &[Choice {
                label: "<b>hq</b>".into(),
                href: "/auth/wecom/login?authenticator=hq&return_to=%2F".into(),
            }],
        );
        assert!(html.contains("&lt;b&gt;hq&lt;/b&gt;"));
        assert!(html.contains("lang=\"zh-CN\""));
        for external in ["<script", "<link", "src=", "http://", "https://", "@import"] {
            assert!(!html.contains(external), "{external}");
        }
    }
}

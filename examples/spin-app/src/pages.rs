//! The pages. Everything that comes from a member, WeCom or the store goes
//! through [`escape`].

use crate::wecom::auth::login::{AuthError, Language, Session};
use crate::{Config, Notice, Reply};

/// The home page of a logged-in member: who they are, as `verify-session`
/// read them from the directory, and the groups WeCom puts them in.
pub fn home(session: &Session, config: &Config) -> String {
    let groups: Vec<String> = session
        .groups
        .iter()
        .map(|group| match &group.name {
            Some(name) => format!(
                "<li>{} <code>{}</code></li>",
                escape(name),
                escape(&group.key)
            ),
            None => format!("<li><code>{}</code></li>", escape(&group.key)),
        })
        .collect();
    let groups = if groups.is_empty() {
        "<p>No groups.</p>".to_owned()
    } else {
        format!("<ul class=\"groups\">{}</ul>", groups.concat())
    };
    let body = format!(
        "<h1>Hello, <span class=\"member\">{name}</span></h1>\
         <p>WeCom userid <code>{userid}</code></p>\
         <h2>Your groups</h2>{groups}\
         <p><a href=\"/notices\">Open the notice board</a></p>{logout}",
        name = escape(&session.user.name),
        userid = escape(&session.wecom_userid),
        logout = logout_form(config),
    );
    layout("Team notices", &body)
}

/// The home page without a session.
pub fn welcome(config: &Config) -> String {
    let body = format!(
        "<h1>Team notices</h1><p>The notice board of the team.</p>\
         <p><a class=\"login\" href=\"{}/login\">Log in with WeCom</a></p>",
        escape(&config.route_prefix)
    );
    layout("Team notices", &body)
}

/// The notices, newest first, and the form to post one.
pub fn board(session: &Session, notices: &[Notice], config: &Config) -> String {
    let items: Vec<String> = notices
        .iter()
        .map(|notice| {
            format!(
                "<li class=\"notice\"><p>{}</p><small>{} · {}</small></li>",
                escape(&notice.text),
                escape(&notice.author),
                when(notice.posted_at),
            )
        })
        .collect();
    let list = if items.is_empty() {
        "<p>No notices yet.</p>".to_owned()
    } else {
        format!("<ul class=\"notices\">{}</ul>", items.concat())
    };
    let body = format!(
        "<h1>Notice board</h1><p>Logged in as <span class=\"member\">{name}</span> · \
         <a href=\"/\">Home</a></p>\
         <form method=\"post\" action=\"/notices\">\
         <textarea name=\"text\" rows=\"3\" maxlength=\"{max}\" required></textarea>\
         <button>Post</button></form>{list}{logout}",
        name = escape(&session.user.name),
        max = crate::MAX_NOTICE_CHARS,
        logout = logout_form(config),
    );
    layout("Notice board", &body)
}

/// A failure of the component, at the status it names, with the message for
/// the member in their language and, when there is one, what the admin
/// should fix. No cookie is set with it.
pub fn auth_error(language: Language, error: &AuthError) -> Reply {
    let message = match language {
        Language::Zh => &error.message_zh,
        Language::En => &error.message_en,
    };
    let hint = match &error.admin_hint {
        Some(hint) => format!(
            "<p class=\"hint\">For the administrator: {}</p>",
            escape(hint)
        ),
        None => String::new(),
    };
    let body = format!(
        "<h1>{title}</h1><p class=\"error\">{message}</p>{hint}<p><a href=\"/\">Home</a></p>",
        title = if error.status == 403 {
            "Access refused"
        } else {
            "Login failed"
        },
        message = escape(message),
    );
    Reply::html(error.status, layout("Team notices", &body))
}

/// A POST from another site.
pub fn cross_site() -> Reply {
    problem(
        403,
        "Refused: this form was not sent from this app's own pages.",
    )
}

pub fn problem(status: u16, message: &str) -> Reply {
    let body = format!(
        "<h1>Team notices</h1><p class=\"error\">{}</p><p><a href=\"/\">Home</a></p>",
        escape(message)
    );
    Reply::html(status, layout("Team notices", &body))
}

/// A variable in a wrong format (the message names it, never its value).
pub fn misconfigured(problem_text: &str) -> Reply {
    problem(500, &format!("The app is misconfigured: {problem_text}"))
}

pub fn not_found() -> Reply {
    problem(404, "Not found.")
}

pub fn method_not_allowed() -> Reply {
    problem(405, "Method not allowed.")
}

fn logout_form(config: &Config) -> String {
    format!(
        "<form method=\"post\" action=\"{}/logout\"><button>Log out</button></form>",
        escape(&config.route_prefix)
    )
}

fn layout(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title></head><body>{body}</body></html>",
        escape(title)
    )
}

/// `2026-05-01 09:30 UTC`.
fn when(unix: u64) -> String {
    i64::try_from(unix)
        .ok()
        .and_then(|seconds| chrono::DateTime::from_timestamp(seconds, 0))
        .map(|at| at.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default()
}

pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

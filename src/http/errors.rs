//! The error answers: a page in the member's language, or JSON for scripts
//! and the admin API; a log line for server-side failures only.

use serde::Serialize;

use super::config::ConfigProblem;
use super::context::Ctx;
use super::html::{self, ErrorPage};
use super::message::Response;
use crate::core::browser::Language;
use crate::core::error::{AuthError, Category};
use crate::core::texts;
use crate::core::urls::login_path;

pub(super) fn plain(status: u16, text: &str) -> Response {
    Response::new(status)
        .with_header("content-type", "text/plain; charset=utf-8")
        .with_body(format!("{text}\n"))
}

pub(super) fn method_not_allowed<K, T>(ctx: &Ctx<'_, '_, K, T>, methods: &[&str]) -> Response {
    let message = "method not allowed";
    let response = if ctx.json {
        Response::json(405, &ErrorJson::plain("bad-request", 405, message).body())
    } else {
        plain(405, message)
    };
    response.with_header("allow", methods.join(", "))
}

pub(super) fn not_found<K, T>(ctx: &Ctx<'_, '_, K, T>) -> Response {
    error_response(ctx, &AuthError::NotFound("no such page".into()), None)
}
pub(super) fn category_name(category: Category) -> &'static str {
    match category {
        Category::BadRequest => "bad-request",
        Category::LoginRejected => "login-rejected",
        Category::AccessDenied => "access-denied",
        Category::SessionInvalid => "session-invalid",
        Category::WecomUnavailable => "wecom-unavailable",
        Category::StoreUnavailable => "store-unavailable",
        Category::Misconfigured => "misconfigured",
        Category::Conflict => "conflict",
        Category::NotFound => "not-found",
    }
}

/// `{"error": {...}}`: every JSON failure.
#[derive(Serialize)]
pub(super) struct ErrorBody<'a> {
    pub error: ErrorJson<'a>,
}

/// `{category, status, message, admin_hint, errcode?, detail?, problems?}`.
#[derive(Serialize)]
pub(super) struct ErrorJson<'a> {
    pub category: &'static str,
    pub status: u16,
    pub message: &'a str,
    /// Always present (null when there is none): clients test it.
    pub admin_hint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errcode: Option<i32>,
    /// What exactly went wrong: for the admin API only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub problems: &'a [ConfigProblem],
}

impl<'a> ErrorJson<'a> {
    pub fn of(e: &AuthError, language: Language) -> ErrorJson<'static> {
        ErrorJson {
            category: category_name(e.category()),
            status: e.status(),
            message: e.member_message(language),
            admin_hint: e.admin_hint(),
            errcode: match e {
                AuthError::Wecom(w) => Some(w.errcode),
                _ => None,
            },
            detail: None,
            problems: &[],
        }
    }

    pub fn plain(category: &'static str, status: u16, message: &'a str) -> Self {
        ErrorJson {
            category,
            status,
            message,
            admin_hint: None,
            errcode: None,
            detail: None,
            problems: &[],
        }
    }

    pub fn body(self) -> ErrorBody<'a> {
        ErrorBody { error: self }
    }
}

/// For the operator's log: server-side failures only, never a secret.
pub(super) fn log_line<K, T>(ctx: &Ctx<'_, '_, K, T>, e: &AuthError) -> Option<String> {
    (e.status() >= 500).then(|| format!("wecom-auth: {} {}: {e}", ctx.request.method, ctx.path))
}

/// An error as a page (or JSON when asked for), `authenticator` naming the
/// login to start again.
pub(super) fn error_response<K, T>(
    ctx: &Ctx<'_, '_, K, T>,
    e: &AuthError,
    authenticator: Option<&str>,
) -> Response {
    let mut response = if ctx.json {
        Response::json(e.status(), &ErrorJson::of(e, ctx.language).body())
    } else {
        let category = e.category();
        let retry = matches!(
            category,
            Category::BadRequest
                | Category::LoginRejected
                | Category::SessionInvalid
                | Category::WecomUnavailable
                | Category::StoreUnavailable
        )
        .then(|| {
            (
                texts::LOG_IN_AGAIN.get(ctx.language),
                login_path(&ctx.config.route_prefix, authenticator, None),
            )
        });
        let page = ErrorPage {
            title: category.title().get(ctx.language),
            message: e.member_message(ctx.language),
            status: e.status(),
            errcode: match e {
                AuthError::Wecom(w) => Some(w.errcode),
                _ => None,
            },
            admin: e.admin_hint().into_iter().collect(),
            retry,
        };
        Response::html(e.status(), html::error_page(ctx.language, &page))
    };
    response.log = log_line(ctx, e);
    response
}

/// A refusal of ours that is no `AuthError` (a limit, an access rule): a
/// page with `title` and `message` in the member's language, or JSON
/// `{"error": {category, status, message, detail?}}`.
pub(super) fn refusal_answer<K, T>(
    ctx: &Ctx<'_, '_, K, T>,
    status: u16,
    category: &'static str,
    title: texts::Text,
    message: texts::Text,
    detail: Option<String>,
) -> Response {
    let message = message.get(ctx.language);
    if ctx.json {
        let error = ErrorJson {
            detail,
            ..ErrorJson::plain(category, status, message)
        };
        return Response::json(status, &error.body());
    }
    let page = ErrorPage {
        title: title.get(ctx.language),
        message,
        status,
        errcode: None,
        admin: Vec::new(),
        retry: None,
    };
    Response::html(status, html::error_page(ctx.language, &page))
}

/// Every route answers this while the configuration is unusable.
pub(super) fn config_error(language: Language, json: bool, problems: &[ConfigProblem]) -> Response {
    let message = texts::MISCONFIGURED.get(language);
    let lines: Vec<String> = problems
        .iter()
        .map(|p| match &p.authenticator {
            Some(a) => format!("{}: {} (authenticator {a})", p.variable, p.problem),
            None => format!("{}: {}", p.variable, p.problem),
        })
        .collect();
    let mut response = if json {
        let error = ErrorJson {
            admin_hint: Some(
                "fix the configuration variables (Spin variables) listed in problems".into(),
            ),
            problems,
            ..ErrorJson::plain("misconfigured", 500, message)
        };
        Response::json(500, &error.body())
    } else {
        let page = ErrorPage {
            title: Category::Misconfigured.title().get(language),
            message,
            status: 500,
            errcode: None,
            admin: lines.clone(),
            retry: None,
        };
        Response::html(500, html::error_page(language, &page))
    };
    response.log = Some(format!("wecom-auth: configuration: {}", lines.join("; ")));
    response
}

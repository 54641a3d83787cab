//! The audit trail: one JSON line per login started, login finished or
//! refused, logout, admin change and `/verify` refusal, written where the
//! host collects the component's output (stderr: Spin's component log, the
//! gateway's stderr). Fields: `ts` (Unix s), `event`, `outcome`, and where
//! known `authenticator`, `wecom_userid`, `user_id`, `category`, `errcode`,
//! `client`, `request_id`, `wecom_calls`, `duration_ms`, `detail`, and on
//! `rate-limited` lines `client_address`. Never a secret, token,
//! code, state or cookie: only the fields below exist.

use std::cell::Cell;

use super::context::Ctx;
use super::message::Response;
use crate::core::browser;
use crate::core::error::{AuthError, Category};
use crate::core::ports::{HttpRequest, HttpResponse, Transport};

/// One line of the trail: one JSON object, its `None` fields left out.
#[derive(Debug, Default, serde::Serialize)]
pub struct Event<'a> {
    pub ts: u64,
    /// `login-started`, `login-finished`, `login-refused`, `logout`,
    /// `verify-refused`, `admin`, `rate-limited`, `session-ended` (WeCom
    /// refused a returning member's profile after the early answer).
    pub event: &'a str,
    /// `ok`, `created`, `newly-bound`, `existing`, `refused`, `error`, or the
    /// admin action done.
    pub outcome: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authenticator: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wecom_userid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errcode: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<&'static str>,
    pub request_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wecom_calls: Option<u32>,
    /// The client address a limit counted (rate-limited lines only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_address: Option<&'a str>,
    /// Milliseconds from the request coming in to this line.
    pub duration_ms: u64,
    /// A fixed phrase of ours (e.g. a flow or a refusal reason), never input.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<&'static str>,
}

impl<'a> Event<'a> {
    /// An event of this request: time, request id and client filled in.
    pub fn of<K, T>(ctx: &Ctx<'_, '_, K, T>, event: &'a str, outcome: &'a str) -> Self {
        Event {
            ts: ctx.env.now,
            event,
            outcome,
            client: Some(browser::detect(ctx.request.user_agent()).client.name()),
            request_id: request_id(ctx),
            duration_ms: (ctx.env.elapsed_ms)(),
            ..Event::default()
        }
    }

    /// The error's category and WeCom errcode.
    pub fn failed(mut self, e: &AuthError) -> Self {
        self.category = Some(super::errors::category_name(e.category()));
        self.errcode = match e {
            AuthError::Wecom(w) => Some(w.errcode),
            _ => None,
        };
        self.outcome = if e.category() == Category::StoreUnavailable
            || e.category() == Category::WecomUnavailable
            || e.category() == Category::Misconfigured
        {
            "error"
        } else {
            "refused"
        };
        self
    }

    pub fn line(&self) -> String {
        serde_json::to_string(self).expect("an event of strings and integers serializes")
    }
}

/// A response with its audit line.
pub trait Audited {
    fn audited(self, event: &Event<'_>) -> Self;
}

impl Audited for Response {
    fn audited(mut self, event: &Event<'_>) -> Self {
        self.audit = Some(event.line());
        self
    }
}

/// 8 bytes of the request's randomness, hex: ties a line to its request.
fn request_id<K, T>(ctx: &Ctx<'_, '_, K, T>) -> String {
    let random = ctx.env.random;
    hex::encode(&random[random.len() - 8..])
}

/// A transport that counts the WeCom calls made through it.
pub struct Counting<'a, T> {
    pub inner: &'a T,
    pub calls: Cell<u32>,
}

impl<'a, T> Counting<'a, T> {
    pub fn new(inner: &'a T) -> Self {
        Counting {
            inner,
            calls: Cell::new(0),
        }
    }
}

impl<T: Transport> Transport for Counting<'_, T> {
    fn send(&self, request: &HttpRequest) -> Result<HttpResponse, String> {
        self.calls.set(self.calls.get() + 1);
        self.inner.send(request)
    }

    fn send_all(&self, requests: &[HttpRequest]) -> Vec<Result<HttpResponse, String>> {
        self.calls.set(self.calls.get() + requests.len() as u32);
        self.inner.send_all(requests)
    }
}

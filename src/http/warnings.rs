//! What one request notices of the guards that cannot work as configured
//! ([`crate::core::warnings`]): WeCom's clock in the `Date` of every
//! answer, a host that refused a call's timeouts, a login request without
//! a client address. Each is recorded in
//! the store and, the first time, logged with the request's answer.

use std::cell::{Cell, RefCell};

use crate::core::ports::{HttpRequest, HttpResponse, KeyValue, Transport};
use crate::core::warnings::{self, MAX_CLOCK_SKEW, Warning};

/// The log lines a request noticed besides its answer, and WeCom's clock as
/// its answers told it.
#[derive(Default)]
pub struct Notices {
    lines: RefCell<Vec<String>>,
    /// This host's clock minus WeCom's (s), from the last answer's `Date`.
    clock_skew: Cell<Option<i64>>,
    /// The warnings this request noticed already: each costs the store one
    /// read a request, however many WeCom answers tell it.
    noticed: RefCell<Vec<Warning>>,
}

impl Notices {
    /// Records `warning` (see [`warnings::notice`]), once a request; its log
    /// line, when news, goes out with the answer.
    pub fn notice(&self, kv: &impl KeyValue, warning: Warning, detail: &str, now: u64) {
        if self.noticed.borrow().contains(&warning) {
            return;
        }
        self.noticed.borrow_mut().push(warning);
        if let Some(line) = warnings::notice(kv, warning, detail, now) {
            self.push(line);
        }
    }

    /// A log line to go out with the answer.
    pub fn push(&self, line: String) {
        self.lines.borrow_mut().push(line);
    }

    /// This host's clock minus WeCom's (s), if an answer told it.
    pub fn clock_skew(&self) -> Option<i64> {
        self.clock_skew.get()
    }

    /// `log` (the answer's own line) followed by the lines noticed.
    pub fn with_log(&self, log: Option<String>) -> Option<String> {
        let lines = self.lines.take();
        let all: Vec<String> = log.into_iter().chain(lines).collect();
        (!all.is_empty()).then(|| all.join("\n"))
    }
}

/// What a clock `skew` seconds off WeCom's breaks, and what to do.
pub fn clock_detail(skew: i64) -> String {
    let way = if skew > 0 { "ahead of" } else { "behind" };
    format!(
        "this host's clock is {} s {way} WeCom's (the Date of its answers): login states, \
         sessions and cached facts are timed by it; synchronise it (NTP)",
        skew.unsigned_abs()
    )
}

/// A transport that reads what each WeCom answer tells of this host: its
/// clock against WeCom's `Date` ([`Warning::Clock`] beyond
/// [`MAX_CLOCK_SKEW`]), and whether the host applied the call's timeouts
/// ([`Warning::ApiTimeout`]).
pub struct WecomWatch<'a, T, K> {
    pub transport: &'a T,
    pub kv: &'a K,
    pub now: u64,
    pub notices: &'a Notices,
}

impl<T: Transport, K: KeyValue> WecomWatch<'_, T, K> {
    fn read(&self, answer: &Result<HttpResponse, String>) {
        let Ok(answer) = answer else { return };
        if answer.timeouts_refused {
            let detail = "the host refused the timeouts of calls to WeCom (wasi:http \
                          request-options), so api_timeout_ms does not bound them: a slow \
                          WeCom holds requests as long as the host lets it; set the host's \
                          own outbound timeout, or use a host that takes them (Spin, wasmtime)";
            self.notices
                .notice(self.kv, Warning::ApiTimeout, detail, self.now);
        }
        let Some(date) = answer.date else { return };
        let skew = self.now as i64 - date as i64;
        self.notices.clock_skew.set(Some(skew));
        if skew.abs() > MAX_CLOCK_SKEW {
            let detail = clock_detail(skew);
            self.notices
                .notice(self.kv, Warning::Clock, &detail, self.now);
        }
    }
}

impl<T: Transport, K: KeyValue> Transport for WecomWatch<'_, T, K> {
    fn send(&self, request: &HttpRequest) -> Result<HttpResponse, String> {
        let answer = self.transport.send(request);
        self.read(&answer);
        answer
    }

    fn send_all(&self, requests: &[HttpRequest]) -> Vec<Result<HttpResponse, String>> {
        let answers = self.transport.send_all(requests);
        // One reading is enough: they came back together.
        if let Some(answer) = answers
            .iter()
            .find(|a| a.as_ref().is_ok_and(|a| a.date.is_some()))
        {
            self.read(answer);
        }
        answers
    }
}

/// Why a login request's client address cannot be counted, for the
/// warning: the proxy must set `header`.
pub fn client_address_detail(header: &str, present: bool) -> String {
    let what = if present {
        format!("carry a {header} header that holds no IP address")
    } else {
        format!("arrive without the {header} header")
    };
    format!(
        "login requests {what}, so rate_limit_per_client is not applied to them: have the proxy \
         set {header} to the client's address, or set client_address_header to the header it sets"
    )
}

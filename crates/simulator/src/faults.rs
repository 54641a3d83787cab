//! Fault switches: what can go wrong between the component and WeCom.

use std::time::Duration;

use super::endpoint::Endpoint;

/// A misbehaviour to inject. Install with
/// [`SimulatorHandle::fault`](super::SimulatorHandle::fault).
///
/// Where it acts:
/// - [`Fault::Latency`] delays the answer (real time, not the simulator clock)
///   and then the call goes on normally (or meets another fault).
/// - [`Fault::Http`], [`Fault::DropConnection`] and the errcode faults
///   ([`Fault::UntrustedIp`], [`Fault::RateLimited`], [`Fault::SystemBusy`])
///   answer INSTEAD of the real handler: nothing happens (a code is not consumed,
///   no token is issued).
/// - [`Fault::MalformedJson`] and [`Fault::TruncatedJson`] run the real handler
///   (a code IS consumed) and mangle the JSON on the way out, as a broken proxy
///   would: a retry of the same code then gets 40029.
///
/// Errcode and JSON faults only apply to server API endpoints; on the login
/// pages they are skipped (and not used up). Latency, HTTP status and dropped
/// connections apply to pages too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer this much later.
    Latency(Duration),
    /// Answer with this HTTP status (meant for 500 / 502 / 503; anything outside
    /// 500..=599 is sent as 500) and a small HTML body, like a gateway in front of WeCom.
    Http(u16),
    /// HTTP 200 with a body that is not JSON (the real body with a syntax error).
    MalformedJson,
    /// HTTP 200 with the real JSON cut in half (Content-Length matches the cut body).
    TruncatedJson,
    /// Close the connection without answering.
    DropConnection,
    /// `{"errcode":60020,...}`: the caller's IP is not among the app's trusted IPs.
    UntrustedIp,
    /// `{"errcode":45009,"errmsg":"api freq out of limit"}`.
    RateLimited,
    /// `{"errcode":-1,"errmsg":"system busy"}`.
    SystemBusy,
    /// `{"errcode":60011,"errmsg":"no privilege to access/modify contact/party/agent"}`:
    /// the app may not read these contacts (a console change WeCom applies
    /// at once, e.g. a visible range narrowed).
    NoPrivilege,
}

impl Fault {
    /// [`Fault::Latency`] in milliseconds.
    pub fn latency_ms(ms: u64) -> Fault {
        Fault::Latency(Duration::from_millis(ms))
    }

    /// The errcode an errcode fault answers with.
    pub(crate) fn errcode(self) -> Option<i64> {
        match self {
            Fault::UntrustedIp => Some(60020),
            Fault::RateLimited => Some(45009),
            Fault::SystemBusy => Some(-1),
            Fault::NoPrivilege => Some(60011),
            _ => None,
        }
    }

    fn applies_to(self, endpoint: Endpoint) -> bool {
        match self {
            Fault::Latency(_) | Fault::Http(_) | Fault::DropConnection => true,
            Fault::MalformedJson
            | Fault::TruncatedJson
            | Fault::UntrustedIp
            | Fault::RateLimited
            | Fault::SystemBusy
            | Fault::NoPrivilege => endpoint.is_api(),
        }
    }
}

/// Which calls a fault applies to. An [`Endpoint`] converts into
/// `FaultScope::Endpoint`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultScope {
    /// Only this endpoint.
    Endpoint(Endpoint),
    /// Every server API endpoint (`/cgi-bin/...`), not the login pages.
    Api,
    /// Every endpoint, login pages included.
    All,
}

impl FaultScope {
    fn matches(self, endpoint: Endpoint) -> bool {
        match self {
            FaultScope::Endpoint(e) => e == endpoint,
            FaultScope::Api => endpoint.is_api(),
            FaultScope::All => true,
        }
    }
}

impl From<Endpoint> for FaultScope {
    fn from(endpoint: Endpoint) -> Self {
        FaultScope::Endpoint(endpoint)
    }
}

#[derive(Debug, Clone)]
struct Rule {
    id: u64,
    scope: FaultScope,
    fault: Fault,
    /// `None`: until cleared; `Some(n)`: the next n matching calls.
    remaining: Option<u32>,
}

/// The installed faults, in installation order.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    rules: Vec<Rule>,
    next_id: u64,
}

/// What to do to one call.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Plan {
    pub(crate) latency: Duration,
    /// The first matching non-latency fault.
    pub(crate) outcome: Option<Fault>,
}

impl Faults {
    pub(crate) fn add(&mut self, scope: FaultScope, fault: Fault, remaining: Option<u32>) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        if remaining != Some(0) {
            self.rules.push(Rule {
                id,
                scope,
                fault,
                remaining,
            });
        }
        id
    }

    /// Limits rule `id` to its next `n` matches (0 removes it).
    pub(crate) fn set_remaining(&mut self, id: u64, n: u32) {
        if let Some(rule) = self.rules.iter_mut().find(|r| r.id == id) {
            rule.remaining = Some(n);
        }
        self.rules.retain(|r| r.remaining != Some(0));
    }

    pub(crate) fn remove(&mut self, id: u64) {
        self.rules.retain(|r| r.id != id);
    }

    pub(crate) fn clear(&mut self) {
        self.rules.clear();
    }

    /// Uses of rule `id` left: `None` if gone, `Some(None)` if persistent.
    pub(crate) fn remaining(&self, id: u64) -> Option<Option<u32>> {
        self.rules.iter().find(|r| r.id == id).map(|r| r.remaining)
    }

    /// Picks the faults for one call to `endpoint` and uses them up: every
    /// matching latency (added up) and the first matching other fault.
    pub(crate) fn take(&mut self, endpoint: Endpoint) -> Plan {
        let mut plan = Plan::default();
        for rule in &mut self.rules {
            if !rule.scope.matches(endpoint) || !rule.fault.applies_to(endpoint) {
                continue;
            }
            let used = match rule.fault {
                Fault::Latency(extra) => {
                    plan.latency = plan.latency.saturating_add(extra);
                    true
                }
                other if plan.outcome.is_none() => {
                    plan.outcome = Some(other);
                    true
                }
                _ => false,
            };
            if used && let Some(n) = rule.remaining.as_mut() {
                *n = n.saturating_sub(1);
            }
        }
        self.rules.retain(|r| r.remaining != Some(0));
        plan
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counted_faults_run_out_and_persistent_ones_stay() {
        let mut faults = Faults::default();
        let once = faults.add(Endpoint::GetToken.into(), Fault::Http(503), Some(1));
        faults.add(FaultScope::Api, Fault::SystemBusy, None);
        assert_eq!(faults.remaining(once), Some(Some(1)));
        assert_eq!(
            faults.take(Endpoint::GetToken).outcome,
            Some(Fault::Http(503))
        );
        assert_eq!(faults.remaining(once), None);
        assert_eq!(
            faults.take(Endpoint::GetToken).outcome,
            Some(Fault::SystemBusy)
        );
        assert_eq!(
            faults.take(Endpoint::UserGet).outcome,
            Some(Fault::SystemBusy)
        );
    }

    #[test]
    fn latencies_add_up_and_combine_with_one_outcome() {
        let mut faults = Faults::default();
        faults.add(FaultScope::All, Fault::latency_ms(5), Some(2));
        faults.add(Endpoint::UserGet.into(), Fault::latency_ms(7), None);
        let second = faults.add(Endpoint::UserGet.into(), Fault::TruncatedJson, Some(1));
        let third = faults.add(Endpoint::UserGet.into(), Fault::DropConnection, Some(1));
        let plan = faults.take(Endpoint::UserGet);
        assert_eq!(plan.latency, Duration::from_millis(12));
        assert_eq!(plan.outcome, Some(Fault::TruncatedJson));
        assert_eq!(faults.remaining(second), None);
        assert_eq!(faults.remaining(third), Some(Some(1)), "not used up");
        let plan = faults.take(Endpoint::UserGet);
        assert_eq!(plan.outcome, Some(Fault::DropConnection));
        assert_eq!(plan.latency, Duration::from_millis(12));
        assert_eq!(
            faults.take(Endpoint::UserGet).latency,
            Duration::from_millis(7)
        );
    }

    #[test]
    fn api_only_faults_skip_pages_without_being_used() {
        let mut faults = Faults::default();
        let id = faults.add(FaultScope::All, Fault::RateLimited, Some(1));
        assert_eq!(faults.take(Endpoint::OAuthPage), Plan::default());
        assert_eq!(faults.remaining(id), Some(Some(1)));
        let page = faults.add(FaultScope::All, Fault::Http(502), Some(1));
        assert_eq!(
            faults.take(Endpoint::WebLoginPage).outcome,
            Some(Fault::Http(502))
        );
        assert_eq!(faults.remaining(page), None);
        let api = faults.add(FaultScope::Api, Fault::Http(500), None);
        assert_eq!(faults.take(Endpoint::OAuthPage), Plan::default());
        faults.set_remaining(api, 0);
        assert_eq!(
            faults.take(Endpoint::GetToken).outcome,
            Some(Fault::RateLimited)
        );
        assert_eq!(faults.take(Endpoint::GetToken), Plan::default());
    }

    #[test]
    fn zero_times_installs_nothing_and_clear_empties() {
        let mut faults = Faults::default();
        let id = faults.add(FaultScope::All, Fault::SystemBusy, Some(0));
        assert_eq!(faults.remaining(id), None);
        faults.add(FaultScope::All, Fault::SystemBusy, None);
        faults.clear();
        assert_eq!(faults.take(Endpoint::GetToken), Plan::default());
    }
}

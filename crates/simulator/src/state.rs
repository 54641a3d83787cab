//! The simulator's mutable state behind one mutex: the model, the clock
//! offset, issued tokens, codes and tickets, and the fault rules.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher, RandomState};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::faults::Faults;
use super::model::Model;

/// `access_token` lifetime.
pub(crate) const TOKEN_LIFETIME: Duration = Duration::from_secs(7200);
/// `code` lifetime.
pub(crate) const CODE_LIFETIME: Duration = Duration::from_secs(300);
/// `user_ticket` lifetime.
pub(crate) const TICKET_LIFETIME: Duration = Duration::from_secs(1800);
/// Past this many records, expired ones are pruned on insert.
const PRUNE_ABOVE: usize = 10_000;

#[derive(Debug, Clone)]
pub(crate) struct TokenRecord {
    pub(crate) corp_id: String,
    pub(crate) agent_id: u32,
    pub(crate) expires_at: Instant,
}

/// Who picked themselves on a login page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Subject {
    Member(String),
    NonMember {
        openid: String,
        external_userid: String,
    },
}

#[derive(Debug, Clone)]
pub(crate) struct CodeRecord {
    pub(crate) corp_id: String,
    pub(crate) subject: Subject,
    /// `host[:port]` of the `redirect_uri`, lowercased.
    pub(crate) redirect_authority: String,
    /// In-client, `snsapi_privateinfo` with an agentid, member visible and consenting.
    pub(crate) ticket_eligible: bool,
    pub(crate) expires_at: Instant,
}

#[derive(Debug, Clone)]
pub(crate) struct TicketRecord {
    pub(crate) corp_id: String,
    pub(crate) agent_id: u32,
    pub(crate) userid: String,
    pub(crate) expires_at: Instant,
}

pub(crate) struct State {
    pub(crate) model: Model,
    pub(crate) clock_offset: Duration,
    pub(crate) tokens: HashMap<String, TokenRecord>,
    /// Unused codes; a code is removed when consumed, so reuse looks unknown.
    pub(crate) codes: HashMap<String, CodeRecord>,
    pub(crate) tickets: HashMap<String, TicketRecord>,
    pub(crate) faults: Faults,
    /// In-client authorizations: silent ones, consent screens shown.
    pub(crate) authorizations: Authorizations,
    rng: Rng,
}

/// How in-client authorizations went (WeCom doc 91022).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Authorizations {
    /// `snsapi_base` logins of a member: redirected at once (静默授权).
    pub(crate) silent: u64,
    /// Consent screens shown for `snsapi_privateinfo` (手动授权).
    pub(crate) consent_pages: u64,
}

impl State {
    pub(crate) fn new(model: Model) -> Self {
        Self {
            model,
            clock_offset: Duration::ZERO,
            tokens: HashMap::new(),
            codes: HashMap::new(),
            tickets: HashMap::new(),
            faults: Faults::default(),
            authorizations: Authorizations::default(),
            rng: Rng::seeded(),
        }
    }

    /// Simulator time: real time plus the offset tests advance.
    pub(crate) fn now(&self) -> Instant {
        Instant::now() + self.clock_offset
    }

    /// Simulator time as a wall-clock time (the `Date` of its answers).
    pub(crate) fn system_now(&self) -> SystemTime {
        SystemTime::now() + self.clock_offset
    }

    /// Simulator time as Unix seconds (for the `hint` of error messages).
    pub(crate) fn unix_now(&self) -> u64 {
        self.system_now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }

    /// A random string of `len` characters from `[A-Za-z0-9_-]`.
    pub(crate) fn random_string(&mut self, len: usize) -> String {
        self.rng.string(len)
    }

    pub(crate) fn random_bytes(&mut self) -> [u8; 16] {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&self.rng.next().to_le_bytes());
        bytes[8..].copy_from_slice(&self.rng.next().to_le_bytes());
        bytes
    }

    pub(crate) fn random_hex(&mut self, len: usize) -> String {
        (0..len)
            .map(|_| char::from(b"0123456789abcdef"[(self.rng.next() & 15) as usize]))
            .collect()
    }

    /// A valid token of this app (same answer within its lifetime, as WeCom
    /// does), or a new one.
    pub(crate) fn token_for(&mut self, corp_id: &str, agent_id: u32) -> (String, Duration) {
        let now = self.now();
        let current = self
            .tokens
            .iter()
            .find(|(_, t)| t.corp_id == corp_id && t.agent_id == agent_id && t.expires_at > now);
        if let Some((token, record)) = current {
            return (token.clone(), record.expires_at - now);
        }
        // Expired tokens stay known, so using one answers 42001, not 40014.
        let token = self.random_string(64);
        self.tokens.insert(
            token.clone(),
            TokenRecord {
                corp_id: corp_id.into(),
                agent_id,
                expires_at: now + TOKEN_LIFETIME,
            },
        );
        (token, TOKEN_LIFETIME)
    }

    pub(crate) fn issue_code(&mut self, record: CodeRecord) -> String {
        let now = self.now();
        if self.codes.len() > PRUNE_ABOVE {
            self.codes.retain(|_, c| c.expires_at > now);
        }
        let code = self.random_string(43);
        self.codes.insert(code.clone(), record);
        code
    }

    pub(crate) fn issue_ticket(&mut self, corp_id: &str, agent_id: u32, userid: &str) -> String {
        let now = self.now();
        if self.tickets.len() > PRUNE_ABOVE {
            self.tickets.retain(|_, t| t.expires_at > now);
        }
        let ticket = self.random_string(86);
        self.tickets.insert(
            ticket.clone(),
            TicketRecord {
                corp_id: corp_id.into(),
                agent_id,
                userid: userid.into(),
                expires_at: now + TICKET_LIFETIME,
            },
        );
        ticket
    }
}

/// SplitMix64 seeded from the std hasher's random keys and the time: plenty
/// for a test double (nothing here is a real secret).
struct Rng(u64);

impl Rng {
    fn seeded() -> Self {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u128(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        Self(hasher.finish())
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn string(&mut self, len: usize) -> String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        (0..len)
            .map(|_| char::from(ALPHABET[(self.next() & 63) as usize]))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_reused_until_expiry() {
        let mut state = State::new(Model::sample());
        let (first, ttl) = state.token_for("c", 1);
        assert_eq!(ttl, TOKEN_LIFETIME);
        assert_eq!(first.len(), 64);
        let (again, _) = state.token_for("c", 1);
        assert_eq!(first, again);
        let (other_app, _) = state.token_for("c", 2);
        assert_ne!(first, other_app);
        state.clock_offset = TOKEN_LIFETIME;
        let (fresh, _) = state.token_for("c", 1);
        assert_ne!(first, fresh);
        assert!(state.tokens.contains_key(&first), "kept for 42001");
    }

    #[test]
    fn random_strings_differ_and_use_the_alphabet() {
        let mut state = State::new(Model::default());
        let a = state.random_string(43);
        let b = state.random_string(43);
        assert_ne!(a, b);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        assert_eq!(state.random_hex(32).len(), 32);
    }
}

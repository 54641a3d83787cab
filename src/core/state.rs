//! The OAuth `state` and the pre-auth cookie it is bound to.
//!
//! `state` = lowercase hex of `version ‖ authenticator tag ‖ flags ‖ expiry ‖
//! nonce ‖ MAC`: 42 bytes, 84 characters, within WeCom's `[A-Za-z0-9]{1,128}`.
//! The flags say the flow (in-client or web), the in-client scope asked for
//! (silent `snsapi_base` or `snsapi_privateinfo`) and whether the login is a
//! silent restart after a lost cookie. The MAC is HMAC-SHA256 (truncated to 128 bits)
//! over the authenticator's name, the fields before it and a hash of this
//! login's entry in the pre-auth cookie, so a state verifies only with the
//! cookie of the browser that started the login.
//!
//! The pre-auth cookie holds the logins in flight in one browser, newest
//! first, at most [`MAX_LOGINS_IN_FLIGHT`], separated by `!`: a second tab, the
//! back button or the WeCom client opening the app twice starts another login
//! without ending the first. Each entry is `<id><binding>.<return path>`: the
//! id (the first 4 bytes of the state's nonce, hex) finds the entry, the
//! random binding (16 bytes, hex) ties it to this browser, and the return path
//! (cookie-safe percent-encoding) never enters `state`.

use hmac::{Hmac, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use sha2::{Digest, Sha256};

use super::flow::{InClientScope, LoginFlow};
use super::settings::{Authenticator, SigningKey};

/// 3 since the flags carry the in-client scope; 2 (every in-client login
/// asked for `snsapi_privateinfo`) is still read, as that, for the states
/// in flight across an upgrade. An older release refuses a version-3 state
/// rather than misreading its scope.
pub const STATE_VERSION: u8 = 3;
const PREVIOUS_STATE_VERSION: u8 = 2;
/// WeCom refuses longer states (errcode 84025).
pub const MAX_STATE: usize = 128;
const TAG_LEN: usize = 4;
const EXPIRY_LEN: usize = 8;
const NONCE_LEN: usize = 12;
const BINDING_LEN: usize = 16;
const MAC_LEN: usize = 16;
/// Bytes of the nonce that name a login's entry in the cookie.
const ENTRY_ID_LEN: usize = 4;
const FLAGS_AT: usize = 1 + TAG_LEN;
const EXPIRY_AT: usize = FLAGS_AT + 1;
const NONCE_AT: usize = EXPIRY_AT + EXPIRY_LEN;
const SIGNED_LEN: usize = NONCE_AT + NONCE_LEN;
const STATE_BYTES: usize = SIGNED_LEN + MAC_LEN;
/// Randomness one login attempt needs: the state's nonce and the cookie's binding.
pub const RANDOM_BYTES: usize = NONCE_LEN + BINDING_LEN;
/// Longer pre-auth cookies are refused before any work.
pub const MAX_PRE_AUTH_COOKIE: usize = 4096;
/// Logins one browser may have in flight; a newer one drops the oldest.
pub const MAX_LOGINS_IN_FLIGHT: usize = 4;
/// What the entries together may take, so the cookie (with its name and
/// attributes) stays within the 4096 bytes every browser keeps (RFC 6265 §6.1).
const COOKIE_BUDGET: usize = 3600;
const ENTRY_SEPARATOR: char = '!';
const MAC_CONTEXT: &[u8] = b"wecom-auth state v2\0";

const FLAG_IN_CLIENT: u8 = 1;
const FLAG_RESTARTED: u8 = 2;
/// An in-client login that asked for `snsapi_privateinfo` (without it:
/// `snsapi_base`, silent).
const FLAG_PRIVATEINFO: u8 = 4;

/// Cookie-safe encoding of the return path: alphanumerics and `-._~/` stay
/// (so neither `.` inside a path nor the `!` between entries is ambiguous:
/// the path is everything after an entry's first dot, `!` is always encoded).
const COOKIE_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedState {
    pub state: String,
    /// The whole cookie to set: this login first, then those still in flight.
    pub pre_auth_cookie: String,
    pub expires_at: u64,
}

/// What a login attempt starts with.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    /// Already sanitized.
    pub return_to: &'a str,
    pub flow: LoginFlow,
    /// What an in-client login asks WeCom for (ignored by web logins).
    pub scope: InClientScope,
    /// A silent restart of an in-client login whose cookie the webview lost:
    /// a second loss is not restarted again.
    pub restarted: bool,
    /// The browser's current pre-auth cookie: its logins stay in flight.
    pub in_flight: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedState {
    /// Identifies this login attempt, for single-use bookkeeping.
    pub nonce: [u8; NONCE_LEN],
    pub expires_at: u64,
    /// Where to go after login: the validated path from the cookie, or the default.
    pub return_to: String,
    /// The flow the login was started with.
    pub flow: LoginFlow,
    /// What the in-client login asked WeCom for.
    pub scope: InClientScope,
    /// The pre-auth cookie without this login's entry (empty: no login left).
    pub remaining_cookie: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateRejection {
    /// The browser holds no entry for this login (another browser, cookies
    /// blocked or dropped, or the login already finished here).
    MissingCookie,
    Malformed,
    WrongAuthenticator,
    BadSignature,
    Expired,
    AlreadyUsed,
}

/// What a state says before it is verified (to route it, and to decide on a
/// silent restart when its cookie is gone; never to trust).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claimed {
    pub flow: LoginFlow,
    pub scope: InClientScope,
    pub restarted: bool,
}

/// Four bytes naming the authenticator inside `state`, so a front serving several
/// authenticators on one callback can tell which one a state belongs to.
pub fn authenticator_tag(name: &str) -> [u8; TAG_LEN] {
    let digest = Sha256::new()
        .chain_update(b"wecom-auth authenticator\0")
        .chain_update(name.as_bytes())
        .finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

/// Whether `state` claims to belong to the authenticator `name` (unverified).
pub fn claims_authenticator(state: &str, name: &str) -> bool {
    decode_state(state).is_some_and(|bytes| bytes[1..FLAGS_AT] == authenticator_tag(name))
}

/// The flow, in-client scope and restart flag `state` claims (unverified).
pub fn claimed(state: &str) -> Option<Claimed> {
    decode_state(state).map(|bytes| flags(bytes[0], bytes[FLAGS_AT]))
}

fn flags(version: u8, byte: u8) -> Claimed {
    Claimed {
        flow: if byte & FLAG_IN_CLIENT != 0 {
            LoginFlow::InClient
        } else {
            LoginFlow::Web
        },
        scope: if byte & FLAG_PRIVATEINFO != 0 || version == PREVIOUS_STATE_VERSION {
            InClientScope::PrivateInfo
        } else {
            InClientScope::Base
        },
        restarted: byte & FLAG_RESTARTED != 0,
    }
}

/// Issues a state and the pre-auth cookie that carries it beside the logins
/// already in flight.
pub fn issue(
    authenticator: &Authenticator,
    attempt: &Attempt<'_>,
    now: u64,
    random: &[u8; RANDOM_BYTES],
) -> IssuedState {
    let (nonce, binding) = random.split_at(NONCE_LEN);
    let mut path = utf8_percent_encode(attempt.return_to, COOKIE_VALUE).to_string();
    // A path too long for the cookie is not kept: the login lands on the default.
    if path.len() > COOKIE_BUDGET / 2 {
        path.clear();
    }
    let entry = format!(
        "{}{}.{path}",
        hex::encode(&nonce[..ENTRY_ID_LEN]),
        hex::encode(binding)
    );
    let expires_at = now.saturating_add(u64::from(authenticator.state_lifetime));
    let mut signed = [0u8; SIGNED_LEN];
    signed[0] = STATE_VERSION;
    signed[1..FLAGS_AT].copy_from_slice(&authenticator_tag(&authenticator.name));
    signed[FLAGS_AT] = match (attempt.flow, attempt.scope) {
        (LoginFlow::InClient, InClientScope::PrivateInfo) => FLAG_IN_CLIENT | FLAG_PRIVATEINFO,
        (LoginFlow::InClient, InClientScope::Base) => FLAG_IN_CLIENT,
        (LoginFlow::Web, _) => 0,
    } | if attempt.restarted { FLAG_RESTARTED } else { 0 };
    signed[EXPIRY_AT..NONCE_AT].copy_from_slice(&expires_at.to_be_bytes());
    signed[NONCE_AT..].copy_from_slice(nonce);
    let signer = &authenticator.signing_keys[0];
    let mac = state_mac(signer, &authenticator.name, &signed, &entry).finalize();
    let mut state_bytes = [0u8; STATE_BYTES];
    state_bytes[..SIGNED_LEN].copy_from_slice(&signed);
    state_bytes[SIGNED_LEN..].copy_from_slice(&mac.into_bytes()[..MAC_LEN]);
    let id = entry[..2 * ENTRY_ID_LEN].to_owned();
    let mut cookie = entry;
    for kept in entries(attempt.in_flight.unwrap_or_default())
        .filter(|kept| looks_like_entry(kept) && !kept.starts_with(&id))
        .take(MAX_LOGINS_IN_FLIGHT - 1)
    {
        if cookie.len() + 1 + kept.len() > COOKIE_BUDGET {
            break;
        }
        cookie.push(ENTRY_SEPARATOR);
        cookie.push_str(kept);
    }
    IssuedState {
        state: hex::encode(state_bytes),
        pre_auth_cookie: cookie,
        expires_at,
    }
}

/// Verifies a state against the pre-auth cookie the browser sent.
pub fn verify(
    authenticator: &Authenticator,
    state: &str,
    pre_auth_cookie: Option<&str>,
    now: u64,
) -> Result<VerifiedState, StateRejection> {
    let bytes = decode_state(state).ok_or(StateRejection::Malformed)?;
    if bytes[1..FLAGS_AT] != authenticator_tag(&authenticator.name) {
        return Err(StateRejection::WrongAuthenticator);
    }
    let cookie = pre_auth_cookie
        .filter(|c| !c.is_empty())
        .ok_or(StateRejection::MissingCookie)?;
    if cookie.len() > MAX_PRE_AUTH_COOKIE {
        return Err(StateRejection::BadSignature);
    }
    let (signed, mac) = bytes.split_at(SIGNED_LEN);
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&signed[NONCE_AT..]);
    let entry = entry_of(cookie, &entry_id(&bytes)).ok_or(StateRejection::MissingCookie)?;
    // Every key verifies (rotation); `verify_truncated_left` compares in constant time.
    let genuine = authenticator.signing_keys.iter().any(|key| {
        state_mac(key, &authenticator.name, signed, entry)
            .verify_truncated_left(mac)
            .is_ok()
    });
    if !genuine {
        return Err(StateRejection::BadSignature);
    }
    let mut expiry = [0u8; EXPIRY_LEN];
    expiry.copy_from_slice(&signed[EXPIRY_AT..NONCE_AT]);
    let expires_at = u64::from_be_bytes(expiry);
    if now >= expires_at {
        return Err(StateRejection::Expired);
    }
    // The entry is signed, but its path is checked again: one rule, every time.
    let path = entry
        .split_once('.')
        .and_then(|(_, encoded)| percent_decode_str(encoded).decode_utf8().ok());
    let return_to = authenticator.landing().resolve(path.as_deref());
    let remaining_cookie = entries(cookie)
        .filter(|other| *other != entry && looks_like_entry(other))
        .collect::<Vec<_>>()
        .join("!");
    let claimed = flags(signed[0], signed[FLAGS_AT]);
    Ok(VerifiedState {
        nonce,
        expires_at,
        return_to,
        flow: claimed.flow,
        scope: claimed.scope,
        remaining_cookie,
    })
}

/// Of the pre-auth cookies a browser sent (a sibling host may have set
/// another with a narrower path), the one holding this state's login, else
/// the first.
pub fn cookie_for<'a>(state: &str, mut cookies: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let first = cookies.next()?;
    let Some(bytes) = decode_state(state) else {
        return Some(first);
    };
    let id = entry_id(&bytes);
    let holds = |cookie: &str| entry_of(cookie, &id).is_some();
    if holds(first) {
        return Some(first);
    }
    Some(
        cookies
            .take(7)
            .find(|cookie| holds(cookie))
            .unwrap_or(first),
    )
}

/// The id of a state's entry in the cookie: its nonce's first bytes, hex.
fn entry_id(state: &[u8; STATE_BYTES]) -> String {
    hex::encode(&state[NONCE_AT..NONCE_AT + ENTRY_ID_LEN])
}

/// The entry of `cookie` named `id`.
fn entry_of<'c>(cookie: &'c str, id: &str) -> Option<&'c str> {
    entries(cookie).find(|entry| entry.starts_with(id))
}

/// The entries of a cookie, newest first, at most [`MAX_LOGINS_IN_FLIGHT`].
fn entries(cookie: &str) -> impl Iterator<Item = &str> {
    cookie
        .split(ENTRY_SEPARATOR)
        .filter(|entry| !entry.is_empty())
        .take(MAX_LOGINS_IN_FLIGHT)
}

/// `<8 hex id><32 hex binding>.<path>`, as [`issue`] writes entries.
fn looks_like_entry(entry: &str) -> bool {
    let hex_len = 2 * (ENTRY_ID_LEN + BINDING_LEN);
    entry.len() > hex_len
        && entry.as_bytes()[hex_len] == b'.'
        && entry.as_bytes()[..hex_len]
            .iter()
            .all(u8::is_ascii_hexdigit)
        && entry
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b";,\"\\".contains(&b))
}

fn decode_state(state: &str) -> Option<[u8; STATE_BYTES]> {
    if state.len() != STATE_BYTES * 2 {
        return None;
    }
    let mut bytes = [0u8; STATE_BYTES];
    hex::decode_to_slice(state, &mut bytes).ok()?;
    matches!(bytes[0], STATE_VERSION | PREVIOUS_STATE_VERSION).then_some(bytes)
}

fn state_mac(key: &SigningKey, name: &str, signed: &[u8], entry: &str) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key.secret.expose().as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(MAC_CONTEXT);
    mac.update(name.as_bytes());
    mac.update(&[0]);
    mac.update(signed);
    mac.update(&Sha256::digest(entry.as_bytes()));
    mac
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::settings::Secret;
    use crate::example::settings as sample;

    const NOW: u64 = 1_790_000_000;
    const RANDOM: [u8; RANDOM_BYTES] = [7; RANDOM_BYTES];

    fn web(return_to: &str) -> Attempt<'_> {
        Attempt {
            return_to,
            flow: LoginFlow::Web,
            scope: InClientScope::Base,
            restarted: false,
            in_flight: None,
        }
    }

    fn corp() -> Authenticator {
        sample("corp").check().unwrap()
    }

    #[test]
    fn state_is_alphanumeric_and_short_enough_for_wecom() {
        let issued = issue(&corp(), &web("/docs?x=1"), NOW, &RANDOM);
        assert!(issued.state.len() <= MAX_STATE);
        assert!(issued.state.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert!(
            !issued.state.contains("docs"),
            "the return path stays out of state"
        );
        assert_eq!(issued.expires_at, NOW + 600);
    }

    #[test]
    fn a_fresh_state_verifies_with_its_cookie_and_yields_the_return_path() {
        let a = corp();
        let issued = issue(&a, &web("/docs?x=1&y=%20#top"), NOW, &RANDOM);
        let verified = verify(&a, &issued.state, Some(&issued.pre_auth_cookie), NOW + 599).unwrap();
        assert_eq!(verified.return_to, "/docs?x=1&y=%20#top");
        assert_eq!(verified.nonce, [7; NONCE_LEN]);
        assert!(claims_authenticator(&issued.state, "corp"));
        assert!(!claims_authenticator(&issued.state, "other"));
    }

    #[test]
    fn cookie_value_holds_only_cookie_octets() {
        let issued = issue(&corp(), &web("/a;b,c\"d?e=1&f=%22!"), NOW, &RANDOM);
        assert!(
            issued
                .pre_auth_cookie
                .bytes()
                .all(|b| b.is_ascii_graphic() && !b";,\"\\".contains(&b)),
            "{}",
            issued.pre_auth_cookie
        );
    }

    #[test]
    fn different_randomness_gives_different_states_and_cookies() {
        let a = corp();
        let one = issue(&a, &web("/"), NOW, &[1; RANDOM_BYTES]);
        let two = issue(&a, &web("/"), NOW, &[2; RANDOM_BYTES]);
        assert_ne!(one.state, two.state);
        assert_ne!(one.pre_auth_cookie, two.pre_auth_cookie);
    }

    #[test]
    fn expired_states_are_refused() {
        let a = corp();
        let issued = issue(&a, &web("/"), NOW, &RANDOM);
        let late = verify(&a, &issued.state, Some(&issued.pre_auth_cookie), NOW + 600);
        assert_eq!(late, Err(StateRejection::Expired));
    }

    #[test]
    fn every_flipped_character_of_the_state_is_refused() {
        let a = corp();
        let issued = issue(&a, &web("/"), NOW, &RANDOM);
        for index in 0..issued.state.len() {
            let mut tampered = issued.state.clone().into_bytes();
            tampered[index] = if tampered[index] == b'0' { b'1' } else { b'0' };
            let tampered = String::from_utf8(tampered).unwrap();
            let result = verify(&a, &tampered, Some(&issued.pre_auth_cookie), NOW);
            assert!(result.is_err(), "flip at {index} accepted");
        }
    }

    #[test]
    fn a_foreign_or_missing_or_altered_cookie_is_refused() {
        let a = corp();
        let mine = issue(&a, &web("/"), NOW, &[1; RANDOM_BYTES]);
        let theirs = issue(&a, &web("/"), NOW, &[2; RANDOM_BYTES]);
        let check = |cookie: Option<&str>| verify(&a, &mine.state, cookie, NOW);
        // Another browser's cookie holds no entry for this login.
        assert_eq!(
            check(Some(&theirs.pre_auth_cookie)),
            Err(StateRejection::MissingCookie)
        );
        assert_eq!(check(None), Err(StateRejection::MissingCookie));
        assert_eq!(check(Some("")), Err(StateRejection::MissingCookie));
        // Swapping in another return path breaks the binding too.
        let (binding, _) = mine.pre_auth_cookie.split_once('.').unwrap();
        assert_eq!(
            check(Some(&format!("{binding}.%2Fadmin"))),
            Err(StateRejection::BadSignature)
        );
        assert_eq!(
            check(Some(&"x".repeat(5000))),
            Err(StateRejection::BadSignature)
        );
    }

    #[test]
    fn a_state_of_another_authenticator_is_refused() {
        let main = corp();
        let other = sample("other").check().unwrap();
        let issued = issue(&other, &web("/"), NOW, &RANDOM);
        let result = verify(&main, &issued.state, Some(&issued.pre_auth_cookie), NOW);
        assert_eq!(result, Err(StateRejection::WrongAuthenticator));
    }

    #[test]
    fn a_state_signed_with_an_unknown_key_is_refused() {
        let a = corp();
        let mut forger = a.clone();
        forger.signing_keys[0].secret = Secret::new("attacker-key-attacker-key-attacker-key");
        let forged = issue(&forger, &web("/"), NOW, &RANDOM);
        let result = verify(&a, &forged.state, Some(&forged.pre_auth_cookie), NOW);
        assert_eq!(result, Err(StateRejection::BadSignature));
    }

    #[test]
    fn rotated_keys_still_verify_states_signed_before_rotation() {
        let before = corp();
        let issued = issue(&before, &web("/"), NOW, &RANDOM);
        let mut after = before.clone();
        after.signing_keys.insert(
            0,
            SigningKey {
                id: "k2".into(),
                secret: Secret::new("the-new-key-the-new-key-the-new-key!"),
            },
        );
        assert!(verify(&after, &issued.state, Some(&issued.pre_auth_cookie), NOW).is_ok());
        after.signing_keys.truncate(1);
        let result = verify(&after, &issued.state, Some(&issued.pre_auth_cookie), NOW);
        assert_eq!(result, Err(StateRejection::BadSignature));
    }

    #[test]
    fn malformed_states_are_refused_without_panicking() {
        let a = corp();
        let issued = issue(&a, &web("/"), NOW, &RANDOM);
        let cookie = Some(issued.pre_auth_cookie.as_str());
        let mut wrong_version = issued.state.clone();
        wrong_version.replace_range(0..2, "01");
        for state in [
            "",
            "abc",
            &"0".repeat(84),
            &"z".repeat(84),
            &"é".repeat(42),
            &issued.state[..82],
            &format!("{}00", issued.state),
            &wrong_version,
        ] {
            assert_eq!(
                verify(&a, state, cookie, NOW),
                Err(StateRejection::Malformed),
                "{state}"
            );
        }
    }

    #[test]
    fn an_unsafe_path_in_a_signed_cookie_falls_back_to_the_default() {
        // Only possible with the signing key, but the rule holds everywhere.
        let a = corp();
        let issued = issue(&a, &web("//evil.com"), NOW, &RANDOM);
        let verified = verify(&a, &issued.state, Some(&issued.pre_auth_cookie), NOW).unwrap();
        assert_eq!(verified.return_to, "/");
    }

    #[test]
    fn several_logins_in_flight_in_one_browser_each_finish_once_bound() {
        let a = corp();
        let mut cookie = String::new();
        let mut states = Vec::new();
        for seed in 1..=5u8 {
            let path = format!("/tab{seed}");
            let attempt = Attempt {
                in_flight: Some(&cookie),
                ..web(&path)
            };
            let issued = issue(&a, &attempt, NOW, &[seed; RANDOM_BYTES]);
            cookie = issued.pre_auth_cookie;
            states.push(issued.state);
        }
        assert!(cookie.len() < COOKIE_BUDGET, "{}", cookie.len());
        // The latest four finish, each landing on its own page.
        for (seed, state) in (2..=5u8).zip(&states[1..]) {
            let verified = verify(&a, state, Some(&cookie), NOW).unwrap();
            assert_eq!(verified.return_to, format!("/tab{seed}"));
            assert_eq!(verified.remaining_cookie.split('!').count(), 3);
            assert!(!verified.remaining_cookie.contains(&format!("tab{seed}")));
        }
        // The fifth login pushed the first out.
        assert_eq!(
            verify(&a, &states[0], Some(&cookie), NOW),
            Err(StateRejection::MissingCookie)
        );
        // Another login's entry relabelled with this login's id does not verify.
        let id = |state: &str| state[2 * NONCE_AT..2 * NONCE_AT + 8].to_owned();
        let entries: Vec<&str> = cookie.split('!').collect();
        let relabelled = entries[1].replacen(&id(&states[3]), &id(&states[4]), 1);
        let forged = format!("{relabelled}!{}", entries[2..].join("!"));
        assert_eq!(
            verify(&a, &states[4], Some(&forged), NOW),
            Err(StateRejection::BadSignature)
        );
    }

    #[test]
    fn the_flow_and_a_restart_are_signed_into_the_state() {
        let a = corp();
        let attempt = Attempt {
            flow: LoginFlow::InClient,
            restarted: true,
            ..web("/")
        };
        let issued = issue(&a, &attempt, NOW, &RANDOM);
        assert_eq!(
            claimed(&issued.state),
            Some(Claimed {
                flow: LoginFlow::InClient,
                scope: InClientScope::Base,
                restarted: true
            })
        );
        let verified = verify(&a, &issued.state, Some(&issued.pre_auth_cookie), NOW).unwrap();
        assert_eq!(verified.flow, LoginFlow::InClient);
        assert_eq!(verified.scope, InClientScope::Base);
        // The scope asked for is signed in too.
        let consent = Attempt {
            scope: InClientScope::PrivateInfo,
            ..attempt
        };
        let issued = issue(&a, &consent, NOW, &RANDOM);
        let verified = verify(&a, &issued.state, Some(&issued.pre_auth_cookie), NOW).unwrap();
        assert_eq!(verified.scope, InClientScope::PrivateInfo);
        // A version-2 in-client state (issued before the scope was signed in)
        // asked for snsapi_privateinfo: it reads as that.
        let mut bytes = decode_state(&issue(&a, &attempt, NOW, &RANDOM).state).unwrap();
        bytes[0] = PREVIOUS_STATE_VERSION;
        bytes[FLAGS_AT] = FLAG_IN_CLIENT;
        let entry = issued.pre_auth_cookie.split('!').next().unwrap();
        let mac = state_mac(&a.signing_keys[0], &a.name, &bytes[..SIGNED_LEN], entry).finalize();
        bytes[SIGNED_LEN..].copy_from_slice(&mac.into_bytes()[..MAC_LEN]);
        let old = hex::encode(bytes);
        let verified = verify(&a, &old, Some(&issued.pre_auth_cookie), NOW).unwrap();
        assert_eq!(verified.scope, InClientScope::PrivateInfo);
        assert_eq!(claimed(&old).unwrap().scope, InClientScope::PrivateInfo);
        // Flipping the flags breaks the MAC.
        let mut flipped = issued.state.clone();
        flipped.replace_range(2 * FLAGS_AT..2 * FLAGS_AT + 2, "00");
        assert_eq!(
            verify(&a, &flipped, Some(&issued.pre_auth_cookie), NOW),
            Err(StateRejection::BadSignature)
        );
    }

    #[test]
    fn the_cookie_holding_the_login_is_found_among_several() {
        let a = corp();
        let issued = issue(&a, &web("/"), NOW, &RANDOM);
        let tossed = "0123456789abcdef0123456789abcdef01234567.%2Fx";
        let cookies = [tossed, issued.pre_auth_cookie.as_str()];
        let chosen = cookie_for(&issued.state, cookies.into_iter()).unwrap();
        assert_eq!(chosen, issued.pre_auth_cookie);
        assert!(verify(&a, &issued.state, Some(chosen), NOW).is_ok());
        assert_eq!(
            cookie_for(&issued.state, [tossed].into_iter()),
            Some(tossed)
        );
        assert_eq!(cookie_for("junk", [tossed].into_iter()), Some(tossed));
        assert_eq!(cookie_for(&issued.state, std::iter::empty()), None);
        // What the browser sent beside the entry is not written back.
        let planted = format!("{}!x;y!zz", issued.pre_auth_cookie);
        let verified = verify(&a, &issued.state, Some(&planted), NOW).unwrap();
        assert_eq!(verified.remaining_cookie, "");
    }

    #[test]
    fn junk_beside_the_entries_is_dropped_when_a_login_starts() {
        let a = corp();
        let junk = "x!;y!0123456789abcdef0123456789abcdef01234567.%2F";
        let attempt = Attempt {
            in_flight: Some(junk),
            ..web("/")
        };
        let issued = issue(&a, &attempt, NOW, &RANDOM);
        assert_eq!(
            issued.pre_auth_cookie.split('!').count(),
            2,
            "{}",
            issued.pre_auth_cookie
        );
        assert!(verify(&a, &issued.state, Some(&issued.pre_auth_cookie), NOW).is_ok());
    }
}

//! The OAuth `state` and the pre-auth cookie it is bound to.
//!
//! `state` = lowercase hex of `version ‖ authenticator tag ‖ expiry ‖ nonce ‖ MAC`:
//! 41 bytes, 82 characters, within WeCom's `[A-Za-z0-9]{1,128}`. The MAC is
//! HMAC-SHA256 (truncated to 128 bits) over the authenticator's name, the fields
//! before it and a hash of the whole pre-auth cookie, so a state verifies only
//! with the cookie of the browser that started the login. The cookie carries a
//! random binding and the return path; the return path never enters `state`.

use hmac::{Hmac, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use sha2::{Digest, Sha256};

use super::flow::LoginFlow;
use super::return_path;
use super::settings::{Authenticator, SigningKey};

pub const STATE_VERSION: u8 = 1;
/// WeCom refuses longer states (errcode 84025).
pub const MAX_STATE: usize = 128;
const TAG_LEN: usize = 4;
const EXPIRY_LEN: usize = 8;
const NONCE_LEN: usize = 12;
const BINDING_LEN: usize = 16;
const MAC_LEN: usize = 16;
const SIGNED_LEN: usize = 1 + TAG_LEN + EXPIRY_LEN + NONCE_LEN;
const STATE_BYTES: usize = SIGNED_LEN + MAC_LEN;
/// Randomness one login attempt needs: the state's nonce and the cookie's binding.
pub const RANDOM_BYTES: usize = NONCE_LEN + BINDING_LEN;
/// Longer pre-auth cookies are refused before any work.
pub const MAX_PRE_AUTH_COOKIE: usize = 4096;
const MAC_CONTEXT: &[u8] = b"wecom-auth state v1\0";

/// Cookie-safe encoding of the return path: alphanumerics and `-._~/` stay.
const COOKIE_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedState {
    pub state: String,
    pub pre_auth_cookie: String,
    pub expires_at: u64,
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateRejection {
    MissingCookie,
    Malformed,
    WrongAuthenticator,
    BadSignature,
    Expired,
    AlreadyUsed,
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
    decode_state(state).is_some_and(|bytes| bytes[1..1 + TAG_LEN] == authenticator_tag(name))
}

/// Issues a state and its pre-auth cookie. `return_to` must already be sanitized.
pub fn issue(
    authenticator: &Authenticator,
    return_to: &str,
    flow: LoginFlow,
    now: u64,
    random: &[u8; RANDOM_BYTES],
) -> IssuedState {
    let (nonce, binding) = random.split_at(NONCE_LEN);
    let pre_auth_cookie = format!(
        "{}.{}.{}",
        hex::encode(binding),
        flow_tag(flow),
        utf8_percent_encode(return_to, COOKIE_VALUE)
    );
    let expires_at = now.saturating_add(u64::from(authenticator.state_lifetime));
    let mut signed = [0u8; SIGNED_LEN];
    signed[0] = STATE_VERSION;
    signed[1..1 + TAG_LEN].copy_from_slice(&authenticator_tag(&authenticator.name));
    signed[1 + TAG_LEN..1 + TAG_LEN + EXPIRY_LEN].copy_from_slice(&expires_at.to_be_bytes());
    signed[1 + TAG_LEN + EXPIRY_LEN..].copy_from_slice(nonce);
    let signer = &authenticator.signing_keys[0];
    let mac = state_mac(signer, &authenticator.name, &signed, &pre_auth_cookie).finalize();
    let mut state_bytes = [0u8; STATE_BYTES];
    state_bytes[..SIGNED_LEN].copy_from_slice(&signed);
    state_bytes[SIGNED_LEN..].copy_from_slice(&mac.into_bytes()[..MAC_LEN]);
    IssuedState {
        state: hex::encode(state_bytes),
        pre_auth_cookie,
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
    if bytes[1..1 + TAG_LEN] != authenticator_tag(&authenticator.name) {
        return Err(StateRejection::WrongAuthenticator);
    }
    let cookie = pre_auth_cookie
        .filter(|c| !c.is_empty())
        .ok_or(StateRejection::MissingCookie)?;
    if cookie.len() > MAX_PRE_AUTH_COOKIE {
        return Err(StateRejection::BadSignature);
    }
    let (signed, mac) = bytes.split_at(SIGNED_LEN);
    // Every key verifies (rotation); `verify_truncated_left` compares in constant time.
    let genuine = authenticator.signing_keys.iter().any(|key| {
        state_mac(key, &authenticator.name, signed, cookie)
            .verify_truncated_left(mac)
            .is_ok()
    });
    if !genuine {
        return Err(StateRejection::BadSignature);
    }
    let mut expiry = [0u8; EXPIRY_LEN];
    expiry.copy_from_slice(&signed[1 + TAG_LEN..1 + TAG_LEN + EXPIRY_LEN]);
    let expires_at = u64::from_be_bytes(expiry);
    if now >= expires_at {
        return Err(StateRejection::Expired);
    }
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&signed[1 + TAG_LEN + EXPIRY_LEN..]);
    // `binding.flow.path`; the binding is hex and the flow one letter, so the
    // path (which may hold dots) is everything after the second dot.
    let mut parts = cookie.splitn(3, '.');
    let (_, flow, path) = (parts.next(), parts.next(), parts.next());
    let flow = match flow {
        Some("i") => LoginFlow::InClient,
        Some("w") => LoginFlow::Web,
        _ => return Err(StateRejection::Malformed),
    };
    // The cookie is signed, but its path is checked again: one rule, every time.
    let path = path.and_then(|encoded| percent_decode_str(encoded).decode_utf8().ok());
    let return_to = return_path::for_login(
        path.as_deref(),
        &authenticator.route_prefix,
        &authenticator.redirect_path,
    );
    Ok(VerifiedState {
        nonce,
        expires_at,
        return_to,
        flow,
    })
}

fn flow_tag(flow: LoginFlow) -> &'static str {
    match flow {
        LoginFlow::InClient => "i",
        LoginFlow::Web => "w",
    }
}

fn decode_state(state: &str) -> Option<[u8; STATE_BYTES]> {
    if state.len() != STATE_BYTES * 2 {
        return None;
    }
    let mut bytes = [0u8; STATE_BYTES];
    hex::decode_to_slice(state, &mut bytes).ok()?;
    (bytes[0] == STATE_VERSION).then_some(bytes)
}

fn state_mac(key: &SigningKey, name: &str, signed: &[u8], cookie: &str) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key.secret.expose().as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(MAC_CONTEXT);
    mac.update(name.as_bytes());
    mac.update(&[0]);
    mac.update(signed);
    mac.update(&Sha256::digest(cookie.as_bytes()));
    mac
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::settings::Secret;
    use crate::example::settings as sample;

    const NOW: u64 = 1_790_000_000;
    const RANDOM: [u8; RANDOM_BYTES] = [7; RANDOM_BYTES];

    fn corp() -> Authenticator {
        sample("corp").check().unwrap()
    }

    #[test]
    fn state_is_alphanumeric_and_short_enough_for_wecom() {
        let issued = issue(&corp(), "/docs?x=1", LoginFlow::Web, NOW, &RANDOM);
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
        let issued = issue(&a, "/docs?x=1&y=%20#top", LoginFlow::Web, NOW, &RANDOM);
        let verified = verify(&a, &issued.state, Some(&issued.pre_auth_cookie), NOW + 599).unwrap();
        assert_eq!(verified.return_to, "/docs?x=1&y=%20#top");
        assert_eq!(verified.nonce, [7; NONCE_LEN]);
        assert!(claims_authenticator(&issued.state, "corp"));
        assert!(!claims_authenticator(&issued.state, "other"));
    }

    #[test]
    fn cookie_value_holds_only_cookie_octets() {
        let issued = issue(&corp(), "/a;b,c\"d?e=1&f=%22", LoginFlow::Web, NOW, &RANDOM);
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
        let one = issue(&a, "/", LoginFlow::Web, NOW, &[1; RANDOM_BYTES]);
        let two = issue(&a, "/", LoginFlow::Web, NOW, &[2; RANDOM_BYTES]);
        assert_ne!(one.state, two.state);
        assert_ne!(one.pre_auth_cookie, two.pre_auth_cookie);
    }

    #[test]
    fn expired_states_are_refused() {
        let a = corp();
        let issued = issue(&a, "/", LoginFlow::Web, NOW, &RANDOM);
        let late = verify(&a, &issued.state, Some(&issued.pre_auth_cookie), NOW + 600);
        assert_eq!(late, Err(StateRejection::Expired));
    }

    #[test]
    fn every_flipped_character_of_the_state_is_refused() {
        let a = corp();
        let issued = issue(&a, "/", LoginFlow::Web, NOW, &RANDOM);
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
        let mine = issue(&a, "/", LoginFlow::Web, NOW, &[1; RANDOM_BYTES]);
        let theirs = issue(&a, "/", LoginFlow::Web, NOW, &[2; RANDOM_BYTES]);
        let check = |cookie: Option<&str>| verify(&a, &mine.state, cookie, NOW);
        assert_eq!(
            check(Some(&theirs.pre_auth_cookie)),
            Err(StateRejection::BadSignature)
        );
        assert_eq!(check(None), Err(StateRejection::MissingCookie));
        assert_eq!(check(Some("")), Err(StateRejection::MissingCookie));
        // Swapping in another return path breaks the binding too.
        let (binding, _) = mine.pre_auth_cookie.split_once('.').unwrap();
        assert_eq!(
            check(Some(&format!("{binding}.w.%2Fadmin"))),
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
        let issued = issue(&other, "/", LoginFlow::Web, NOW, &RANDOM);
        let result = verify(&main, &issued.state, Some(&issued.pre_auth_cookie), NOW);
        assert_eq!(result, Err(StateRejection::WrongAuthenticator));
    }

    #[test]
    fn a_state_signed_with_an_unknown_key_is_refused() {
        let a = corp();
        let mut forger = a.clone();
        forger.signing_keys[0].secret = Secret::new("attacker-key-attacker-key-attacker-key");
        let forged = issue(&forger, "/", LoginFlow::Web, NOW, &RANDOM);
        let result = verify(&a, &forged.state, Some(&forged.pre_auth_cookie), NOW);
        assert_eq!(result, Err(StateRejection::BadSignature));
    }

    #[test]
    fn rotated_keys_still_verify_states_signed_before_rotation() {
        let before = corp();
        let issued = issue(&before, "/", LoginFlow::Web, NOW, &RANDOM);
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
        let issued = issue(&a, "/", LoginFlow::Web, NOW, &RANDOM);
        let cookie = Some(issued.pre_auth_cookie.as_str());
        let mut wrong_version = issued.state.clone();
        wrong_version.replace_range(0..2, "02");
        for state in [
            "",
            "abc",
            &"0".repeat(82),
            &"z".repeat(82),
            &"é".repeat(41),
            &issued.state[..80],
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
        let issued = issue(&a, "//evil.com", LoginFlow::Web, NOW, &RANDOM);
        let verified = verify(&a, &issued.state, Some(&issued.pre_auth_cookie), NOW).unwrap();
        assert_eq!(verified.return_to, "/");
    }
}

//! Session tokens: `v2.<key id>.<payload>.<mac>`, base64url without padding.
//! The payload is JSON (authenticator, user id, WeCom userid, issued, expires,
//! the user's session generation);
//! the MAC is HMAC-SHA256 with the key named by the id, so keys rotate: the
//! first configured key signs, every configured key verifies.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::settings::{Authenticator, SigningKey};
use serde::{Deserialize, Serialize};

/// v2 carries the user's session generation (`g`). v1 tokens, which
/// logout ended by a time the store no longer keeps, do not verify.
const VERSION: &str = "v2";
const MAC_CONTEXT: &[u8] = b"wecom-auth session v2\0";
/// Longer tokens are refused before any work.
pub const MAX_SESSION_TOKEN: usize = 2048;

/// What a token carries, as compact JSON: `{"a","u","w","iat","exp","g","auth"}`.
/// Tokens issued before `g` and `auth` existed lack them (0: generation 0,
/// and renewals count from `iat`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionClaims {
    #[serde(rename = "a")]
    pub authenticator: String,
    #[serde(rename = "u")]
    pub user_id: String,
    #[serde(rename = "w")]
    pub wecom_userid: String,
    #[serde(rename = "iat")]
    pub issued_at: u64,
    #[serde(rename = "exp")]
    pub expires_at: u64,
    /// The user's session generation at issue: logout moves it on.
    #[serde(rename = "g", default)]
    pub generation: u64,
    /// When the member logged in (Unix seconds); renewals keep it, and no
    /// renewal reaches past it plus the absolute maximum.
    #[serde(rename = "auth", default)]
    pub logged_in_at: u64,
}

/// The claims in a token's payload bytes, if they are claims.
fn read_claims(bytes: &[u8]) -> Option<SessionClaims> {
    serde_json::from_slice(bytes).ok()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedSession {
    pub claims: SessionClaims,
    pub key_id: String,
}

/// Who a session is for: the user, the member, the user's session generation.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub user_id: &'a str,
    pub wecom_userid: &'a str,
    pub generation: u64,
}

/// Signs a session for `subject` with the authenticator's first key.
pub fn issue(authenticator: &Authenticator, subject: Subject<'_>, now: u64) -> String {
    let claims = SessionClaims {
        authenticator: authenticator.name.clone(),
        user_id: subject.user_id.to_owned(),
        wecom_userid: subject.wecom_userid.to_owned(),
        issued_at: now,
        expires_at: now.saturating_add(u64::from(authenticator.session_lifetime)),
        generation: subject.generation,
        logged_in_at: now,
    };
    sign(authenticator, &claims)
}

/// How sessions in use are renewed (sliding sessions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Renewal {
    /// A session older than this (seconds since it was issued) is renewed
    /// when used; 0: never.
    pub after_seconds: u32,
    /// No renewal reaches past the login plus this many seconds.
    pub max_seconds: u32,
}

/// A fresh token for a verified session in use, when it is due: the same
/// member and generation, issued now, expiring after the lifetime but never
/// past the login plus `renewal.max_seconds`. None: not due, or no time left.
pub fn renew(
    authenticator: &Authenticator,
    verified: &VerifiedSession,
    renewal: Renewal,
    now: u64,
) -> Option<String> {
    let claims = &verified.claims;
    let age = now.saturating_sub(claims.issued_at);
    if renewal.after_seconds == 0 || age < u64::from(renewal.after_seconds) {
        return None;
    }
    let logged_in_at = if claims.logged_in_at == 0 {
        claims.issued_at
    } else {
        claims.logged_in_at
    };
    let latest = logged_in_at.saturating_add(u64::from(renewal.max_seconds));
    let expires_at = now
        .saturating_add(u64::from(authenticator.session_lifetime))
        .min(latest);
    if expires_at <= claims.expires_at {
        return None;
    }
    let renewed = SessionClaims {
        issued_at: now,
        expires_at,
        logged_in_at,
        ..claims.clone()
    };
    Some(sign(authenticator, &renewed))
}

fn sign(authenticator: &Authenticator, claims: &SessionClaims) -> String {
    let payload = URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(claims).expect("claims of strings and integers serialize"));
    let key = &authenticator.signing_keys[0];
    let mac = URL_SAFE_NO_PAD.encode(mac(key, &payload).finalize().into_bytes());
    format!("{VERSION}.{}.{payload}.{mac}", key.id)
}

/// Which authenticator a token claims to be from, unverified: lets a front with
/// several authenticators pick the settings to verify it with.
pub fn claimed_authenticator(token: &str) -> Option<String> {
    let (_, _, payload, _) = split(token)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    let claims = read_claims(&bytes)?;
    Some(claims.authenticator)
}

/// Verifies a token: format, key, MAC (constant time), authenticator, expiry.
/// The error says why, for logs and the caller; it never quotes the token.
pub fn verify(
    authenticator: &Authenticator,
    token: &str,
    now: u64,
) -> Result<VerifiedSession, &'static str> {
    if token.is_empty() {
        return Err("no session");
    }
    if token.len() > MAX_SESSION_TOKEN {
        return Err("token too long");
    }
    let (version, key_id, payload, tag) = split(token).ok_or("malformed token")?;
    if version != VERSION {
        return Err("unknown token version");
    }
    let key = authenticator
        .signing_keys
        .iter()
        .find(|k| k.id == key_id)
        .ok_or("signed with a key that is not configured")?;
    let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| "malformed token")?;
    mac(key, payload)
        .verify_slice(&tag)
        .map_err(|_| "bad signature")?;
    let bytes = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| "malformed token")?;
    let claims = read_claims(&bytes).ok_or("malformed token")?;
    if claims.authenticator != authenticator.name {
        return Err("issued by another authenticator");
    }
    if now >= claims.expires_at {
        return Err("expired");
    }
    Ok(VerifiedSession {
        claims,
        key_id: key.id.clone(),
    })
}

fn split(token: &str) -> Option<(&str, &str, &str, &str)> {
    let mut parts = token.split('.');
    let parts4 = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    parts.next().is_none().then_some(parts4)
}

fn mac(key: &SigningKey, payload: &str) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key.secret.expose().as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(MAC_CONTEXT);
    mac.update(key.id.as_bytes());
    mac.update(b".");
    mac.update(payload.as_bytes());
    mac
}

#[cfg(test)]
mod renewal_tests {
    use super::*;
    use crate::example::settings as sample;

    const NOW: u64 = 1_790_000_000;

    #[test]
    fn a_session_in_use_is_renewed_once_due_never_past_the_absolute_maximum() {
        let a = sample("corp").check().unwrap();
        let subject = Subject {
            user_id: "u",
            wecom_userid: "w",
            generation: 3,
        };
        let token = issue(&a, subject, NOW);
        let renewal = Renewal {
            after_seconds: 3600,
            max_seconds: 86_400,
        };
        let first = verify(&a, &token, NOW + 10).unwrap();
        assert_eq!(renew(&a, &first, renewal, NOW + 10), None, "not due yet");
        let later = verify(&a, &token, NOW + 3600).unwrap();
        let renewed = renew(&a, &later, renewal, NOW + 3600).unwrap();
        let claims = verify(&a, &renewed, NOW + 3600).unwrap().claims;
        assert_eq!(claims.issued_at, NOW + 3600);
        assert_eq!(claims.expires_at, NOW + 3600 + 8 * 3600);
        assert_eq!((claims.logged_in_at, claims.generation), (NOW, 3));
        // Near the maximum a renewal stops at it; past it, none.
        let near = NOW + 86_400 - 100;
        let mut chain = renewed;
        for at in (NOW + 7200..near).step_by(7200) {
            let verified = verify(&a, &chain, at).unwrap();
            chain = renew(&a, &verified, renewal, at).unwrap_or(chain);
        }
        let last = verify(&a, &chain, near).unwrap();
        assert!(last.claims.expires_at <= NOW + 86_400);
        assert!(
            verify(&a, &chain, NOW + 86_400).is_err(),
            "the absolute maximum holds"
        );
        let off = Renewal {
            after_seconds: 0,
            max_seconds: 86_400,
        };
        assert_eq!(renew(&a, &later, off, NOW + 3600), None);
    }
}

#[cfg(test)]
mod tests {
    fn subject<'a>(user_id: &'a str, wecom_userid: &'a str) -> super::Subject<'a> {
        super::Subject {
            user_id,
            wecom_userid,
            generation: 0,
        }
    }

    use super::*;
    use crate::core::settings::Secret;
    use crate::example::settings as sample;

    #[test]
    fn claims_of_todays_and_the_first_v2_layout_read_and_are_written_the_same() {
        let today = crate::core::ports::stored_record("session-claims.json");
        let claims = read_claims(&today).unwrap();
        assert_eq!((claims.generation, claims.logged_in_at), (2, 1_764_540_000));
        assert_eq!(serde_json::to_vec(&claims).unwrap(), today);
        let first = crate::core::ports::stored_record("session-claims.v2-first.json");
        let claims = read_claims(&first).unwrap();
        assert_eq!(claims.user_id, "u-3f2a9c01d4e5b6a7c8d9");
        assert_eq!((claims.generation, claims.logged_in_at), (0, 0));
    }

    const NOW: u64 = 1_790_000_000;

    fn corp() -> Authenticator {
        sample("corp").check().unwrap()
    }

    #[test]
    fn a_fresh_token_verifies_until_it_expires() {
        let a = corp();
        let token = issue(&a, subject("wc-1", "zhangsan"), NOW);
        assert!(token.starts_with("v2.k1."));
        assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        );
        let session = verify(&a, &token, NOW + 1).unwrap();
        assert_eq!(session.claims.user_id, "wc-1");
        assert_eq!(session.claims.wecom_userid, "zhangsan");
        assert_eq!(session.claims.expires_at, NOW + 8 * 3600);
        assert_eq!(session.key_id, "k1");
        assert_eq!(verify(&a, &token, NOW + 8 * 3600), Err("expired"));
        assert_eq!(claimed_authenticator(&token).as_deref(), Some("corp"));
    }

    #[test]
    fn a_token_issued_before_the_login_time_claim_still_verifies() {
        let a = corp();
        let key = &a.signing_keys[0];
        let payload = URL_SAFE_NO_PAD.encode(format!(
            r#"{{"a":"corp","u":"wc-1","w":"zhangsan","iat":{NOW},"exp":{},"g":0}}"#,
            NOW + 3600
        ));
        let mac = URL_SAFE_NO_PAD.encode(mac(key, &payload).finalize().into_bytes());
        let token = format!("{VERSION}.{}.{payload}.{mac}", key.id);
        let session = verify(&a, &token, NOW + 1).unwrap();
        assert_eq!(
            (session.claims.user_id.as_str(), session.claims.logged_in_at),
            ("wc-1", 0)
        );
    }

    #[test]
    fn every_altered_character_is_refused() {
        let a = corp();
        let token = issue(&a, subject("wc-1", "zhangsan"), NOW);
        for index in 0..token.len() {
            let mut bytes = token.clone().into_bytes();
            bytes[index] = if bytes[index] == b'A' { b'B' } else { b'A' };
            let altered = String::from_utf8(bytes).unwrap();
            if altered != token {
                assert!(verify(&a, &altered, NOW).is_err(), "flip at {index}");
            }
        }
    }

    #[test]
    fn rotation_old_keys_verify_new_key_signs() {
        let before = corp();
        let old = issue(&before, subject("u", "w"), NOW);
        let mut after = before.clone();
        after.signing_keys.insert(
            0,
            SigningKey {
                id: "k2".into(),
                secret: Secret::new("the-new-key-the-new-key-the-new-key!"),
            },
        );
        assert_eq!(verify(&after, &old, NOW).unwrap().key_id, "k1");
        let new = issue(&after, subject("u", "w"), NOW);
        assert!(new.starts_with("v2.k2."));
        after.signing_keys.truncate(1);
        assert_eq!(
            verify(&after, &old, NOW),
            Err("signed with a key that is not configured")
        );
    }

    #[test]
    fn foreign_forged_and_malformed_tokens_are_refused() {
        let a = corp();
        let other = sample("other").check().unwrap();
        assert_eq!(
            verify(&a, &issue(&other, subject("u", "w"), NOW), NOW),
            Err("issued by another authenticator")
        );
        let mut forger = a.clone();
        forger.signing_keys[0].secret = Secret::new("attacker-key-attacker-key-attacker-key");
        assert_eq!(
            verify(&a, &issue(&forger, subject("u", "w"), NOW), NOW),
            Err("bad signature")
        );
        for bad in [
            "",
            "v1",
            "v2.k1.x",
            "v2.k1.x.y.z",
            "v2.k1.e30.AA",
            &"a".repeat(3000),
        ] {
            assert!(verify(&a, bad, NOW).is_err(), "{bad}");
        }
    }
}

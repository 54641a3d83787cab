//! WeCom's callbacks (接收消息与事件): what the app's callback URL receives,
//! checked and decrypted as WeCom's scheme says (doc 90968, 加解密方案; the
//! published sample is `testdata/wecom-callback-sample.json`), and the
//! contact changes it carries (通讯录变更事件, doc 90970).
//!
//! - `msg_signature` = hex SHA-1 of the token, `timestamp`, `nonce` and the
//!   ciphertext, sorted and joined; compared in constant time.
//! - The AES key is the 43-character EncodingAESKey with `=` appended,
//!   base64-decoded (32 bytes); AES-256-CBC with the key's first 16 bytes
//!   as the IV; PKCS#7 padding to 32-byte blocks.
//! - The plaintext: 16 random bytes, the message length (4 bytes, big
//!   endian), the message, then the receiver id (the corp id).

use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit, block_padding::NoPadding};
use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde::Deserialize;
use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;

use super::settings::Secret;

type Decryptor = cbc::Decryptor<aes::Aes256>;
type Encryptor = cbc::Encryptor<aes::Aes256>;

/// PKCS#7 to this block size (WeCom's, not AES's 16).
const PAD_BLOCK: usize = 32;
/// How far a callback's `timestamp` may be from this host's clock, in
/// seconds: older (or newer) ones are refused as replays.
pub const MAX_CLOCK_DISTANCE_SECONDS: u64 = 600;
/// The largest callback body read, in bytes: WeCom's contact events are a
/// few hundred bytes encrypted.
pub const MAX_EVENT_BODY: usize = 64 * 1024;

/// EncodingAESKeys are base64 of 32 bytes without the padding, and WeCom
/// does not zero the last character's spare bits: a strict decoder
/// refuses them.
const AES_KEY_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// An app's callback secrets (the console's 接收消息 → API 接收: Token and
/// EncodingAESKey). Never shown by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct CallbackKeys {
    token: Secret,
    /// The EncodingAESKey decoded: 32 bytes.
    key: [u8; 32],
}

impl std::fmt::Debug for CallbackKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CallbackKeys([redacted])")
    }
}

/// Why a callback was refused. Says nothing of the keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallbackError {
    /// A parameter is missing or malformed.
    Malformed(&'static str),
    /// `msg_signature` does not match: forged, or another Token.
    BadSignature,
    /// The ciphertext does not decrypt to WeCom's framing: another
    /// EncodingAESKey, or tampered.
    BadCiphertext,
    /// The receiver id inside is another company's.
    WrongCorp,
    /// `timestamp` is more than [`MAX_CLOCK_DISTANCE_SECONDS`] away.
    Stale,
    /// This message was delivered before.
    Replayed,
}

impl CallbackError {
    /// For the audit line and the 4xx answer.
    pub fn reason(&self) -> &'static str {
        match self {
            CallbackError::Malformed(what) => what,
            CallbackError::BadSignature => "msg_signature does not match (another Token?)",
            CallbackError::BadCiphertext => "does not decrypt (another EncodingAESKey?)",
            CallbackError::WrongCorp => "encrypted for another company",
            CallbackError::Stale => "timestamp more than 10 minutes away",
            CallbackError::Replayed => "delivered before",
        }
    }
}

impl CallbackKeys {
    /// From the console's Token (letters and digits, at most 32) and
    /// EncodingAESKey (43 characters of base64). The error names what is
    /// wrong, never the value.
    pub fn new(token: &str, encoding_aes_key: &str) -> Result<Self, (&'static str, String)> {
        if token.is_empty() || token.len() > 32 || !token.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err((
                "callback_token",
                "must be the app's Token (接收消息 → API 接收): 1 to 32 letters and digits".into(),
            ));
        }
        let decoded = (encoding_aes_key.len() == 43)
            .then(|| AES_KEY_BASE64.decode(encoding_aes_key).ok())
            .flatten()
            .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok());
        let Some(key) = decoded else {
            return Err((
                "callback_aes_key",
                "must be the app's EncodingAESKey (接收消息 → API 接收): 43 letters and digits"
                    .into(),
            ));
        };
        Ok(CallbackKeys {
            token: Secret::new(token),
            key,
        })
    }

    /// `msg_signature` for these parts (hex SHA-1 of the sorted, joined
    /// token, timestamp, nonce and ciphertext).
    pub fn signature(&self, timestamp: &str, nonce: &str, encrypted: &str) -> String {
        let mut parts = [self.token.expose(), timestamp, nonce, encrypted];
        parts.sort_unstable();
        let mut sha = Sha1::new();
        for part in parts {
            sha.update(part.as_bytes());
        }
        hex::encode(sha.finalize())
    }

    /// Checks `msg_signature` (constant time), the clock distance, and
    /// decrypts `encrypted` for `corp_id`: the message inside.
    pub fn open(
        &self,
        query: &SignedQuery<'_>,
        encrypted: &str,
        corp_id: &str,
        now: u64,
    ) -> Result<String, CallbackError> {
        let expected = self.signature(query.timestamp, query.nonce, encrypted);
        if !bool::from(expected.as_bytes().ct_eq(query.msg_signature.as_bytes())) {
            return Err(CallbackError::BadSignature);
        }
        let at: u64 = query
            .timestamp
            .parse()
            .map_err(|_| CallbackError::Malformed("timestamp is not a number"))?;
        if at.abs_diff(now) > MAX_CLOCK_DISTANCE_SECONDS {
            return Err(CallbackError::Stale);
        }
        let (message, receiver) = self.decrypt(encrypted)?;
        if receiver != corp_id {
            return Err(CallbackError::WrongCorp);
        }
        Ok(message)
    }

    /// The message and the receiver id inside `encrypted` (base64).
    pub fn decrypt(&self, encrypted: &str) -> Result<(String, String), CallbackError> {
        let mut data = base64::engine::general_purpose::STANDARD
            .decode(encrypted)
            .map_err(|_| CallbackError::Malformed("the ciphertext is not base64"))?;
        let key = &self.key;
        let plain = Decryptor::new(key.into(), key[..16].into())
            .decrypt_padded_mut::<NoPadding>(&mut data)
            .map_err(|_| CallbackError::BadCiphertext)?;
        let pad = usize::from(*plain.last().ok_or(CallbackError::BadCiphertext)?);
        if !(1..=PAD_BLOCK).contains(&pad)
            || pad > plain.len()
            || plain[plain.len() - pad..]
                .iter()
                .any(|b| usize::from(*b) != pad)
        {
            return Err(CallbackError::BadCiphertext);
        }
        let plain = &plain[..plain.len() - pad];
        let length = plain
            .get(16..20)
            .ok_or(CallbackError::BadCiphertext)?
            .try_into()
            .map(u32::from_be_bytes)
            .map_err(|_| CallbackError::BadCiphertext)?;
        let end = 20usize.saturating_add(length as usize);
        let message = plain.get(20..end).ok_or(CallbackError::BadCiphertext)?;
        let receiver = &plain[end..];
        let text = |bytes: &[u8]| {
            String::from_utf8(bytes.to_vec()).map_err(|_| CallbackError::BadCiphertext)
        };
        Ok((text(message)?, text(receiver)?))
    }

    /// `message` for `receiver` as WeCom encrypts it, with these 16 random
    /// bytes first: base64. For replies and tests.
    pub fn encrypt(&self, message: &str, receiver: &str, random: &[u8; 16]) -> String {
        let mut plain = Vec::with_capacity(20 + message.len() + receiver.len() + PAD_BLOCK);
        plain.extend_from_slice(random);
        plain.extend_from_slice(&(message.len() as u32).to_be_bytes());
        plain.extend_from_slice(message.as_bytes());
        plain.extend_from_slice(receiver.as_bytes());
        let pad = PAD_BLOCK - plain.len() % PAD_BLOCK;
        plain.extend(std::iter::repeat_n(pad as u8, pad));
        let key = &self.key;
        let length = plain.len();
        let sealed = Encryptor::new(key.into(), key[..16].into())
            .encrypt_padded_mut::<NoPadding>(&mut plain, length)
            .map(<[u8]>::to_vec)
            .unwrap_or_default();
        base64::engine::general_purpose::STANDARD.encode(sealed)
    }
}

/// Whether a decrypted `echostr` is one: WeCom's are random digits (the
/// published sample's is `1616140317555161061`). Anything else (an event's
/// XML, signed as the same query signs it) is never echoed: the URL check
/// must not decrypt deliveries for whoever saw one.
pub fn is_echostr(plaintext: &str) -> bool {
    (1..=64).contains(&plaintext.len()) && plaintext.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The query of a callback: `msg_signature`, `timestamp`, `nonce` (and
/// `echostr` for the URL check).
#[derive(Debug, Clone, Copy)]
pub struct SignedQuery<'a> {
    pub msg_signature: &'a str,
    pub timestamp: &'a str,
    pub nonce: &'a str,
}

/// The POSTed body: `<xml><ToUserName/><Encrypt/><AgentID/></xml>`, of
/// which only `Encrypt` counts (the corp id inside it is checked).
#[derive(Debug, Deserialize)]
pub struct Envelope {
    #[serde(rename = "Encrypt")]
    pub encrypt: String,
}

impl Envelope {
    pub fn parse(xml: &str) -> Result<Self, CallbackError> {
        quick_xml::de::from_str(xml)
            .map_err(|_| CallbackError::Malformed("the body is not WeCom's XML"))
    }
}

/// A contact change (通讯录变更事件, doc 90970), the fields this component
/// acts on; the rest of the message is ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ContactChange {
    #[serde(rename = "MsgType", default)]
    pub msg_type: String,
    #[serde(rename = "Event", default)]
    pub event: String,
    /// `create_user`, `update_user`, `delete_user`, `create_party`,
    /// `update_party`, `delete_party`, `update_tag`.
    #[serde(rename = "ChangeType", default)]
    pub change_type: String,
    #[serde(rename = "UserID", default)]
    pub user_id: Option<String>,
    /// `update_user`: the member's new userid (WeCom allows one change).
    #[serde(rename = "NewUserID", default)]
    pub new_user_id: Option<String>,
    /// `update_user`: 1 active, 2 disabled, 4 not yet active, 5 left
    /// (doc 90970, doc 90196).
    #[serde(rename = "Status", default)]
    pub status: Option<String>,
    /// `update_user`: the member's departments, comma-separated, when they
    /// changed.
    #[serde(rename = "Department", default)]
    pub department: Option<String>,
    /// `update_tag`: the tag.
    #[serde(rename = "TagId", default)]
    pub tag_id: Option<String>,
    /// `update_tag`: members added and removed, comma-separated.
    #[serde(rename = "AddUserItems", default)]
    pub add_user_items: Option<String>,
    #[serde(rename = "DelUserItems", default)]
    pub del_user_items: Option<String>,
}

impl ContactChange {
    /// The decrypted message, if it is a contact change (other events and
    /// messages: None, acknowledged and ignored).
    pub fn parse(xml: &str) -> Result<Option<Self>, CallbackError> {
        let change: ContactChange = quick_xml::de::from_str(xml)
            .map_err(|_| CallbackError::Malformed("the message is not WeCom's XML"))?;
        Ok((change.msg_type == "event" && change.event == "change_contact").then_some(change))
    }

    /// Whether it says the member may no longer be here: deleted, or
    /// updated to disabled (2) or left the company (5, as `user/get`'s
    /// `status` spells it, doc 90196).
    pub fn member_gone(&self) -> bool {
        self.change_type == "delete_user"
            || (self.change_type == "update_user"
                && matches!(self.status.as_deref(), Some("2" | "5")))
    }

    /// The userids a tag change names, added and removed.
    pub fn tag_members(&self) -> impl Iterator<Item = &str> {
        [&self.add_user_items, &self.del_user_items]
            .into_iter()
            .flatten()
            .flat_map(|list| list.split(','))
            .map(str::trim)
            .filter(|userid| !userid.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// WeCom's published sample (加解密方案, the WXBizMsgCrypt samples).
    #[derive(Deserialize)]
    struct Sample {
        token: String,
        encoding_aes_key: String,
        corp_id: String,
        verify_url: Signed,
        message: Signed,
    }

    #[derive(Deserialize)]
    struct Signed {
        msg_signature: String,
        timestamp: String,
        nonce: String,
        encrypted: String,
        plaintext: Option<String>,
    }

    fn sample() -> Sample {
        serde_json::from_str(include_str!("../../testdata/wecom-callback-sample.json")).unwrap()
    }

    fn query(signed: &Signed) -> SignedQuery<'_> {
        SignedQuery {
            msg_signature: &signed.msg_signature,
            timestamp: &signed.timestamp,
            nonce: &signed.nonce,
        }
    }

    #[test]
    fn wecoms_published_sample_verifies_and_decrypts() {
        let s = sample();
        let keys = CallbackKeys::new(&s.token, &s.encoding_aes_key).unwrap();
        let now = s.verify_url.timestamp.parse().unwrap();
        let echo = keys
            .open(
                &query(&s.verify_url),
                &s.verify_url.encrypted,
                &s.corp_id,
                now,
            )
            .unwrap();
        assert_eq!(Some(echo), s.verify_url.plaintext);
        let now = s.message.timestamp.parse().unwrap();
        let message = keys
            .open(&query(&s.message), &s.message.encrypted, &s.corp_id, now)
            .unwrap();
        assert!(message.starts_with("<xml>"), "{message}");
        assert!(message.contains("<ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName>"));
    }

    #[test]
    fn what_it_encrypts_it_decrypts_and_wecoms_framing_holds() {
        let s = sample();
        let keys = CallbackKeys::new(&s.token, &s.encoding_aes_key).unwrap();
        for message in ["", "a", &"x".repeat(11), &"变更".repeat(40)] {
            let sealed = keys.encrypt(message, "ww0123456789abcdef", &[7; 16]);
            assert_eq!(
                keys.decrypt(&sealed).unwrap(),
                (message.to_owned(), "ww0123456789abcdef".to_owned())
            );
        }
    }

    /// Each tampering is refused, for its own reason.
    #[test]
    fn forged_replayed_or_foreign_callbacks_are_refused() {
        let s = sample();
        let keys = CallbackKeys::new(&s.token, &s.encoding_aes_key).unwrap();
        let m = &s.message;
        let now: u64 = m.timestamp.parse().unwrap();
        let open = |q: SignedQuery<'_>, encrypted: &str, corp: &str, now| {
            keys.open(&q, encrypted, corp, now).unwrap_err()
        };
        let forged = SignedQuery {
            msg_signature: "477715d11cdb4164915debcba66cb864d751f3e7",
            ..query(m)
        };
        assert_eq!(
            open(forged, &m.encrypted, &s.corp_id, now),
            CallbackError::BadSignature
        );
        let other_nonce = SignedQuery {
            nonce: "1372623150",
            ..query(m)
        };
        assert_eq!(
            open(other_nonce, &m.encrypted, &s.corp_id, now),
            CallbackError::BadSignature
        );
        assert_eq!(
            open(query(m), &m.encrypted, "wwother", now),
            CallbackError::WrongCorp
        );
        assert_eq!(
            open(query(m), &m.encrypted, &s.corp_id, now + 601),
            CallbackError::Stale
        );
        assert_eq!(
            open(query(m), &m.encrypted, &s.corp_id, now - 601),
            CallbackError::Stale
        );
        // Another EncodingAESKey, with a signature that matches.
        let other =
            CallbackKeys::new(&s.token, "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG").unwrap();
        assert!(matches!(
            other.open(&query(m), &m.encrypted, &s.corp_id, now),
            Err(CallbackError::BadCiphertext | CallbackError::WrongCorp)
        ));
        // Truncated ciphertext: not whole blocks, or no framing.
        let short = &m.encrypted[..20];
        let q = SignedQuery {
            msg_signature: &keys.signature(&m.timestamp, &m.nonce, short),
            ..query(m)
        };
        assert!(keys.open(&q, short, &s.corp_id, now).is_err());
    }

    #[test]
    fn keys_of_the_wrong_shape_name_the_setting_never_the_value() {
        let good = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";
        for (token, key, field) in [
            ("", good, "callback_token"),
            ("to ken", good, "callback_token"),
            ("QDG6eK", "short", "callback_aes_key"),
            ("QDG6eK", &format!("{good}="), "callback_aes_key"),
            (
                "QDG6eK",
                "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2!",
                "callback_aes_key",
            ),
        ] {
            let (named, why) = CallbackKeys::new(token, key).unwrap_err();
            assert_eq!(named, field);
            assert!(!why.contains(key) || key.is_empty());
        }
    }

    #[test]
    fn contact_changes_are_read_and_other_messages_ignored() {
        let deleted = "<xml><ToUserName><![CDATA[ww0123456789abcdef]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>\
            <CreateTime>1403610513</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_contact]]></Event>\
            <ChangeType>delete_user</ChangeType><UserID><![CDATA[zhangsan]]></UserID></xml>";
        let change = ContactChange::parse(deleted).unwrap().unwrap();
        assert_eq!(change.user_id.as_deref(), Some("zhangsan"));
        assert!(change.member_gone());
        let disabled = deleted.replace("delete_user", "update_user").replace(
            "</xml>",
            "<Status>2</Status><NewUserID><![CDATA[zhangsan2]]></NewUserID></xml>",
        );
        let change = ContactChange::parse(&disabled).unwrap().unwrap();
        assert!(change.member_gone());
        assert_eq!(change.new_user_id.as_deref(), Some("zhangsan2"));
        let tag = "<xml><MsgType>event</MsgType><Event>change_contact</Event><ChangeType>update_tag</ChangeType>\
            <TagId>1</TagId><AddUserItems><![CDATA[zhangsan,lisi]]></AddUserItems><DelUserItems><![CDATA[wangwu]]></DelUserItems></xml>";
        let change = ContactChange::parse(tag).unwrap().unwrap();
        assert_eq!(
            change.tag_members().collect::<Vec<_>>(),
            ["zhangsan", "lisi", "wangwu"]
        );
        let text =
            "<xml><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[hi]]></Content></xml>";
        assert_eq!(ContactChange::parse(text).unwrap(), None);
        assert!(ContactChange::parse("<xml><unclosed></xml>").is_err());
        assert!(ContactChange::parse("not xml at all").is_err());
    }
}

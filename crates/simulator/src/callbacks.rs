//! WeCom's callbacks (接收消息与事件) as WeCom sends them: a contact change
//! (通讯录变更事件, doc 90970) made in the simulated console is POSTed to
//! each app's callback URL that has one ([`super::model::Agent::callback`]),
//! encrypted and signed as doc 90968 says — its own implementation, so the
//! component's is checked against it and against WeCom's published sample.
//!
//! - Body: `<xml><ToUserName>corp</ToUserName><Encrypt>…</Encrypt><AgentID>…</AgentID></xml>`;
//!   query `msg_signature`, `timestamp` (simulator time), `nonce`.
//! - `Encrypt`: base64 of AES-256-CBC (key: the EncodingAESKey with `=`
//!   appended, base64-decoded; IV: its first 16 bytes) over 16 random bytes,
//!   the message length (4 bytes, big endian), the message, the corp id,
//!   PKCS#7-padded to 32 bytes.
//! - `msg_signature`: hex SHA-1 of the token, timestamp, nonce and
//!   `Encrypt`, sorted and joined.
//! - Retries: WeCom waits 5 s for an answer and tries 3 times in all.

use std::time::{Duration, Instant};

use aes::cipher::{BlockEncryptMut, KeyIvInit, block_padding::NoPadding};
use base64::Engine as _;
use bytes::Bytes;
use http::{Request, header};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use sha1::{Digest, Sha1};
use tokio::net::TcpStream;

use std::sync::{Mutex, PoisonError};

use super::model::{CallbackConfig, Corp};
use super::state::State;

/// How long WeCom waits for an answer, and how often it tries.
pub const ANSWER_WITHIN: Duration = Duration::from_secs(5);
pub const ATTEMPTS: u32 = 3;

/// What one delivery came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackDelivery {
    /// The app it went to.
    pub agent_id: u32,
    /// The last answer's status; None when none came in time.
    pub status: Option<u16>,
    /// Tries made (a try without an answer within 5 s is repeated).
    pub attempts: u32,
    /// From the first try to the last answer.
    pub elapsed: Duration,
}

/// A contact change's message, as doc 90970 shows it; `fields` are the
/// change's own elements (`<UserID>`, `<NewUserID>`, `<Status>`…).
pub(crate) fn contact_change_xml(
    corp_id: &str,
    change_type: &str,
    fields: &[(&str, &str)],
    unix_now: u64,
) -> String {
    let mut xml = format!(
        "<xml><ToUserName><![CDATA[{corp_id}]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>\
         <CreateTime>{unix_now}</CreateTime><MsgType><![CDATA[event]]></MsgType>\
         <Event><![CDATA[change_contact]]></Event><ChangeType>{change_type}</ChangeType>"
    );
    for (name, value) in fields {
        xml.push_str(&format!("<{name}><![CDATA[{value}]]></{name}>"));
    }
    xml.push_str("</xml>");
    xml
}

/// The signed, encrypted request for one message: the path and query, and
/// the body.
pub(crate) fn sealed(
    config: &CallbackConfig,
    corp_id: &str,
    agent_id: u32,
    message: &str,
    random: [u8; 16],
    timestamp: u64,
    nonce: &str,
) -> (String, String) {
    let encrypted = encrypt(&config.encoding_aes_key, message, corp_id, random);
    let mut parts = [
        config.token.as_str(),
        &timestamp.to_string(),
        nonce,
        encrypted.as_str(),
    ]
    .map(str::to_owned);
    parts.sort();
    let signature = hex(&Sha1::digest(parts.concat().as_bytes()));
    let separator = if config.url.contains('?') { '&' } else { '?' };
    let target = format!(
        "{}{separator}msg_signature={signature}&timestamp={timestamp}&nonce={nonce}",
        config.url
    );
    let body = format!(
        "<xml><ToUserName><![CDATA[{corp_id}]]></ToUserName><Encrypt><![CDATA[{encrypted}]]></Encrypt>\
         <AgentID><![CDATA[{agent_id}]]></AgentID></xml>"
    );
    (target, body)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The AES key: the EncodingAESKey with `=` appended, base64-decoded
/// (WeCom's keys leave the last character's spare bits set).
fn aes_key(encoding_aes_key: &str) -> Vec<u8> {
    base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
    )
    .decode(format!("{encoding_aes_key}="))
    .ok()
    .filter(|key| key.len() == 32)
    .unwrap_or_else(|| vec![0; 32])
}

fn encrypt(encoding_aes_key: &str, message: &str, corp_id: &str, random: [u8; 16]) -> String {
    let key = aes_key(encoding_aes_key);
    let mut plain = random.to_vec();
    plain.extend_from_slice(&(message.len() as u32).to_be_bytes());
    plain.extend_from_slice(message.as_bytes());
    plain.extend_from_slice(corp_id.as_bytes());
    let pad = 32 - plain.len() % 32;
    plain.resize(plain.len() + pad, pad as u8);
    let length = plain.len();
    let encryptor = cbc::Encryptor::<aes::Aes256>::new(key[..].into(), key[..16].into());
    let sealed = encryptor
        .encrypt_padded_mut::<NoPadding>(&mut plain, length)
        .map(<[u8]>::to_vec)
        .unwrap_or_default();
    base64::engine::general_purpose::STANDARD.encode(sealed)
}

/// Applies `change` to the corp that has member `userid` and sends the
/// contact change it makes; none when no corp has the member.
async fn member_change(
    state: &Mutex<State>,
    userid: &str,
    change: impl FnOnce(&mut Corp) -> Option<()>,
    change_type: &str,
    fields: &[(&str, &str)],
) -> Vec<CallbackDelivery> {
    let corp_id = {
        let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
        state
            .model
            .corps
            .iter_mut()
            .find(|corp| corp.member(userid).is_some())
            .and_then(|corp| {
                change(corp)?;
                Some(corp.corp_id.clone())
            })
    };
    match corp_id {
        Some(corp_id) => contact_change(state, &corp_id, change_type, fields).await,
        None => Vec::new(),
    }
}

pub(crate) async fn remove_member(state: &Mutex<State>, userid: &str) -> Vec<CallbackDelivery> {
    let remove = |corp: &mut Corp| {
        corp.members.retain(|m| m.userid != userid);
        Some(())
    };
    member_change(state, userid, remove, "delete_user", &[("UserID", userid)]).await
}

pub(crate) async fn rename_member(
    state: &Mutex<State>,
    userid: &str,
    new: &str,
) -> Vec<CallbackDelivery> {
    let rename = |corp: &mut Corp| {
        corp.member_mut(userid)?.userid = new.to_owned();
        Some(())
    };
    let fields = [("UserID", userid), ("NewUserID", new)];
    member_change(state, userid, rename, "update_user", &fields).await
}

pub(crate) async fn move_member(
    state: &Mutex<State>,
    userid: &str,
    departments: &[u32],
) -> Vec<CallbackDelivery> {
    let list = departments
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let relocate = |corp: &mut Corp| {
        corp.member_mut(userid)?.department = departments.to_vec();
        Some(())
    };
    let fields = [("UserID", userid), ("Department", list.as_str())];
    member_change(state, userid, relocate, "update_user", &fields).await
}

pub(crate) async fn disable_member(state: &Mutex<State>, userid: &str) -> Vec<CallbackDelivery> {
    let disable = |corp: &mut Corp| {
        corp.member_mut(userid)?.disabled = true;
        Some(())
    };
    let fields = [("UserID", userid), ("Status", "2")];
    member_change(state, userid, disable, "update_user", &fields).await
}

/// Adds `add` to tag `tagid` and removes `remove` from it, and sends
/// `update_tag` with `AddUserItems` and `DelUserItems`; none when no corp
/// has the tag.
pub(crate) async fn change_tag(
    state: &Mutex<State>,
    tagid: u32,
    add: &[&str],
    remove: &[&str],
) -> Vec<CallbackDelivery> {
    let corp_id = {
        let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
        state.model.corps.iter_mut().find_map(|corp| {
            let tag = corp.tags.iter_mut().find(|t| t.tagid == tagid)?;
            tag.userlist.retain(|u| !remove.contains(&u.as_str()));
            for userid in add {
                if !tag.userlist.iter().any(|u| u == userid) {
                    tag.userlist.push((*userid).to_owned());
                }
            }
            Some(corp.corp_id.clone())
        })
    };
    let Some(corp_id) = corp_id else {
        return Vec::new();
    };
    let (tag, added, removed) = (tagid.to_string(), add.join(","), remove.join(","));
    let mut fields = vec![("TagId", tag.as_str())];
    if !added.is_empty() {
        fields.push(("AddUserItems", added.as_str()));
    }
    if !removed.is_empty() {
        fields.push(("DelUserItems", removed.as_str()));
    }
    contact_change(state, &corp_id, "update_tag", &fields).await
}

/// Sends a contact change to each app of `corp_id` with a callback.
pub(crate) async fn contact_change(
    state: &Mutex<State>,
    corp_id: &str,
    change_type: &str,
    fields: &[(&str, &str)],
) -> Vec<CallbackDelivery> {
    let sends: Vec<(u32, String, String)> = {
        let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
        let now = state.unix_now();
        let message = contact_change_xml(corp_id, change_type, fields, now);
        let agents: Vec<(u32, CallbackConfig)> = state
            .model
            .corps
            .iter()
            .filter(|corp| corp.corp_id == corp_id)
            .flat_map(|corp| &corp.agents)
            .filter_map(|agent| Some((agent.agent_id, agent.callback.clone()?)))
            .collect();
        agents
            .into_iter()
            .map(|(agent_id, config)| {
                let random = state.random_bytes();
                // WeCom's nonces are decimal digits.
                let [a, b, c, d, ..] = state.random_bytes();
                let nonce = u32::from_le_bytes([a, b, c, d]).to_string();
                let (target, body) =
                    sealed(&config, corp_id, agent_id, &message, random, now, &nonce);
                (agent_id, target, body)
            })
            .collect()
    };
    let mut deliveries = Vec::with_capacity(sends.len());
    for (agent_id, target, body) in sends {
        deliveries.push(deliver(agent_id, &target, body).await);
    }
    deliveries
}

/// POSTs `body` to `target` (an `http://` URL on a host this machine
/// reaches), as WeCom does: an answer within 5 s, else again, 3 tries.
pub(crate) async fn deliver(agent_id: u32, target: &str, body: String) -> CallbackDelivery {
    let started = Instant::now();
    let mut delivery = CallbackDelivery {
        agent_id,
        status: None,
        attempts: 0,
        elapsed: Duration::ZERO,
    };
    while delivery.attempts < ATTEMPTS {
        delivery.attempts += 1;
        let attempt = tokio::time::timeout(ANSWER_WITHIN, post(target, body.clone())).await;
        if let Ok(Ok(status)) = attempt {
            delivery.status = Some(status);
            break;
        }
    }
    delivery.elapsed = started.elapsed();
    delivery
}

async fn post(target: &str, body: String) -> anyhow::Result<u16> {
    let uri: http::Uri = target.parse()?;
    let authority = uri
        .authority()
        .ok_or_else(|| anyhow::anyhow!("no host in {target}"))?
        .clone();
    let port = uri.port_u16().unwrap_or(80);
    let stream = TcpStream::connect((authority.host(), port)).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let request = Request::post(path)
        .header(header::HOST, authority.as_str())
        .header(header::CONTENT_TYPE, "text/xml; charset=utf-8")
        .body(Full::new(Bytes::from(body)))?;
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    let _ = response.into_body().collect().await;
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the simulator sends is framed as doc 90968 says, checked with
    /// an independent decryptor here (the component's is checked against
    /// WeCom's published sample).
    #[test]
    fn what_it_sends_is_framed_as_wecom_frames_it() {
        use aes::cipher::BlockDecryptMut;
        let config = CallbackConfig {
            url: "http://127.0.0.1:8080/auth/wecom/events".into(),
            token: "QDG6eK".into(),
            encoding_aes_key: "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C".into(),
        };
        let message = contact_change_xml(
            "ww0123456789abcdef",
            "delete_user",
            &[("UserID", "zhangsan")],
            1,
        );
        let (target, body) = sealed(
            &config,
            "ww0123456789abcdef",
            1000002,
            &message,
            [5; 16],
            1_800_000_000,
            "42",
        );
        assert!(target.starts_with("http://127.0.0.1:8080/auth/wecom/events?msg_signature="));
        assert!(target.ends_with("&timestamp=1800000000&nonce=42"));
        let encrypted = body
            .split("<Encrypt><![CDATA[")
            .nth(1)
            .unwrap()
            .split("]]>")
            .next()
            .unwrap();
        let mut data = base64::engine::general_purpose::STANDARD
            .decode(encrypted)
            .unwrap();
        let key = aes_key(&config.encoding_aes_key);
        let plain = cbc::Decryptor::<aes::Aes256>::new(key[..].into(), key[..16].into())
            .decrypt_padded_mut::<NoPadding>(&mut data)
            .unwrap();
        assert_eq!(plain.len() % 32, 0);
        assert_eq!(&plain[..16], &[5; 16]);
        let length = u32::from_be_bytes(plain[16..20].try_into().unwrap()) as usize;
        assert_eq!(&plain[20..20 + length], message.as_bytes());
        let pad = *plain.last().unwrap() as usize;
        assert_eq!(
            &plain[20 + length..plain.len() - pad],
            b"ww0123456789abcdef"
        );
    }
}

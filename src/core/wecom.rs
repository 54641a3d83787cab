//! The WeCom server API, as a login uses it: `gettoken` (cached in the
//! key-value store per app), `auth/getuserinfo`, `auth/getuserdetail`,
//! `user/get`. Answers are parsed leniently (unknown fields ignored, the legacy
//! capitalised spelling accepted); failures become [`AuthError`]s that never
//! carry the Secret or a token.

use super::access::TagMembers;
use super::error::{AuthError, WecomError, errcode, redact};
use super::ports::{HttpRequest, HttpResponse, KeyValue, Transport, decode, get_json, set_json};
use super::settings::Authenticator;
use super::urls::encode_component;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Refresh a cached token this long before WeCom says it expires.
pub const TOKEN_REFRESH_MARGIN: u64 = 300;
/// At most this many calls of one batch in flight together: WeCom limits
/// concurrent calls (45033).
pub const MAX_IN_FLIGHT: usize = 8;
/// Longest answer read from WeCom.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// The key of an app's cached access token.
pub fn token_key(authenticator: &Authenticator) -> String {
    format!(
        "wecom-token/{}/{}",
        authenticator.corp_id, authenticator.agent_id
    )
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct CachedToken {
    access_token: String,
    /// Unix seconds after which it is not used any more.
    refresh_after: u64,
}

/// Who WeCom says the code belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeIdentity {
    pub userid: String,
    /// Only for in-client `snsapi_privateinfo` logins of consenting members.
    pub user_ticket: Option<String>,
}

/// What `auth/getuserdetail` tells (no name).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct UserDetail {
    pub userid: Option<String>,
    pub gender: Option<Gender>,
    pub avatar: Option<String>,
    pub mobile: Option<String>,
    pub email: Option<String>,
    pub biz_mail: Option<String>,
}

/// What `user/get` tells a post-2022 app: the name (and, for older apps, more).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct UserProfile {
    pub name: Option<String>,
    /// The member's departments (doc 90196); absent for apps not allowed
    /// to see them.
    pub department: Option<Vec<u32>>,
    pub avatar: Option<String>,
    pub email: Option<String>,
    pub biz_mail: Option<String>,
}

/// One page of `user/list_id` (doc 96067): the members the app may see,
/// one entry per member and department.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct UserListPage {
    /// Empty (or absent) on the last page.
    #[serde(default)]
    pub next_cursor: String,
    #[serde(default)]
    pub dept_user: Vec<DeptUser>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct DeptUser {
    pub userid: Option<String>,
    pub department: Option<u32>,
}

/// Members `user/list_id` gives at most per page (doc 96067).
pub const USER_LIST_PAGE: u32 = 10_000;

/// What `agent/get` tells of the app (doc 90227): what the setup check
/// compares with the settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct AgentInfo {
    pub name: Option<String>,
    /// The trusted domain (可信域名), `host[:port]`.
    pub redirect_domain: Option<String>,
    /// 1: the app is disabled (停用).
    pub close: Option<i64>,
}

/// Reads the answer to call `i` of a batch, sent with `token`.
type ReadAnswer<'a, A> =
    dyn Fn(usize, Result<HttpResponse, String>, &str) -> Result<A, AuthError> + 'a;

/// One contact fact to ask WeCom for ([`WecomApi::contact_facts`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FactQuery {
    /// A member's departments (`user/get`).
    Departments(String),
    /// The department tree (`department/simplelist`).
    Tree,
    /// Every tag (`tag/list`).
    Tags,
    /// One tag's name, members and departments (`tag/get`).
    Tag(u32),
}

/// What WeCom answered to a [`FactQuery`], in the same variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FactAnswer {
    Departments(Vec<u32>),
    /// `(id, parentid)` pairs.
    Tree(Vec<(u32, u32)>),
    /// `(tagid, tagname)` pairs.
    Tags(Vec<(u32, String)>),
    Tag(TagMembers),
}

/// The longest contact answer read, and so the most the transport reads of
/// any answer: a tree of some 40 000 departments, a tag of some 50 000
/// members. Eight in flight stay well inside an instance's memory.
pub const MAX_CONTACT_ANSWER_BYTES: usize = 2 << 20;

/// Reads the answer to `query` with `read` (given the size limit).
fn read_fact(
    query: &FactQuery,
    read: impl FnOnce(usize) -> Result<Vec<u8>, AuthError>,
) -> Result<FactAnswer, AuthError> {
    #[derive(Deserialize)]
    struct Node {
        id: u32,
        /// Absent on the root (1).
        parentid: Option<u32>,
    }
    #[derive(Deserialize)]
    struct Tree {
        department_id: Option<Vec<Node>>,
    }
    #[derive(Deserialize)]
    struct ListedTag {
        tagid: u32,
        tagname: Option<String>,
    }
    #[derive(Deserialize)]
    struct Tags {
        taglist: Option<Vec<ListedTag>>,
    }
    #[derive(Deserialize)]
    struct Member {
        userid: String,
    }
    #[derive(Deserialize)]
    struct Tag {
        tagname: Option<String>,
        userlist: Option<Vec<Member>>,
        partylist: Option<Vec<u32>>,
    }
    let body = read(MAX_CONTACT_ANSWER_BYTES)?;
    let unreadable =
        || AuthError::WecomUnavailable("a contact answer had an unexpected shape".into());
    Ok(match query {
        FactQuery::Departments(_) => {
            let profile: UserProfile = serde_json::from_slice(&body).map_err(|_| unreadable())?;
            FactAnswer::Departments(profile.department.unwrap_or_default())
        }
        FactQuery::Tree => {
            let tree: Tree = serde_json::from_slice(&body).map_err(|_| unreadable())?;
            FactAnswer::Tree(
                tree.department_id
                    .unwrap_or_default()
                    .into_iter()
                    .map(|n| (n.id, n.parentid.unwrap_or(0)))
                    .collect(),
            )
        }
        FactQuery::Tags => {
            let tags: Tags = serde_json::from_slice(&body).map_err(|_| unreadable())?;
            FactAnswer::Tags(
                tags.taglist
                    .unwrap_or_default()
                    .into_iter()
                    .map(|t| (t.tagid, t.tagname.unwrap_or_default()))
                    .collect(),
            )
        }
        FactQuery::Tag(tagid) => {
            let tag: Tag = serde_json::from_slice(&body).map_err(|_| unreadable())?;
            FactAnswer::Tag(TagMembers {
                tagid: *tagid,
                name: non_empty(tag.tagname),
                users: tag
                    .userlist
                    .unwrap_or_default()
                    .into_iter()
                    .map(|m| m.userid)
                    .collect(),
                departments: tag.partylist.unwrap_or_default(),
            })
        }
    })
}

/// Every answer's envelope.
#[derive(Deserialize)]
struct Envelope {
    errcode: Option<i64>,
    errmsg: Option<String>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: Option<String>,
    expires_in: Option<u64>,
}

/// `auth/getuserinfo` (doc 91023) answers `userid` / `openid`; the legacy
/// `user/getuserinfo` and some clients answer `UserId` / `OpenId`. Each
/// spelling is a field of its own (an alias would refuse an answer that
/// holds both), and the first non-empty one counts.
#[derive(Deserialize)]
struct UserInfoAnswer {
    userid: Option<String>,
    #[serde(rename = "UserId")]
    legacy_userid: Option<String>,
    user_ticket: Option<String>,
    openid: Option<String>,
    #[serde(rename = "OpenId")]
    legacy_openid: Option<String>,
    external_userid: Option<String>,
}

impl UserInfoAnswer {
    fn userid(&mut self) -> Option<String> {
        non_empty(self.userid.take()).or_else(|| non_empty(self.legacy_userid.take()))
    }

    fn is_outsider(&self) -> bool {
        [&self.openid, &self.legacy_openid, &self.external_userid]
            .into_iter()
            .any(|id| id.as_deref().is_some_and(|id| !id.is_empty()))
    }
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

/// One app's view of the WeCom server API for one call of the component.
pub struct WecomApi<'a, T: Transport, K: KeyValue> {
    pub authenticator: &'a Authenticator,
    pub transport: &'a T,
    pub kv: &'a K,
    pub now: u64,
}

impl<T: Transport, K: KeyValue> WecomApi<'_, T, K> {
    /// `auth/getuserinfo`: the member behind a code (single use at WeCom).
    pub fn user_info(&self, code: &str) -> Result<CodeIdentity, AuthError> {
        let mut answer: UserInfoAnswer =
            self.call_with_token("auth/getuserinfo", &[("code", code)], None)?;
        match answer.userid() {
            Some(userid) => Ok(CodeIdentity {
                userid,
                user_ticket: non_empty(answer.user_ticket),
            }),
            None if answer.is_outsider() => Err(AuthError::NotAMember),
            None => Err(AuthError::WecomUnavailable(
                "auth/getuserinfo answered neither userid nor openid".into(),
            )),
        }
    }

    /// `auth/getuserdetail`: mobile, email, avatar, gender of a consenting member.
    pub fn user_detail(&self, user_ticket: &str) -> Result<UserDetail, AuthError> {
        let body = user_ticket_body(user_ticket);
        self.call_with_token("auth/getuserdetail", &[], Some(body.into_bytes()))
    }

    /// `user/list_id` (doc 96067): a page of the members the app may see,
    /// from `cursor` (empty: the first page).
    pub fn user_list_id(&self, cursor: &str) -> Result<UserListPage, AuthError> {
        let body = serde_json::json!({ "cursor": cursor, "limit": USER_LIST_PAGE }).to_string();
        // 10 000 entries of up to 64-byte userids: within the contact limit.
        let body = Some(body.into_bytes());
        self.call_with_token_up_to("user/list_id", &[], body, MAX_CONTACT_ANSWER_BYTES)
    }

    /// `user/get`: the member's name.
    pub fn user(&self, userid: &str) -> Result<UserProfile, AuthError> {
        self.call_with_token("user/get", &[("userid", userid)], None)
    }

    /// What the access rules and groups need, at most [`MAX_IN_FLIGHT`]
    /// calls in flight together: a member's departments (`user/get`, doc
    /// 90196), the tree (`department/simplelist`, doc 95350: `(id,
    /// parentid)` of every department the app may read), every tag
    /// (`tag/list`, doc 90216) and a tag's name, members and departments the
    /// app may see (`tag/get`, doc 90213; 40068 for an unknown tag).
    /// Answers in the order asked, each its own result.
    pub fn contact_facts(&self, queries: &[FactQuery]) -> Vec<Result<FactAnswer, AuthError>> {
        let ids: Vec<String> = queries
            .iter()
            .map(|q| match q {
                FactQuery::Departments(userid) => userid.clone(),
                FactQuery::Tag(tagid) => tagid.to_string(),
                FactQuery::Tree | FactQuery::Tags => String::new(),
            })
            .collect();
        let params: Vec<[(&str, &str); 1]> = queries
            .iter()
            .zip(&ids)
            .map(|(q, id)| match q {
                FactQuery::Departments(_) => [("userid", id.as_str())],
                _ => [("tagid", id.as_str())],
            })
            .collect();
        let calls: Vec<Call<'_>> = queries
            .iter()
            .zip(&params)
            .map(|(q, param)| {
                let (api, query): (&'static str, &[(&str, &str)]) = match q {
                    FactQuery::Departments(_) => ("user/get", param),
                    FactQuery::Tree => ("department/simplelist", &[]),
                    FactQuery::Tags => ("tag/list", &[]),
                    FactQuery::Tag(_) => ("tag/get", param),
                };
                Call {
                    api,
                    query,
                    body: None,
                }
            })
            .collect();
        let mut out = Vec::with_capacity(calls.len());
        for (chunk, at) in calls
            .chunks(MAX_IN_FLIGHT)
            .zip((0..).step_by(MAX_IN_FLIGHT))
        {
            let read = |i: usize, answer, token: &str| {
                let query = &queries[at + i];
                let api = chunk[i].api;
                read_fact(query, |limit| {
                    self.checked_body(api, answer, &[token], limit)
                })
            };
            out.extend(self.call_all(chunk, &read));
        }
        out
    }

    /// `agent/get` of the configured app (doc 90227): 40056 when agent-id is
    /// no app of the company, 301002 when it is another app than the Secret's.
    pub fn agent(&self) -> Result<AgentInfo, AuthError> {
        let agent_id = self.authenticator.agent_id.as_str();
        self.call_with_token("agent/get", &[("agentid", agent_id)], None)
    }

    /// `auth/getuserdetail` and `user/get` in flight together (they do not
    /// depend on each other): one round trip for both.
    pub fn user_detail_and_profile(
        &self,
        user_ticket: &str,
        userid: &str,
    ) -> (
        Result<UserDetail, AuthError>,
        Result<UserProfile, AuthError>,
    ) {
        let body = user_ticket_body(user_ticket);
        let detail = Call {
            api: "auth/getuserdetail",
            query: &[],
            body: Some(body.into_bytes()),
        };
        let profile = Call {
            api: "user/get",
            query: &[("userid", userid)],
            body: None,
        };
        enum Answer {
            Detail(UserDetail),
            Profile(UserProfile),
        }
        let calls = [detail, profile];
        let read = |i: usize, answer, token: &str| {
            let api = calls[i].api;
            match i {
                0 => self.read(api, answer, &[token]).map(Answer::Detail),
                _ => self.read(api, answer, &[token]).map(Answer::Profile),
            }
        };
        let mut answers = self.call_all(&calls, &read).into_iter();
        let missing =
            || AuthError::WecomUnavailable("the transport answered fewer requests".into());
        let detail = match answers.next() {
            Some(Ok(Answer::Detail(detail))) => Ok(detail),
            Some(Err(e)) => Err(e),
            _ => Err(missing()),
        };
        let profile = match answers.next() {
            Some(Ok(Answer::Profile(profile))) => Ok(profile),
            Some(Err(e)) => Err(e),
            _ => Err(missing()),
        };
        (detail, profile)
    }

    /// Calls `api` with the cached token; when WeCom says the token is bad
    /// (40014, 42001, 41001) fetches a new one and retries once.
    fn call_with_token<A: DeserializeOwned>(
        &self,
        api: &'static str,
        query: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Result<A, AuthError> {
        self.call_with_token_up_to(api, query, body, MAX_ANSWER_BYTES)
    }

    /// [`WecomApi::call_with_token`] of an answer of at most `limit` bytes.
    fn call_with_token_up_to<A: DeserializeOwned>(
        &self,
        api: &'static str,
        query: &[(&str, &str)],
        body: Option<Vec<u8>>,
        limit: usize,
    ) -> Result<A, AuthError> {
        let call = Call { api, query, body };
        let token = self.access_token(None)?;
        let send = |token: &str| {
            let request = self.request(&call, token);
            self.read_up_to(call.api, self.transport.send(&request), &[token], limit)
        };
        match send(&token) {
            Err(e) if token_refused(&e) => {
                let fresh = self.access_token(Some(&token))?;
                send(&fresh)
            }
            other => other,
        }
    }

    /// Token calls in flight together, each retried once (the retries
    /// together) with a fresh token when WeCom says the token is bad, as
    /// [`WecomApi::call_with_token`] does for one; a good answer stays good
    /// when the fresh token cannot be had. `read` reads the answer to
    /// `calls[i]`. Answers in the order of `calls`.
    fn call_all<A>(
        &self,
        calls: &[Call<'_>],
        read: &ReadAnswer<'_, A>,
    ) -> Vec<Result<A, AuthError>> {
        let token = match self.access_token(None) {
            Ok(token) => token,
            Err(e) => return calls.iter().map(|_| Err(e.clone())).collect(),
        };
        let every: Vec<usize> = (0..calls.len()).collect();
        let mut answers = self.send_calls(calls, &every, &token, read);
        let stale: Vec<usize> = (0..answers.len())
            .filter(|&i| refused(&answers[i]))
            .collect();
        if stale.is_empty() {
            return answers;
        }
        match self.access_token(Some(&token)) {
            Err(e) => stale.iter().for_each(|&i| answers[i] = Err(e.clone())),
            Ok(fresh) => {
                let again = self.send_calls(calls, &stale, &fresh, read);
                for (i, answer) in stale.into_iter().zip(again) {
                    answers[i] = answer;
                }
            }
        }
        answers
    }

    /// `calls[i]` for each `i` of `which`, in flight together.
    fn send_calls<A>(
        &self,
        calls: &[Call<'_>],
        which: &[usize],
        token: &str,
        read: &ReadAnswer<'_, A>,
    ) -> Vec<Result<A, AuthError>> {
        let requests: Vec<HttpRequest> = which
            .iter()
            .map(|&i| self.request(&calls[i], token))
            .collect();
        let mut answers = self.transport.send_all(&requests).into_iter();
        which
            .iter()
            .map(|&i| {
                let answer = answers
                    .next()
                    .unwrap_or_else(|| Err("the transport answered fewer requests".into()));
                read(i, answer, token)
            })
            .collect()
    }

    /// The request of `call` with `token`.
    fn request(&self, call: &Call<'_>, token: &str) -> HttpRequest {
        let mut url = format!(
            "{}/cgi-bin/{}?access_token={}",
            self.authenticator.api_base,
            call.api,
            encode_component(token)
        );
        for (name, value) in call.query {
            url.push('&');
            url.push_str(name);
            url.push('=');
            url.push_str(&encode_component(value));
        }
        self.http_request(url, call.body.clone())
    }

    fn http_request(&self, url: String, body: Option<Vec<u8>>) -> HttpRequest {
        HttpRequest {
            post: body.is_some(),
            url,
            body,
            timeout_ms: self.authenticator.api_timeout_ms,
        }
    }

    /// A fresh `gettoken` with the configured corp id and Secret, whatever is
    /// cached (the admin's setup check): Ok, or WeCom's refusal (40013 corp
    /// id, 40001 Secret, 60020 with the IP WeCom saw).
    pub fn check_credentials(&self) -> Result<(), AuthError> {
        let cached = get_json::<CachedToken>(self.kv, &token_key(self.authenticator))
            .ok()
            .flatten()
            .map(|cached| cached.access_token);
        self.access_token(Some(cached.as_deref().unwrap_or_default()))?;
        Ok(())
    }

    /// The cached token, unless it is `stale` (the one WeCom just refused) or
    /// near its expiry: then a new one from `gettoken`, cached.
    fn access_token(&self, stale: Option<&str>) -> Result<String, AuthError> {
        let key = token_key(self.authenticator);
        // An unreadable cache entry is as good as none: it is refetched. A
        // store that fails is the error: taken for a miss, every call would
        // cost a `gettoken`.
        let cached = self.kv.get(&key)?;
        if let Some(cached) = cached.and_then(|b| decode::<CachedToken>(&key, &b).ok())
            && self.now < cached.refresh_after
            && Some(cached.access_token.as_str()) != stale
        {
            return Ok(cached.access_token);
        }
        let url = format!(
            "{}/cgi-bin/gettoken?corpid={}&corpsecret={}",
            self.authenticator.api_base,
            encode_component(&self.authenticator.corp_id),
            encode_component(self.authenticator.secret.expose()),
        );
        let request = self.http_request(url, None);
        let answer: TokenAnswer = self.read("gettoken", self.transport.send(&request), &[])?;
        let token = answer
            .access_token
            .filter(|t| !t.is_empty() && t.len() <= 1024)
            .ok_or_else(|| AuthError::WecomUnavailable("gettoken answered no token".into()))?;
        let lifetime = answer.expires_in.unwrap_or(7200);
        let refresh_after =
            self.now + lifetime.saturating_sub(TOKEN_REFRESH_MARGIN.min(lifetime / 2));
        // A write that fails once costs one `gettoken` later (WeCom limits
        // them and asks callers to cache, doc 91039), not this call: a store
        // that keeps refusing writes fails the login at its used state, and
        // `/verify` at its facts cache.
        let _ = set_json(
            self.kv,
            &key,
            &CachedToken {
                access_token: token.clone(),
                refresh_after,
            },
        );
        Ok(token)
    }

    /// Reads WeCom's answer to one request: transport failures, non-200
    /// statuses and unreadable bodies are `WecomUnavailable`, `errcode != 0`
    /// is `Wecom`. `tokens` (and the Secret) are redacted from anything kept.
    fn read<A: DeserializeOwned>(
        &self,
        api: &'static str,
        response: Result<HttpResponse, String>,
        tokens: &[&str],
    ) -> Result<A, AuthError> {
        self.read_up_to(api, response, tokens, MAX_ANSWER_BYTES)
    }

    /// [`WecomApi::read`] of an answer of at most `limit` bytes.
    fn read_up_to<A: DeserializeOwned>(
        &self,
        api: &'static str,
        response: Result<HttpResponse, String>,
        tokens: &[&str],
        limit: usize,
    ) -> Result<A, AuthError> {
        let body = self.checked_body(api, response, tokens, limit)?;
        serde_json::from_slice(&body).map_err(|e| unreadable_answer(api, &e))
    }

    /// The body of a successful answer (HTTP 200, at most `limit` bytes,
    /// JSON with `errcode` 0), or the error it stands for, secrets redacted.
    fn checked_body(
        &self,
        api: &'static str,
        response: Result<HttpResponse, String>,
        tokens: &[&str],
        limit: usize,
    ) -> Result<Vec<u8>, AuthError> {
        let mut secrets = vec![self.authenticator.secret.expose()];
        secrets.extend_from_slice(tokens);
        let response = response.map_err(|why| {
            AuthError::WecomUnavailable(format!("{api}: {}", redact(&why, &secrets)))
        })?;
        if response.status != 200 {
            return Err(AuthError::WecomUnavailable(format!(
                "{api} answered HTTP {}",
                response.status
            )));
        }
        if response.body.len() > limit {
            return Err(AuthError::WecomUnavailable(format!(
                "{api} answered more than {limit} bytes"
            )));
        }
        let envelope: Envelope =
            serde_json::from_slice(&response.body).map_err(|e| unreadable_answer(api, &e))?;
        match envelope.errcode.unwrap_or(0) {
            0 => Ok(response.body),
            code => Err(AuthError::Wecom(WecomError {
                errcode: i32::try_from(code).unwrap_or(i32::MAX),
                errmsg: redact(envelope.errmsg.as_deref().unwrap_or(""), &secrets),
                api,
            })),
        }
    }
}

/// An answer serde_json could not read: where it stopped, never what it read
/// (answers hold members' data, serde_json's messages quote values).
fn unreadable_answer(api: &str, e: &serde_json::Error) -> AuthError {
    AuthError::WecomUnavailable(format!(
        "{api} answered unreadable JSON (line {}, column {})",
        e.line(),
        e.column()
    ))
}

/// One call of a token API: its name (after `/cgi-bin/`), query and body.
#[derive(Clone)]
struct Call<'q> {
    api: &'static str,
    query: &'q [(&'q str, &'q str)],
    body: Option<Vec<u8>>,
}

/// Whether WeCom refused the token (40014, 42001, 41001): fetch a new one.
fn token_refused(e: &AuthError) -> bool {
    matches!(e, AuthError::Wecom(w) if errcode::TOKEN_INVALID.contains(&w.errcode))
}

fn refused<A>(result: &Result<A, AuthError>) -> bool {
    result.as_ref().err().is_some_and(token_refused)
}

/// The body of `auth/getuserdetail`: `{"user_ticket":"..."}`.
fn user_ticket_body(user_ticket: &str) -> String {
    serde_json::json!({ "user_ticket": user_ticket }).to_string()
}

/// `gender` as `auth/getuserdetail` sends it: a string (`"1"`, doc 91437);
/// some answers use a number.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "GenderAnswer")]
pub struct Gender(pub String);

#[derive(Deserialize)]
#[serde(untagged)]
enum GenderAnswer {
    Text(String),
    Number(serde_json::Number),
}

impl From<GenderAnswer> for Gender {
    fn from(answer: GenderAnswer) -> Gender {
        Gender(match answer {
            GenderAnswer::Text(text) => text,
            GenderAnswer::Number(number) => number.to_string(),
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::cell::RefCell;
    use std::collections::VecDeque;

    use super::*;
    use crate::core::ports::{HttpResponse, MemoryKv};
    use crate::example::settings as sample;

    const NOW: u64 = 1_790_000_000;

    #[test]
    fn the_token_cache_of_todays_layout_reads_and_is_written_the_same() {
        let cached: CachedToken = crate::core::ports::assert_layout_kept("wecom-token.json");
        assert_eq!(cached.refresh_after, 1_764_554_100);
    }

    /// Answers requests from a script, in order, and records them.
    #[derive(Default)]
    pub(crate) struct Scripted {
        pub answers: RefCell<VecDeque<Result<HttpResponse, String>>>,
        pub sent: RefCell<Vec<HttpRequest>>,
    }

    impl Scripted {
        pub(crate) fn json(self, body: &str) -> Self {
            self.answers.borrow_mut().push_back(Ok(HttpResponse {
                status: 200,
                body: body.as_bytes().to_vec(),
                date: None,
                timeouts_refused: false,
            }));
            self
        }
        pub(crate) fn answer(self, answer: Result<HttpResponse, String>) -> Self {
            self.answers.borrow_mut().push_back(answer);
            self
        }
        pub(crate) fn paths(&self) -> Vec<String> {
            self.sent
                .borrow()
                .iter()
                .map(|r| {
                    let path = r.url.split("/cgi-bin/").nth(1).unwrap_or_default();
                    path.split('?').next().unwrap_or_default().to_owned()
                })
                .collect()
        }
    }

    impl Transport for Scripted {
        fn send(&self, request: &HttpRequest) -> Result<HttpResponse, String> {
            self.sent.borrow_mut().push(request.clone());
            self.answers
                .borrow_mut()
                .pop_front()
                .unwrap_or_else(|| Err("script ran out".into()))
        }
    }

    pub(crate) const TOKEN_OK: &str =
        r#"{"errcode":0,"errmsg":"ok","access_token":"accesstoken000001","expires_in":7200}"#;

    fn api<'a>(
        a: &'a Authenticator,
        t: &'a Scripted,
        kv: &'a MemoryKv,
    ) -> WecomApi<'a, Scripted, MemoryKv> {
        WecomApi {
            authenticator: a,
            transport: t,
            kv,
            now: NOW,
        }
    }

    #[test]
    fn departments_and_tags_read_wecoms_shapes() {
        let a = sample("corp").check().unwrap();
        let kv = MemoryKv::default();
        let t = Scripted::default()
            .json(TOKEN_OK)
            .json(r#"{"errcode":0,"errmsg":"ok","department_id":[{"id":1,"parentid":0,"order":100},{"id":2,"parentid":1,"order":10}]}"#)
            .json(r#"{"errcode":0,"errmsg":"ok","tagname":"运维","userlist":[{"userid":"lisi","name":"李四"}],"partylist":[4]}"#)
            .json(r#"{"errcode":60011,"errmsg":"no privilege to access/modify contact/party/agent"}"#)
            .json(r#"{"errcode":0,"errmsg":"ok","userid":"zhangsan","name":"张三","department":[1,2],"main_department":1}"#)
            .json(r#"{"errcode":0,"errmsg":"ok","taglist":[{"tagid":7,"tagname":"运维"},{"tagid":9,"tagname":"财务"}]}"#);
        let wecom = api(&a, &t, &kv);
        let queries = [
            FactQuery::Tree,
            FactQuery::Tag(7),
            FactQuery::Tag(8),
            FactQuery::Departments("zhangsan".into()),
            FactQuery::Tags,
        ];
        let mut answers = wecom.contact_facts(&queries).into_iter();
        let mut next = || answers.next().unwrap();
        assert_eq!(next().unwrap(), FactAnswer::Tree(vec![(1, 0), (2, 1)]));
        assert_eq!(
            next().unwrap(),
            FactAnswer::Tag(TagMembers {
                tagid: 7,
                name: Some("运维".into()),
                users: vec!["lisi".into()],
                departments: vec![4],
            })
        );
        let refused = next().unwrap_err();
        assert!(
            matches!(refused, AuthError::Wecom(ref e) if e.errcode == 60011),
            "{refused:?}"
        );
        assert_eq!(next().unwrap(), FactAnswer::Departments(vec![1, 2]));
        assert_eq!(
            next().unwrap(),
            FactAnswer::Tags(vec![(7, "运维".to_owned()), (9, "财务".to_owned())])
        );
        assert_eq!(
            t.paths(),
            [
                "gettoken",
                "department/simplelist",
                "tag/get",
                "tag/get",
                "user/get",
                "tag/list"
            ]
        );
        assert!(t.sent.borrow()[2].url.ends_with("&tagid=7"));
    }

    /// Calls in flight together are retried with a fresh token, only those
    /// WeCom refused the token for, and answered in the order asked.
    #[test]
    fn a_batch_retries_only_the_calls_whose_token_was_refused() {
        let a = sample("corp").check().unwrap();
        let kv = MemoryKv::default();
        let tag = |id: u32| {
            format!(
                r#"{{"errcode":0,"errmsg":"ok","tagname":"t{id}","userlist":[],"partylist":[]}}"#
            )
        };
        let t = Scripted::default()
            .json(TOKEN_OK)
            .json(&tag(1))
            .json(r#"{"errcode":42001,"errmsg":"access_token expired"}"#)
            .json(&tag(3))
            .json(r#"{"errcode":0,"errmsg":"ok","access_token":"accesstoken000002","expires_in":7200}"#)
            .json(&tag(2));
        let queries = [1, 2, 3].map(FactQuery::Tag);
        let names: Vec<String> = api(&a, &t, &kv)
            .contact_facts(&queries)
            .into_iter()
            .map(|answer| match answer.unwrap() {
                FactAnswer::Tag(tag) => tag.name.unwrap(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(names, ["t1", "t2", "t3"]);
        assert_eq!(
            t.paths(),
            [
                "gettoken", "tag/get", "tag/get", "tag/get", "gettoken", "tag/get"
            ]
        );
        assert!(t.sent.borrow()[5].url.contains("accesstoken000002"));
        assert!(t.sent.borrow()[5].url.ends_with("&tagid=2"));
    }

    #[test]
    fn the_token_is_fetched_once_and_cached() {
        let a = sample("corp").check().unwrap();
        let kv = MemoryKv::default();
        let t = Scripted::default()
            .json(TOKEN_OK)
            .json(r#"{"errcode":0,"errmsg":"ok","userid":"zhangsan"}"#)
            .json(r#"{"errcode":0,"errmsg":"ok","userid":"lisi","user_ticket":"T"}"#);
        assert_eq!(api(&a, &t, &kv).user_info("C1").unwrap().userid, "zhangsan");
        let second = api(&a, &t, &kv).user_info("C2").unwrap();
        assert_eq!(second.user_ticket.as_deref(), Some("T"));
        assert_eq!(
            t.paths(),
            ["gettoken", "auth/getuserinfo", "auth/getuserinfo"]
        );
        let sent = t.sent.borrow();
        assert_eq!(
            sent[0].url,
            "https://qyapi.weixin.qq.com/cgi-bin/gettoken?corpid=ww0123456789abcdef&corpsecret=app-secret-DO-NOT-LEAK-0123456789"
        );
        assert!(
            sent[1]
                .url
                .ends_with("access_token=accesstoken000001&code=C1")
        );
    }

    #[test]
    fn a_token_near_expiry_is_refreshed() {
        let a = sample("corp").check().unwrap();
        let kv = MemoryKv::default();
        let t = Scripted::default()
            .json(TOKEN_OK)
            .json(r#"{"errcode":0,"userid":"a"}"#)
            .json(TOKEN_OK)
            .json(r#"{"errcode":0,"userid":"b"}"#);
        api(&a, &t, &kv).user_info("C").unwrap();
        let later = WecomApi {
            now: NOW + 7200 - TOKEN_REFRESH_MARGIN,
            ..api(&a, &t, &kv)
        };
        later.user_info("C").unwrap();
        assert_eq!(
            t.paths(),
            [
                "gettoken",
                "auth/getuserinfo",
                "gettoken",
                "auth/getuserinfo"
            ]
        );
    }

    #[test]
    fn an_invalid_token_is_dropped_refetched_and_the_call_retried_once() {
        for code in errcode::TOKEN_INVALID {
            let a = sample("corp").check().unwrap();
            let kv = MemoryKv::default();
            let refused = format!(r#"{{"errcode":{code},"errmsg":"access_token bad"}}"#);
            let t = Scripted::default()
                .json(TOKEN_OK)
                .json(&refused)
                .json(r#"{"errcode":0,"errmsg":"ok","access_token":"fresh","expires_in":7200}"#)
                .json(r#"{"errcode":0,"name":"张三","department":[1]}"#);
            let profile = api(&a, &t, &kv).user("zhangsan").unwrap();
            assert_eq!(profile.name.as_deref(), Some("张三"));
            assert_eq!(t.paths(), ["gettoken", "user/get", "gettoken", "user/get"]);
            assert!(t.sent.borrow()[3].url.contains("access_token=fresh&"));
            // A second refusal is not retried again.
            let t2 = Scripted::default()
                .json(&refused)
                .json(TOKEN_OK)
                .json(&refused);
            let e = api(&a, &t2, &kv).user("zhangsan").unwrap_err();
            assert!(matches!(e, AuthError::Wecom(WecomError { errcode: c, .. }) if c == code));
            assert_eq!(t2.paths().len(), 3);
        }
    }

    #[test]
    fn every_spelling_of_userid_and_openid_parses_in_any_combination() {
        let a = sample("corp").check().unwrap();
        for (answer, expected) in [
            (r#""userid":"ZhangWu","UserId":"ZhangWu""#, Ok("ZhangWu")),
            (r#""UserId":"ZhangWu","userid":"ZhangWu""#, Ok("ZhangWu")),
            (r#""userid":"","UserId":"ZhangWu""#, Ok("ZhangWu")),
            (r#""UserId":"ZhangWu","DeviceId":"d""#, Ok("ZhangWu")),
            (r#""OpenId":"oA","openid":"oA""#, Err(AuthError::NotAMember)),
            (
                r#""OpenId":"oA","DeviceId":"d""#,
                Err(AuthError::NotAMember),
            ),
            (
                r#""openid":"","external_userid":"wmA""#,
                Err(AuthError::NotAMember),
            ),
        ] {
            let kv = MemoryKv::default();
            let t = Scripted::default()
                .json(TOKEN_OK)
                .json(&format!(r#"{{"errcode":0,"errmsg":"ok",{answer}}}"#));
            let got = api(&a, &t, &kv).user_info("C");
            assert_eq!(
                got.as_ref()
                    .map(|i| i.userid.as_str())
                    .map_err(Clone::clone),
                expected,
                "{answer}"
            );
        }
    }

    #[test]
    fn legacy_spelling_non_members_and_ticket_details_parse() {
        let a = sample("corp").check().unwrap();
        let kv = MemoryKv::default();
        let t = Scripted::default()
            .json(TOKEN_OK)
            .json(r#"{"errcode":0,"errmsg":"ok","UserId":"zhangsan","DeviceId":"d","user_ticket":"T","expires_in":1800}"#)
            .json(r#"{"errcode":0,"errmsg":"ok","openid":"oAAA","external_userid":"wmAAA"}"#)
            .json(r#"{"errcode":0,"errmsg":"ok","userid":"lisi","gender":"1","avatar":"http://a/0","mobile":"13800000000","email":"a@b.c","biz_mail":"z@corp.wecom.work","address":"x"}"#)
            .json(r#"{"errcode":0,"gender":2}"#);
        let w = api(&a, &t, &kv);
        let legacy = w.user_info("C").unwrap();
        assert_eq!(
            (legacy.userid.as_str(), legacy.user_ticket.as_deref()),
            ("zhangsan", Some("T"))
        );
        assert_eq!(w.user_info("C").unwrap_err(), AuthError::NotAMember);
        let detail = w.user_detail("T").unwrap();
        assert_eq!(detail.mobile.as_deref(), Some("13800000000"));
        assert_eq!(detail.biz_mail.as_deref(), Some("z@corp.wecom.work"));
        assert_eq!(detail.gender, Some(Gender("1".into())));
        assert_eq!(w.user_detail("T").unwrap().gender, Some(Gender("2".into())));
        let sent = t.sent.borrow();
        assert!(sent[3].post);
        assert_eq!(
            sent[3].body.as_deref(),
            Some(&br#"{"user_ticket":"T"}"#[..])
        );
    }

    #[test]
    fn transport_failures_statuses_and_garbage_are_unavailable_and_leak_nothing() {
        let a = sample("corp").check().unwrap();
        for answer in [
            Err("connection reset while sending app-secret-DO-NOT-LEAK-0123456789".to_owned()),
            Ok(HttpResponse {
                status: 503,
                body: vec![],
                date: None,
                timeouts_refused: false,
            }),
            Ok(HttpResponse {
                status: 200,
                body: b"{\"errcode\":0,\"access_tok".to_vec(),
                date: None,
                timeouts_refused: false,
            }),
            Ok(HttpResponse {
                status: 200,
                body: b"<html>".to_vec(),
                date: None,
                timeouts_refused: false,
            }),
            Ok(HttpResponse {
                status: 200,
                body: br#"{"errcode":0}"#.to_vec(),
                date: None,
                timeouts_refused: false,
            }),
        ] {
            let kv = MemoryKv::default();
            let t = Scripted::default().answer(answer);
            let e = api(&a, &t, &kv).user_info("C").unwrap_err();
            assert!(matches!(e, AuthError::WecomUnavailable(_)), "{e:?}");
            assert!(!format!("{e} {e:?}").contains("DO-NOT-LEAK"), "{e}");
        }
    }

    #[test]
    fn wecom_errors_keep_errcode_and_errmsg_without_secrets() {
        let a = sample("corp").check().unwrap();
        let kv = MemoryKv::default();
        let t = Scripted::default().json(
            r#"{"errcode":40001,"errmsg":"invalid credential app-secret-DO-NOT-LEAK-0123456789, hint: [1686402237354962763423746]"}"#,
        );
        let AuthError::Wecom(e) = api(&a, &t, &kv).user_info("C").unwrap_err() else {
            panic!()
        };
        assert_eq!((e.errcode, e.api), (40001, "gettoken"));
        assert!(e.errmsg.starts_with("invalid credential [redacted]"));
    }
}

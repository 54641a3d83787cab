//! The server API (`https://qyapi.weixin.qq.com/cgi-bin/...`): every answer is
//! a JSON body (HTTP 200), built here with WeCom's field order.

use std::net::IpAddr;

use serde_json::{Value, json};

use super::endpoint::Endpoint;
use super::model::{Agent, Corp, Member};
use super::state::{State, Subject, TICKET_LIFETIME};
use super::urls::Query;

/// One API call as the server received it.
pub(crate) struct ApiCall<'a> {
    pub(crate) endpoint: Endpoint,
    pub(crate) is_post: bool,
    pub(crate) query: &'a Query,
    pub(crate) body: &'a [u8],
    pub(crate) peer: IpAddr,
}

/// WeCom's `errmsg` (before the tail) for the codes the simulator gives.
pub(crate) fn errmsg(errcode: i64) -> &'static str {
    match errcode {
        0 => "ok",
        -1 => "system busy",
        40001 => "invalid credential",
        40013 => "invalid corpid",
        40014 => "invalid access_token",
        40029 => "invalid code",
        40035 => "invalid parameter",
        40056 => "invalid agentid",
        40058 => "invalid parameter",
        40068 => "invalid tagid",
        41001 => "access_token missing",
        41002 => "corpid missing",
        41004 => "corpsecret missing",
        41008 => "missing code",
        41009 => "missing userid",
        42001 => "access_token expired",
        43002 => "require POST method",
        45009 => "api freq out of limit",
        47001 => "data format error",
        50001 => "redirect_uri unauthorized",
        60003 => "department not found",
        60011 => "no privilege to access/modify contact/party/agent",
        60020 => "not allow to access from your ip",
        60111 => "userid not found",
        301002 => "not allow to operate another agent",
        84014 => "user_ticket expired",
        84015 => "invalid user_ticket",
        84025 => "state not acceptable",
        _ => "unknown error",
    }
}

/// A JSON object with its keys in the given order (serde_json's map would sort them).
pub(crate) fn object(fields: &[(&str, Value)]) -> String {
    let mut out = String::from("{");
    for (i, (key, value)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&Value::from(*key).to_string());
        out.push(':');
        out.push_str(&value.to_string());
    }
    out.push('}');
    out
}

/// The body of a failed call. `errmsg` carries WeCom's tail (hint, caller IP,
/// link) except where the vectors show WeCom leaves it off: 45009, and the
/// error bodies of `user/get`, which also carry empty arrays.
pub(crate) fn error_body(
    state: &mut State,
    endpoint: Endpoint,
    errcode: i64,
    peer: IpAddr,
) -> String {
    let bare = endpoint == Endpoint::UserGet || errcode == 45009;
    let message = if bare {
        errmsg(errcode).to_owned()
    } else {
        let hint = format!("{}_161_{}", state.unix_now(), state.random_hex(32));
        format!(
            "{}, hint: [{hint}], from ip: {peer}, more info at https://open.work.weixin.qq.com/devtool/query?e={errcode}",
            errmsg(errcode)
        )
    };
    let mut fields = vec![("errcode", json!(errcode)), ("errmsg", json!(message))];
    if endpoint == Endpoint::UserGet {
        for key in ["department", "order", "is_leader_in_dept", "direct_leader"] {
            fields.push((key, json!([])));
        }
    }
    object(&fields)
}

/// Answers one API call, updating the state (tokens issued, codes consumed).
pub(crate) fn answer(state: &mut State, call: &ApiCall<'_>) -> String {
    let result = match call.endpoint {
        Endpoint::GetToken => get_token(state, call),
        Endpoint::GetUserInfo => get_user_info(state, call, false),
        Endpoint::LegacyGetUserInfo => get_user_info(state, call, true),
        Endpoint::GetUserDetail => get_user_detail(state, call),
        Endpoint::UserGet => user_get(state, call),
        Endpoint::AgentGet => agent_get(state, call),
        Endpoint::DepartmentSimpleList => department_simplelist(state, call),
        Endpoint::TagGet => tag_get(state, call),
        Endpoint::TagList => tag_list(state, call),
        Endpoint::UserListId => user_list_id(state, call),
        Endpoint::OAuthPage | Endpoint::WebLoginPage | Endpoint::LoginPanelScript => Err(40035),
    };
    result.unwrap_or_else(|errcode| error_body(state, call.endpoint, errcode, call.peer))
}

type Answer = Result<String, i64>;

/// A success body: `errcode` 0, `errmsg` "ok", then `fields`.
fn ok(fields: Vec<(&'static str, Value)>) -> String {
    let mut all = vec![("errcode", json!(0)), ("errmsg", json!("ok"))];
    all.extend(fields);
    object(&all)
}

fn ip_allowed(agent: &Agent, peer: IpAddr) -> bool {
    agent
        .trusted_ips
        .as_ref()
        .is_none_or(|ips| ips.contains(&peer))
}

fn nonempty<'a>(query: &'a Query, key: &str) -> Option<&'a str> {
    query.get(key).filter(|v| !v.is_empty())
}

fn get_token(state: &mut State, call: &ApiCall<'_>) -> Answer {
    let corp_id = nonempty(call.query, "corpid").ok_or(41002)?;
    let corp = state.model.corp(corp_id).ok_or(40013)?;
    let secret = nonempty(call.query, "corpsecret").ok_or(41004)?;
    let agent = corp
        .agents
        .iter()
        .find(|a| a.secret == secret)
        .ok_or(40001)?;
    if !ip_allowed(agent, call.peer) {
        return Err(60020);
    }
    let (corp_id, agent_id) = (corp.corp_id.clone(), agent.agent_id);
    let (token, ttl) = state.token_for(&corp_id, agent_id);
    Ok(ok(vec![
        ("access_token", json!(token)),
        ("expires_in", json!(ttl.as_secs())),
    ]))
}

/// The app behind the call's `access_token`: 41001 missing, 40014 unknown or
/// invalidated, 42001 expired, 60020 from an untrusted IP.
fn authorize<'s>(state: &'s State, call: &ApiCall<'_>) -> Result<(&'s Corp, &'s Agent), i64> {
    let token = nonempty(call.query, "access_token").ok_or(41001)?;
    let record = state.tokens.get(token).ok_or(40014)?;
    if record.expires_at <= state.now() {
        return Err(42001);
    }
    let corp = state.model.corp(&record.corp_id).ok_or(40014)?;
    let agent = corp.agent(record.agent_id).ok_or(40014)?;
    if !ip_allowed(agent, call.peer) {
        return Err(60020);
    }
    Ok((corp, agent))
}

fn get_user_info(state: &mut State, call: &ApiCall<'_>, legacy: bool) -> Answer {
    let (corp, agent) = authorize(state, call)?;
    let (corp_id, agent_id) = (corp.corp_id.clone(), agent.agent_id);
    let trusted = agent.trusted_domain.to_ascii_lowercase();
    let code = nonempty(call.query, "code").ok_or(41008)?;
    let now = state.now();
    let record = state.codes.get(code).ok_or(40029)?;
    if record.expires_at <= now {
        state.codes.remove(code);
        return Err(40029);
    }
    if record.corp_id != corp_id {
        return Err(40029);
    }
    if record.redirect_authority != trusted {
        // Not consumed: WeCom refuses to look at it for this app.
        return Err(50001);
    }
    let record = state.codes.remove(code).ok_or(40029)?;
    let fields = match record.subject {
        Subject::Member(userid) => {
            let ticket = record
                .ticket_eligible
                .then(|| state.issue_ticket(&corp_id, agent_id, &userid));
            let mut fields = if legacy {
                vec![("UserId", json!(userid)), ("DeviceId", json!(""))]
            } else {
                vec![("userid", json!(userid))]
            };
            if let Some(ticket) = ticket {
                fields.push(("user_ticket", json!(ticket)));
                if legacy {
                    fields.push(("expires_in", json!(TICKET_LIFETIME.as_secs())));
                }
            }
            fields
        }
        Subject::NonMember {
            openid,
            external_userid,
        } => {
            if legacy {
                vec![
                    ("OpenId", json!(openid)),
                    ("DeviceId", json!("")),
                    ("external_userid", json!(external_userid)),
                ]
            } else {
                vec![
                    ("openid", json!(openid)),
                    ("external_userid", json!(external_userid)),
                ]
            }
        }
    };
    Ok(ok(fields))
}

/// `user/list_id` (doc 96067): the members the app may see (its visible
/// range), one entry per member and department, `limit` (1 to 10 000) a
/// page from `cursor` (opaque: here the offset); 43002 unless POST, 47001
/// for a body that is not JSON, 40058 for a limit out of range or a cursor
/// not given out.
fn user_list_id(state: &mut State, call: &ApiCall<'_>) -> Answer {
    if !call.is_post {
        return Err(43002);
    }
    let (corp, _) = authorize(state, call)?;
    let body: Value = serde_json::from_slice(call.body).map_err(|_| 47001)?;
    let limit = body.get("limit").and_then(Value::as_u64).unwrap_or(10_000);
    if !(1..=10_000).contains(&limit) {
        return Err(40058);
    }
    let cursor = body
        .get("cursor")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let start: usize = match cursor {
        "" => 0,
        c => c
            .strip_prefix("cursor-")
            .and_then(|n| n.parse().ok())
            .ok_or(40058)?,
    };
    let entries: Vec<Value> = corp
        .members
        .iter()
        .filter(|m| m.visible)
        .flat_map(|m| {
            let departments = if m.department.is_empty() {
                vec![1]
            } else {
                m.department.clone()
            };
            departments
                .into_iter()
                .map(|d| json!({ "userid": m.userid, "department": d }))
        })
        .collect();
    let end = (start + limit as usize).min(entries.len());
    let page = entries.get(start..end).unwrap_or_default().to_vec();
    let next = if end < entries.len() {
        format!("cursor-{end}")
    } else {
        String::new()
    };
    Ok(ok(vec![
        ("next_cursor", json!(next)),
        ("dept_user", json!(page)),
    ]))
}

fn get_user_detail(state: &mut State, call: &ApiCall<'_>) -> Answer {
    if !call.is_post {
        return Err(43002);
    }
    let (corp, agent) = authorize(state, call)?;
    let body: Value = serde_json::from_slice(call.body).map_err(|_| 47001)?;
    let ticket = body
        .get("user_ticket")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or(84015)?;
    let record = state.tickets.get(ticket).ok_or(84015)?;
    if record.corp_id != corp.corp_id || record.agent_id != agent.agent_id {
        return Err(84015);
    }
    if record.expires_at <= state.now() {
        return Err(84014);
    }
    let member = corp.member(&record.userid).ok_or(60111)?;
    let mut fields = vec![
        ("userid", json!(member.userid)),
        ("gender", json!(member.gender.as_wecom())),
    ];
    if let Some(avatar) = &member.avatar {
        fields.push(("avatar", json!(avatar)));
    }
    fields.push((
        "qr_code",
        json!(format!(
            "https://open.work.weixin.qq.com/wwopen/userQRCode?vcode=vc{:016x}",
            fnv(&[&corp.corp_id, &member.userid])
        )),
    ));
    for (key, value) in [
        ("mobile", &member.mobile),
        ("email", &member.email),
        ("biz_mail", &member.biz_mail),
        ("address", &member.address),
    ] {
        if let Some(value) = value {
            fields.push((key, json!(value)));
        }
    }
    Ok(ok(fields))
}

fn user_get(state: &mut State, call: &ApiCall<'_>) -> Answer {
    let (corp, _) = authorize(state, call)?;
    let userid = nonempty(call.query, "userid").ok_or(41009)?;
    let member = corp.member(userid).ok_or(60111)?;
    if !member.visible {
        return Err(60011);
    }
    Ok(ok(user_fields(&corp.corp_id, member)))
}

/// `agent/get` (doc 90227): a self-built app's token reads its own app only
/// (another app of the company: 301002; no such app: 40056).
fn agent_get(state: &mut State, call: &ApiCall<'_>) -> Answer {
    let (corp, agent) = authorize(state, call)?;
    let asked: u32 = nonempty(call.query, "agentid")
        .and_then(|id| id.parse().ok())
        .ok_or(40056)?;
    if asked != agent.agent_id {
        return Err(if corp.agent(asked).is_some() {
            301002
        } else {
            40056
        });
    }
    let users: Vec<Value> = corp
        .members
        .iter()
        .filter(|m| m.visible)
        .map(|m| json!({ "userid": m.userid }))
        .collect();
    Ok(ok(vec![
        ("agentid", json!(agent.agent_id)),
        ("name", json!(agent.name)),
        (
            "square_logo_url",
            json!("https://p.qlogo.cn/bizmail/simulated/0"),
        ),
        ("description", json!("")),
        ("allow_userinfos", json!({ "user": users })),
        (
            "allow_partys",
            json!({ "partyid": agent.contact_range.clone().unwrap_or_else(|| vec![1]) }),
        ),
        ("allow_tags", json!({ "tagid": [] })),
        ("close", json!(0)),
        ("redirect_domain", json!(agent.trusted_domain)),
        ("report_location_flag", json!(0)),
        ("isreportenter", json!(0)),
        ("home_url", json!("")),
        ("customized_publish_status", json!(1)),
    ]))
}

/// `department/simplelist` (doc 95350): the subtree of `id` (the whole tree
/// without it), within the app's contact range.
fn department_simplelist(state: &mut State, call: &ApiCall<'_>) -> Answer {
    let (corp, agent) = authorize(state, call)?;
    let in_range = |id: u32| {
        agent
            .contact_range
            .as_ref()
            .is_none_or(|range| corp.in_range(id, range))
    };
    let root = match nonempty(call.query, "id") {
        Some(id) => id.parse::<u32>().map_err(|_| 60003)?,
        None => 1,
    };
    if !corp.departments.iter().any(|d| d.id == root) {
        return Err(60003);
    }
    let listed: Vec<Value> = match (&agent.contact_range, nonempty(call.query, "id")) {
        // No id and a range: the subtrees of the range.
        (Some(range), None) => range
            .iter()
            .flat_map(|r| corp.subtree(*r))
            .map(|d| json!({ "id": d.id, "parentid": d.parentid, "order": d.order }))
            .collect(),
        _ => {
            if !in_range(root) {
                return Err(60011);
            }
            corp.subtree(root)
                .into_iter()
                .map(|d| json!({ "id": d.id, "parentid": d.parentid, "order": d.order }))
                .collect()
        }
    };
    Ok(ok(vec![("department_id", json!(listed))]))
}

/// `tag/get` (doc 90213): the tag's members and departments, those inside
/// the app's contact range only.
fn tag_get(state: &mut State, call: &ApiCall<'_>) -> Answer {
    let (corp, agent) = authorize(state, call)?;
    let tagid: u32 = nonempty(call.query, "tagid")
        .and_then(|id| id.parse().ok())
        .ok_or(40068)?;
    let tag = corp.tags.iter().find(|t| t.tagid == tagid).ok_or(40068)?;
    let visible_dept = |id: u32| {
        agent
            .contact_range
            .as_ref()
            .is_none_or(|range| corp.in_range(id, range))
    };
    let users: Vec<Value> = tag
        .userlist
        .iter()
        .filter_map(|userid| corp.member(userid))
        .filter(|m| m.department.iter().any(|d| visible_dept(*d)))
        .map(|m| json!({ "userid": m.userid, "name": m.name }))
        .collect();
    let parties: Vec<u32> = tag
        .partylist
        .iter()
        .copied()
        .filter(|d| visible_dept(*d))
        .collect();
    Ok(ok(vec![
        ("tagname", json!(tag.tagname)),
        ("userlist", json!(users)),
        ("partylist", json!(parties)),
    ]))
}

/// `tag/list` (doc 90216): every tag of the company, for a self-built app
/// (a third-party app would see only its own).
fn tag_list(state: &mut State, call: &ApiCall<'_>) -> Answer {
    let (corp, _) = authorize(state, call)?;
    let tags: Vec<Value> = corp
        .tags
        .iter()
        .map(|t| json!({ "tagid": t.tagid, "tagname": t.tagname }))
        .collect();
    Ok(ok(vec![("taglist", json!(tags))]))
}

/// `user/get` as an app created after 2022-06-20 sees it: no mobile, email,
/// avatar or gender.
fn user_fields(corp_id: &str, member: &Member) -> Vec<(&'static str, Value)> {
    let zeros = vec![0; member.department.len()];
    vec![
        ("userid", json!(member.userid)),
        ("name", json!(member.name)),
        ("department", json!(member.department)),
        ("order", json!(zeros)),
        ("position", json!(member.position)),
        ("is_leader_in_dept", json!(zeros)),
        ("direct_leader", json!(member.direct_leader)),
        ("alias", json!(member.alias)),
        (
            "open_userid",
            json!(format!("wo{:016x}", fnv(&[corp_id, &member.userid]))),
        ),
        (
            "main_department",
            json!(member.department.first().copied().unwrap_or(1)),
        ),
        // 1 active, 2 disabled (doc 90196).
        ("status", json!(if member.disabled { 2 } else { 1 })),
    ]
}

/// FNV-1a over the parts (with separators): stable made-up ids.
fn fnv(parts: &[&str]) -> u64 {
    parts.iter().fold(0xcbf2_9ce4_8422_2325_u64, |hash, part| {
        part.bytes().chain([0]).fold(hash, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Model, SAMPLE_CORP_ID, SAMPLE_SECRET};
    use std::net::Ipv4Addr;

    const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    fn call(state: &mut State, endpoint: Endpoint, query: &str, body: &[u8]) -> Value {
        let query = Query::parse(query);
        let text = answer(
            state,
            &ApiCall {
                endpoint,
                is_post: matches!(endpoint, Endpoint::GetUserDetail | Endpoint::UserListId),
                query: &query,
                body,
                peer: LOCAL,
            },
        );
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn object_keeps_order() {
        assert_eq!(
            object(&[
                ("errcode", json!(0)),
                ("errmsg", json!("ok")),
                ("a", json!([1]))
            ]),
            r#"{"errcode":0,"errmsg":"ok","a":[1]}"#
        );
    }

    #[test]
    fn gettoken_checks_in_wecom_order() {
        let mut state = State::new(Model::sample());
        let errcode = |v: Value| v["errcode"].as_i64();
        assert_eq!(
            errcode(call(&mut state, Endpoint::GetToken, "", b"")),
            Some(41002)
        );
        assert_eq!(
            errcode(call(
                &mut state,
                Endpoint::GetToken,
                "corpid=nope&corpsecret=x",
                b""
            )),
            Some(40013)
        );
        let q = format!("corpid={SAMPLE_CORP_ID}");
        assert_eq!(
            errcode(call(&mut state, Endpoint::GetToken, &q, b"")),
            Some(41004)
        );
        let q = format!("corpid={SAMPLE_CORP_ID}&corpsecret=wrong");
        assert_eq!(
            errcode(call(&mut state, Endpoint::GetToken, &q, b"")),
            Some(40001)
        );
        let q = format!("corpid={SAMPLE_CORP_ID}&corpsecret={SAMPLE_SECRET}");
        let v = call(&mut state, Endpoint::GetToken, &q, b"");
        assert_eq!(errcode(v.clone()), Some(0));
        assert_eq!(v["expires_in"], 7200);
    }

    #[test]
    fn errors_carry_the_tail_except_where_wecom_omits_it() {
        let mut state = State::new(Model::sample());
        let v = call(
            &mut state,
            Endpoint::GetUserInfo,
            "access_token=bogus&code=x",
            b"",
        );
        let message = v["errmsg"].as_str().unwrap_or_default();
        assert!(
            message.starts_with("invalid access_token, hint: ["),
            "{message}"
        );
        assert!(message.ends_with(
            "from ip: 127.0.0.1, more info at https://open.work.weixin.qq.com/devtool/query?e=40014"
        ));
        let v = call(
            &mut state,
            Endpoint::UserGet,
            "access_token=bogus&userid=x",
            b"",
        );
        assert_eq!(v["errmsg"], "invalid access_token");
        assert_eq!(v["department"], json!([]));
        let busy = error_body(&mut state, Endpoint::GetToken, 45009, LOCAL);
        assert_eq!(
            busy,
            r#"{"errcode":45009,"errmsg":"api freq out of limit"}"#
        );
    }

    #[test]
    fn getuserdetail_wants_post_and_a_json_body() {
        let mut state = State::new(Model::sample());
        let (token, _) = state.token_for(SAMPLE_CORP_ID, 1_000_002);
        let q = format!("access_token={token}");
        assert_eq!(
            call(&mut state, Endpoint::GetUserDetail, &q, b"{")["errcode"],
            47001
        );
        assert_eq!(
            call(&mut state, Endpoint::GetUserDetail, &q, b"{}")["errcode"],
            84015
        );
        let query = Query::parse(&q);
        let text = answer(
            &mut state,
            &ApiCall {
                endpoint: Endpoint::GetUserDetail,
                is_post: false,
                query: &query,
                body: b"",
                peer: LOCAL,
            },
        );
        assert!(text.starts_with(r#"{"errcode":43002,"#), "{text}");
    }
}

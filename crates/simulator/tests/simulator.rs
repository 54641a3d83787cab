//! The WeCom simulator over real HTTP on loopback: API paths, shapes (against
//! the recorded vectors in `testdata/wecom/vectors`), error codes, codes and
//! tickets, the clock, every fault switch, counters and the login pages.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpStream;

use wecom_simulator::{
    CallbackParams, Corp, ERRCODE_HEADER, Endpoint, Fault, FaultScope, Model, SAMPLE_AGENT_ID,
    SAMPLE_CORP_ID, SAMPLE_SECRET, Simulator, SimulatorHandle, callback_params, percent_encode,
};

const REDIRECT: &str = "https://apps.example.com/auth/wecom/callback";

// ---------- a small HTTP client ----------

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// One request on a fresh connection; an error if the connection fails or closes early.
async fn send(addr: SocketAddr, method: Method, target: &str, body: &str) -> anyhow::Result<Reply> {
    let stream = TcpStream::connect(addr).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let request = Request::builder()
        .method(method)
        .uri(target)
        .header("host", "qyapi.weixin.qq.com")
        .body(Full::new(Bytes::from(body.to_owned())))?;
    let response = sender.send_request(request).await?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok(Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    })
}

async fn get(sim: &SimulatorHandle, target: &str) -> Reply {
    send(sim.addr(), Method::GET, target, "")
        .await
        .unwrap_or_else(|e| panic!("GET {target}: {e}"))
}

async fn get_json(sim: &SimulatorHandle, target: &str) -> Value {
    let reply = get(sim, target).await;
    assert_eq!(reply.status, StatusCode::OK, "{target}");
    assert_eq!(
        reply.header("content-type"),
        Some("application/json; charset=UTF-8")
    );
    reply.json()
}

async fn post_json(sim: &SimulatorHandle, target: &str, body: &str) -> Value {
    let reply = send(sim.addr(), Method::POST, target, body)
        .await
        .unwrap_or_else(|e| panic!("POST {target}: {e}"));
    assert_eq!(reply.status, StatusCode::OK);
    reply.json()
}

// ---------- vectors and shapes ----------

fn vector(name: &str) -> Value {
    let path = format!(
        "{}/../../testdata/wecom/vectors/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn keys(value: &Value) -> BTreeSet<String> {
    value
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

/// Same keys as the vector, and the same errcode.
fn assert_shape(actual: &Value, vector_name: &str) {
    let expected = vector(vector_name);
    assert_eq!(keys(actual), keys(&expected), "{vector_name}: {actual}");
    assert_eq!(
        actual["errcode"], expected["errcode"],
        "{vector_name}: {actual}"
    );
}

fn errcode(value: &Value) -> i64 {
    value["errcode"]
        .as_i64()
        .unwrap_or_else(|| panic!("no errcode: {value}"))
}

/// `errmsg` carries WeCom's tail for this errcode.
fn assert_tail(value: &Value) {
    let message = value["errmsg"].as_str().unwrap_or_default();
    let code = errcode(value);
    assert!(message.contains(", hint: ["), "{message}");
    assert!(
        message.ends_with(&format!(
            "], from ip: 127.0.0.1, more info at https://open.work.weixin.qq.com/devtool/query?e={code}"
        )),
        "{message}"
    );
}

// ---------- flows ----------

async fn sample() -> SimulatorHandle {
    Simulator::start(Model::sample())
        .await
        .expect("the simulator starts")
}

async fn token(sim: &SimulatorHandle) -> String {
    let v = get_json(
        sim,
        &format!("/cgi-bin/gettoken?corpid={SAMPLE_CORP_ID}&corpsecret={SAMPLE_SECRET}"),
    )
    .await;
    assert_eq!(errcode(&v), 0, "{v}");
    v["access_token"].as_str().expect("a token").to_owned()
}

fn in_client(sim: &SimulatorHandle, scope: &str) -> String {
    sim.oauth_url(
        SAMPLE_CORP_ID,
        Some(SAMPLE_AGENT_ID),
        scope,
        REDIRECT,
        "st4te",
    )
}

fn web(sim: &SimulatorHandle) -> String {
    sim.web_login_url(SAMPLE_CORP_ID, SAMPLE_AGENT_ID, REDIRECT, "st4te")
}

async fn code(sim: &SimulatorHandle, url: &str, who: &str) -> String {
    let location = sim.login(url, who).await.expect("the login redirects");
    callback_params(&location).expect("code and state").code
}

async fn user_info(sim: &SimulatorHandle, token: &str, code: &str) -> Value {
    get_json(
        sim,
        &format!("/cgi-bin/auth/getuserinfo?access_token={token}&code={code}"),
    )
    .await
}

async fn user_detail(sim: &SimulatorHandle, token: &str, ticket: &str) -> Value {
    post_json(
        sim,
        &format!("/cgi-bin/auth/getuserdetail?access_token={token}"),
        &json!({ "user_ticket": ticket }).to_string(),
    )
    .await
}

async fn user_get(sim: &SimulatorHandle, token: &str, userid: &str) -> Value {
    get_json(
        sim,
        &format!("/cgi-bin/user/get?access_token={token}&userid={userid}"),
    )
    .await
}

// ---------- gettoken and tokens ----------

#[tokio::test]
async fn gettoken_answers_like_wecom() {
    let sim = sample().await;
    let ok = get_json(
        &sim,
        &format!("/cgi-bin/gettoken?corpid={SAMPLE_CORP_ID}&corpsecret={SAMPLE_SECRET}"),
    )
    .await;
    assert_shape(&ok, "gettoken.ok");
    assert_eq!(ok["errmsg"], "ok");
    assert_eq!(ok["expires_in"], 7200);
    let first = ok["access_token"].as_str().unwrap_or_default();
    assert!(first.len() >= 32 && first.len() <= 512, "{first}");
    assert_eq!(
        token(&sim).await,
        first,
        "the same token within its lifetime"
    );

    let bad_corp = get_json(&sim, "/cgi-bin/gettoken?corpid=wwnope&corpsecret=x").await;
    assert_shape(&bad_corp, "gettoken.bad-corpid");
    assert_tail(&bad_corp);
    let bad_secret = get_json(
        &sim,
        &format!("/cgi-bin/gettoken?corpid={SAMPLE_CORP_ID}&corpsecret=wrong"),
    )
    .await;
    assert_shape(&bad_secret, "gettoken.bad-secret");
    assert_tail(&bad_secret);
    let missing = get_json(&sim, "/cgi-bin/gettoken").await;
    assert_eq!(errcode(&missing), 41002);
}

#[tokio::test]
async fn trusted_ips_give_60020() {
    let sim = sample().await;
    sim.update_model(|m| {
        m.corps[0].agents[0].trusted_ips = Some(vec![IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3))]);
    });
    let refused = get_json(
        &sim,
        &format!("/cgi-bin/gettoken?corpid={SAMPLE_CORP_ID}&corpsecret={SAMPLE_SECRET}"),
    )
    .await;
    assert_shape(&refused, "gettoken.untrusted-ip");
    assert_tail(&refused);
    sim.update_model(|m| {
        m.corps[0].agents[0].trusted_ips = Some(vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]);
    });
    let t = token(&sim).await;
    sim.update_model(|m| m.corps[0].agents[0].trusted_ips = Some(vec![]));
    assert_eq!(errcode(&user_get(&sim, &t, "zhangsan").await), 60020);
}

#[tokio::test]
async fn missing_unknown_expired_and_invalidated_tokens() {
    let sim = sample().await;
    let missing = get_json(&sim, "/cgi-bin/auth/getuserinfo?code=x").await;
    assert_eq!(errcode(&missing), 41001);
    assert_tail(&missing);
    let unknown = user_get(&sim, "bogus", "zhangsan").await;
    assert_eq!(
        unknown,
        vector("user-get.invalid-token"),
        "exactly the vector"
    );

    let t = token(&sim).await;
    sim.advance(Duration::from_secs(7190));
    assert_eq!(errcode(&user_get(&sim, &t, "zhangsan").await), 0);
    let again = get_json(
        &sim,
        &format!("/cgi-bin/gettoken?corpid={SAMPLE_CORP_ID}&corpsecret={SAMPLE_SECRET}"),
    )
    .await;
    assert_eq!(again["access_token"], t.as_str());
    let left = again["expires_in"].as_u64().unwrap_or(0);
    assert!((9..=10).contains(&left), "remaining lifetime, got {left}");
    sim.advance(Duration::from_secs(11));
    let expired = get_json(
        &sim,
        &format!("/cgi-bin/auth/getuserinfo?access_token={t}&code=x"),
    )
    .await;
    assert_shape(&expired, "token-expired");
    assert_tail(&expired);
    assert_eq!(errcode(&user_get(&sim, &t, "zhangsan").await), 42001);
    let fresh = token(&sim).await;
    assert_ne!(fresh, t);
    assert_eq!(errcode(&user_get(&sim, &t, "zhangsan").await), 42001);

    sim.invalidate_tokens();
    assert_eq!(errcode(&user_get(&sim, &fresh, "zhangsan").await), 40014);
    let newer = token(&sim).await;
    assert_ne!(newer, fresh);
    assert_eq!(errcode(&user_get(&sim, &newer, "zhangsan").await), 0);
}

// ---------- logins, codes and tickets ----------

#[tokio::test]
async fn in_client_privateinfo_login_of_a_consenting_member() {
    let sim = sample().await;
    let t = token(&sim).await;
    let c = code(&sim, &in_client(&sim, "snsapi_privateinfo"), "zhangsan").await;
    let info = user_info(&sim, &t, &c).await;
    assert_shape(&info, "getuserinfo.member-privateinfo");
    assert_eq!(info["userid"], "zhangsan");
    let ticket = info["user_ticket"].as_str().expect("a ticket");
    assert!(!ticket.is_empty() && ticket.len() <= 512);

    let detail = user_detail(&sim, &t, ticket).await;
    assert_shape(&detail, "getuserdetail.ok");
    assert_eq!(detail["userid"], "zhangsan");
    assert_eq!(detail["mobile"], "13800000000");
    assert_eq!(detail["gender"], "1", "a string");
    assert_eq!(detail["biz_mail"], "zhangsan@example.wecom.work");
    assert!(detail.get("name").is_none());
    assert_eq!(
        user_detail(&sim, &t, ticket).await,
        detail,
        "a ticket is good for more than one call"
    );

    let user = user_get(&sim, &t, "zhangsan").await;
    assert_shape(&user, "user-get.post-2022-app");
    assert_eq!(user["name"], "张三");
    assert_eq!(user["department"], json!([1, 2]));
    for absent in ["mobile", "email", "avatar", "gender", "biz_mail"] {
        assert!(user.get(absent).is_none(), "{absent} in {user}");
    }
}

#[tokio::test]
async fn tickets_only_for_in_client_privateinfo_visible_consenting_members() {
    let sim = sample().await;
    let t = token(&sim).await;
    let no_ticket = [
        (in_client(&sim, "snsapi_base"), "zhangsan"),
        (web(&sim), "zhangsan"),
        (in_client(&sim, "snsapi_privateinfo"), "wangwu"),
        (in_client(&sim, "snsapi_privateinfo"), "zhaoliu"),
        (
            // No agentid: WeCom silently downgrades to snsapi_base.
            sim.oauth_url(SAMPLE_CORP_ID, None, "snsapi_privateinfo", REDIRECT, "s"),
            "zhangsan",
        ),
    ];
    for (url, who) in no_ticket {
        let c = code(&sim, &url, who).await;
        let info = user_info(&sim, &t, &c).await;
        assert_shape(&info, "getuserinfo.member-qr");
        assert_eq!(info["userid"], who, "{url}");
    }
    let c = code(&sim, &in_client(&sim, "snsapi_privateinfo"), "lisi").await;
    assert!(user_info(&sim, &t, &c).await["user_ticket"].is_string());
}

#[tokio::test]
async fn members_outside_the_visible_range_and_unknown_userids() {
    let sim = sample().await;
    let t = token(&sim).await;
    let c = code(&sim, &web(&sim), "zhaoliu").await;
    assert_eq!(user_info(&sim, &t, &c).await["userid"], "zhaoliu");
    let hidden = user_get(&sim, &t, "zhaoliu").await;
    assert_eq!(errcode(&hidden), 60011);
    assert_eq!(keys(&hidden), keys(&vector("user-get.invalid-token")));
    assert_eq!(errcode(&user_get(&sim, &t, "nobody").await), 60111);
    assert_eq!(
        errcode(&get_json(&sim, &format!("/cgi-bin/user/get?access_token={t}")).await),
        41009
    );
}

#[tokio::test]
async fn non_members_get_openid_and_external_userid() {
    let sim = sample().await;
    let t = token(&sim).await;
    for url in [in_client(&sim, "snsapi_privateinfo"), web(&sim)] {
        let c = code(&sim, &url, "outsider").await;
        let info = user_info(&sim, &t, &c).await;
        assert_shape(&info, "getuserinfo.non-member");
        assert_eq!(info["openid"], "oOutsider00000000000000000001");
        assert!(info.get("userid").is_none());
    }
}

#[tokio::test]
async fn legacy_getuserinfo_is_capitalised() {
    let sim = sample().await;
    let t = token(&sim).await;
    let legacy = |code: String| format!("/cgi-bin/user/getuserinfo?access_token={t}&code={code}");
    let c = code(&sim, &in_client(&sim, "snsapi_privateinfo"), "zhangsan").await;
    let member = get_json(&sim, &legacy(c)).await;
    assert_eq!(
        keys(&member),
        [
            "errcode",
            "errmsg",
            "UserId",
            "DeviceId",
            "user_ticket",
            "expires_in"
        ]
        .map(String::from)
        .into()
    );
    assert_eq!(member["UserId"], "zhangsan");
    assert_eq!(member["expires_in"], 1800);
    let ticket = member["user_ticket"].as_str().unwrap_or_default();
    assert_eq!(errcode(&user_detail(&sim, &t, ticket).await), 0);

    let c = code(&sim, &web(&sim), "lisi").await;
    let qr = get_json(&sim, &legacy(c)).await;
    assert_eq!(
        keys(&qr),
        ["errcode", "errmsg", "UserId", "DeviceId"]
            .map(String::from)
            .into()
    );
    let c = code(&sim, &web(&sim), "outsider").await;
    let outsider = get_json(&sim, &legacy(c)).await;
    assert_eq!(outsider["OpenId"], "oOutsider00000000000000000001");
    assert!(outsider.get("UserId").is_none() && outsider.get("userid").is_none());
}

#[tokio::test]
async fn codes_are_single_use_and_expire_after_five_minutes() {
    let sim = sample().await;
    let t = token(&sim).await;
    let c = code(&sim, &web(&sim), "zhangsan").await;
    assert_eq!(errcode(&user_info(&sim, &t, &c).await), 0);
    let reused = user_info(&sim, &t, &c).await;
    assert_shape(&reused, "getuserinfo.invalid-code");
    assert_tail(&reused);

    let early = code(&sim, &web(&sim), "zhangsan").await;
    let late = code(&sim, &web(&sim), "zhangsan").await;
    sim.advance(Duration::from_secs(295));
    assert_eq!(errcode(&user_info(&sim, &t, &early).await), 0);
    sim.advance(Duration::from_secs(6));
    assert_eq!(errcode(&user_info(&sim, &t, &late).await), 40029);

    assert_eq!(errcode(&user_info(&sim, &t, "never-issued").await), 40029);
    let missing = get_json(&sim, &format!("/cgi-bin/auth/getuserinfo?access_token={t}")).await;
    assert_eq!(errcode(&missing), 41008);
}

#[tokio::test]
async fn codes_of_another_corp_are_invalid() {
    let mut model = Model::sample();
    let mut other = Corp {
        corp_id: "wwother0000000000".into(),
        name: "Other".into(),
        ..model.corps[0].clone()
    };
    other.agents[0].secret = "other-secret".into();
    model.corps.push(other);
    let sim = Simulator::start(model).await.expect("starts");
    let t = token(&sim).await;
    let url = sim.web_login_url("wwother0000000000", SAMPLE_AGENT_ID, REDIRECT, "s");
    let c = code(&sim, &url, "zhangsan").await;
    assert_eq!(errcode(&user_info(&sim, &t, &c).await), 40029);
}

#[tokio::test]
async fn foreign_redirect_hosts_give_50001() {
    let sim = Simulator::start(Model::sample().with_trusted_domain("127.0.0.1:8080"))
        .await
        .expect("starts");
    let t = token(&sim).await;
    let url = |redirect: &str| sim.web_login_url(SAMPLE_CORP_ID, SAMPLE_AGENT_ID, redirect, "s");
    let other_port = code(&sim, &url("http://127.0.0.1:8081/cb"), "zhangsan").await;
    let refused = user_info(&sim, &t, &other_port).await;
    assert_shape(&refused, "getuserinfo.redirect-untrusted");
    assert_tail(&refused);
    let no_port = code(&sim, &url("http://127.0.0.1/cb"), "zhangsan").await;
    assert_eq!(errcode(&user_info(&sim, &t, &no_port).await), 50001);
    let good = code(
        &sim,
        &url("http://127.0.0.1:8080/auth/wecom/callback"),
        "zhangsan",
    )
    .await;
    assert_eq!(errcode(&user_info(&sim, &t, &good).await), 0);

    // A refused code is not consumed: trusting the domain makes it work.
    sim.update_model(|m| m.corps[0].agents[0].trusted_domain = "127.0.0.1:8081".into());
    assert_eq!(user_info(&sim, &t, &other_port).await["userid"], "zhangsan");
}

#[tokio::test]
async fn tickets_expire_after_1800s_and_bad_ones_are_invalid() {
    let sim = sample().await;
    let t = token(&sim).await;
    let c = code(&sim, &in_client(&sim, "snsapi_privateinfo"), "lisi").await;
    let info = user_info(&sim, &t, &c).await;
    let ticket = info["user_ticket"].as_str().expect("a ticket").to_owned();
    let detail = user_detail(&sim, &t, &ticket).await;
    assert_eq!(detail["gender"], "2");
    assert!(detail.get("biz_mail").is_none(), "lisi has none: {detail}");
    sim.advance(Duration::from_secs(1799));
    assert_eq!(errcode(&user_detail(&sim, &t, &ticket).await), 0);
    sim.advance(Duration::from_secs(2));
    let t = token(&sim).await;
    let expired = user_detail(&sim, &t, &ticket).await;
    assert_eq!(errcode(&expired), 84014);
    assert_tail(&expired);
    assert_eq!(errcode(&user_detail(&sim, &t, "forged").await), 84015);
    let path = format!("/cgi-bin/auth/getuserdetail?access_token={t}");
    assert_eq!(errcode(&post_json(&sim, &path, "{}").await), 84015);
    assert_eq!(errcode(&post_json(&sim, &path, "not json").await), 47001);
    assert_eq!(errcode(&get_json(&sim, &path).await), 43002);
}

// ---------- login pages ----------

#[tokio::test]
async fn pages_list_members_with_pick_links_and_no_external_resources() {
    let sim = sample().await;
    for url in [in_client(&sim, "snsapi_privateinfo"), web(&sim)] {
        let target = url.strip_prefix(&sim.base_url()).unwrap_or(&url);
        let target = target.split('#').next().unwrap_or_default();
        let page = get(&sim, target).await;
        assert_eq!(page.status, StatusCode::OK);
        assert_eq!(
            page.header("content-type"),
            Some("text/html; charset=utf-8")
        );
        let html = page.text();
        for who in ["zhangsan", "lisi", "wangwu", "zhaoliu", "outsider"] {
            let href = format!("href=\"{}&amp;pick={who}\"", target.replace('&', "&amp;"));
            assert!(html.contains(&href), "{href} in {html}");
        }
        assert!(html.contains("张三"));
        for external in ["<script", "<link", "<img", "src=", "url("] {
            assert!(!html.contains(external), "{external}");
        }
    }
}

#[tokio::test]
async fn picking_redirects_302_with_code_and_state() {
    let sim = sample().await;
    let redirect = "https://apps.example.com/cb?next=%2Fhome";
    let url = sim.oauth_url(
        SAMPLE_CORP_ID,
        Some(SAMPLE_AGENT_ID),
        "snsapi_base",
        redirect,
        "AbC123",
    );
    let target = format!(
        "{}&pick=zhangsan",
        url.strip_prefix(&sim.base_url())
            .and_then(|u| u.split('#').next())
            .unwrap_or_default()
    );
    let reply = get(&sim, &target).await;
    assert_eq!(reply.status, StatusCode::FOUND);
    let location = reply.header("location").expect("a Location");
    let rest = location
        .strip_prefix("https://apps.example.com/cb?next=%2Fhome&code=")
        .unwrap_or_else(|| panic!("{location}"));
    let (code, state) = rest.split_once("&state=").expect("state after code");
    assert_eq!(state, "AbC123");
    assert!(!code.is_empty() && code.len() <= 512);
    assert_eq!(
        callback_params(location),
        Some(CallbackParams {
            code: code.into(),
            state: "AbC123".into()
        })
    );

    // The same through the helper, from a URL on WeCom's real hostname.
    let real = format!(
        "https://open.weixin.qq.com/connect/oauth2/authorize?appid={SAMPLE_CORP_ID}&redirect_uri={}&response_type=code&scope=snsapi_base&agentid={SAMPLE_AGENT_ID}#wechat_redirect",
        percent_encode("https://apps.example.com/cb")
    );
    let location = sim.login(&real, "lisi").await.expect("redirects");
    assert!(location.starts_with("https://apps.example.com/cb?code="));
    assert!(
        location.ends_with("&state="),
        "empty state echoed: {location}"
    );
    let other = sim.login(&real, "lisi").await.expect("redirects");
    assert_ne!(location, other, "a new code per login");
}

#[tokio::test]
async fn pages_validate_their_parameters() {
    let sim = sample().await;
    let page_errcode = |reply: &Reply| {
        assert_eq!(reply.status, StatusCode::OK);
        reply.header(ERRCODE_HEADER).map(str::to_owned)
    };
    let oauth = |state: &str| {
        let url = sim.oauth_url(
            SAMPLE_CORP_ID,
            Some(SAMPLE_AGENT_ID),
            "snsapi_privateinfo",
            REDIRECT,
            "x",
        );
        url.strip_prefix(&sim.base_url())
            .unwrap_or_default()
            .replace("state=x", &format!("state={state}"))
    };
    let cases: Vec<(String, Option<&str>)> = vec![
        (oauth("abc-def"), Some("84025")),
        (oauth("%E5%BC%A0"), Some("84025")),
        (oauth(&"a".repeat(129)), Some("84025")),
        (oauth(&"a".repeat(128)), None),
        (oauth(""), None),
        (
            oauth("x").replace(SAMPLE_CORP_ID, "wwunknown"),
            Some("40013"),
        ),
        (
            oauth("x").replace("agentid=1000002", "agentid=42"),
            Some("40056"),
        ),
        (
            oauth("x").replace("snsapi_privateinfo", "snsapi_userinfo"),
            Some("40035"),
        ),
        (
            oauth("x").replace("response_type=code", "response_type=token"),
            Some("40035"),
        ),
        (
            oauth("x").replace(&percent_encode(REDIRECT), "%2Fauth%2Fwecom%2Fcallback"),
            Some("40035"),
        ),
        (
            oauth("x").replace(&percent_encode(REDIRECT), "ftp%3A%2F%2Fh%2F"),
            Some("40035"),
        ),
        (
            web(&sim)
                .strip_prefix(&sim.base_url())
                .unwrap_or_default()
                .replace("&agentid=1000002", ""),
            Some("40056"),
        ),
        (
            web(&sim)
                .strip_prefix(&sim.base_url())
                .unwrap_or_default()
                .replace("login_type=CorpApp", "login_type=ServiceApp"),
            Some("40035"),
        ),
    ];
    for (target, expected) in cases {
        let reply = get(&sim, &target).await;
        assert_eq!(page_errcode(&reply).as_deref(), expected, "{target}");
        if let Some(code) = expected {
            assert!(reply.text().contains(code), "the page shows {code}");
        }
    }
    let refused = sim
        .login(
            &in_client(&sim, "snsapi_privateinfo").replace("st4te", "st-4te"),
            "zhangsan",
        )
        .await
        .expect_err("an error page is not a redirect");
    assert!(refused.to_string().contains("84025"), "{refused}");
    let unknown = sim
        .login(&in_client(&sim, "snsapi_base"), "nobody")
        .await
        .expect_err("unknown people cannot log in");
    assert!(unknown.to_string().contains("60111"), "{unknown}");
}

#[tokio::test]
async fn unknown_paths_are_404_with_an_empty_body() {
    let sim = sample().await;
    for path in [
        "/",
        "/cgi-bin/gettoken/x",
        "/wwopen/sso/qrConnect?appid=x",
        "/cgi-bin/user/list",
    ] {
        let reply = get(&sim, path).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path}");
        assert!(reply.body.is_empty());
    }
    assert_eq!(sim.api_calls(), 0, "404s are not counted");
}

// ---------- faults ----------

#[tokio::test]
async fn http_status_faults() {
    let sim = sample().await;
    let t = token(&sim).await;
    let rule = sim.fault(Endpoint::UserGet, Fault::Http(503)).times(2);
    assert_eq!(rule.remaining(), Some(2));
    let path = format!("/cgi-bin/user/get?access_token={t}&userid=zhangsan");
    for _ in 0..2 {
        let reply = get(&sim, &path).await;
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(serde_json::from_slice::<Value>(&reply.body).is_err());
    }
    assert!(!rule.is_active());
    assert_eq!(get(&sim, &path).await.status, StatusCode::OK);

    for status in [500, 502] {
        let rule = sim.fault(FaultScope::Api, Fault::Http(status));
        assert_eq!(get(&sim, &path).await.status.as_u16(), status);
        assert_eq!(get(&sim, "/cgi-bin/gettoken").await.status.as_u16(), status);
        let page = get(
            &sim,
            &in_client(&sim, "snsapi_base").replace(&sim.base_url(), ""),
        )
        .await;
        assert_eq!(page.status, StatusCode::OK, "Api scope spares the pages");
        rule.clear();
    }
    sim.fault(FaultScope::All, Fault::Http(502)).times(1);
    assert!(sim.login(&web(&sim), "zhangsan").await.is_err());
    assert_eq!(get(&sim, &path).await.status, StatusCode::OK);
}

#[tokio::test]
async fn latency_fault() {
    let sim = sample().await;
    sim.fault(Endpoint::GetToken, Fault::latency_ms(300))
        .times(1);
    let started = Instant::now();
    token(&sim).await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    let started = Instant::now();
    token(&sim).await;
    assert!(started.elapsed() < Duration::from_millis(300), "only once");
}

#[tokio::test]
async fn malformed_and_truncated_json_faults() {
    let sim = sample().await;
    let t = token(&sim).await;
    for fault in [Fault::MalformedJson, Fault::TruncatedJson] {
        let c = code(&sim, &web(&sim), "zhangsan").await;
        sim.fault(Endpoint::GetUserInfo, fault).times(1);
        let path = format!("/cgi-bin/auth/getuserinfo?access_token={t}&code={c}");
        let reply = get(&sim, &path).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert!(
            serde_json::from_slice::<Value>(&reply.body).is_err(),
            "{fault:?}: {}",
            reply.text()
        );
        assert!(reply.text().contains("errcode"), "mangled, not replaced");
        assert_eq!(
            errcode(&get_json(&sim, &path).await),
            40029,
            "{fault:?}: the code was consumed"
        );
    }
}

#[tokio::test]
async fn dropped_connection_fault() {
    let sim = sample().await;
    sim.fault(Endpoint::GetToken, Fault::DropConnection)
        .times(1);
    let target = format!("/cgi-bin/gettoken?corpid={SAMPLE_CORP_ID}&corpsecret={SAMPLE_SECRET}");
    let dropped = send(sim.addr(), Method::GET, &target, "").await;
    assert!(dropped.is_err(), "no answer at all");
    token(&sim).await;
    assert_eq!(sim.calls(Endpoint::GetToken), 2, "the dropped call counts");
}

#[tokio::test]
async fn errcode_faults() {
    let sim = sample().await;
    let t = token(&sim).await;
    sim.fault(Endpoint::GetToken, Fault::UntrustedIp).times(1);
    let refused = get_json(
        &sim,
        &format!("/cgi-bin/gettoken?corpid={SAMPLE_CORP_ID}&corpsecret={SAMPLE_SECRET}"),
    )
    .await;
    assert_shape(&refused, "gettoken.untrusted-ip");
    assert_tail(&refused);

    let c = code(&sim, &web(&sim), "zhangsan").await;
    sim.fault(Endpoint::GetUserInfo, Fault::RateLimited)
        .times(1);
    assert_eq!(user_info(&sim, &t, &c).await, vector("rate-limited"));
    sim.fault(Endpoint::GetUserInfo, Fault::SystemBusy).times(1);
    let busy = user_info(&sim, &t, &c).await;
    assert_eq!(errcode(&busy), -1);
    assert!(
        busy["errmsg"]
            .as_str()
            .unwrap_or_default()
            .starts_with("system busy")
    );
    assert_eq!(
        user_info(&sim, &t, &c).await["userid"],
        "zhangsan",
        "errcode faults leave the code unused"
    );

    let rule = sim.fault(FaultScope::Api, Fault::SystemBusy);
    let hidden = user_get(&sim, &t, "zhangsan").await;
    assert_eq!(errcode(&hidden), -1);
    assert_eq!(hidden["department"], json!([]), "user/get error shape");
    assert!(
        sim.login(&web(&sim), "zhangsan").await.is_ok(),
        "errcode faults do not touch the pages"
    );
    assert!(rule.is_active());
    sim.clear_faults();
    assert!(!rule.is_active());
    assert_eq!(errcode(&user_get(&sim, &t, "zhangsan").await), 0);
}

// ---------- counters, concurrency, lifetime ----------

#[tokio::test]
async fn counters_count_calls_per_endpoint() {
    let sim = sample().await;
    for endpoint in Endpoint::ALL {
        assert_eq!(sim.calls(endpoint), 0);
    }
    let t = token(&sim).await;
    let c = code(&sim, &in_client(&sim, "snsapi_privateinfo"), "zhangsan").await;
    let ticket = user_info(&sim, &t, &c).await["user_ticket"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    user_detail(&sim, &t, &ticket).await;
    user_get(&sim, &t, "zhangsan").await;
    user_get(&sim, &t, "lisi").await;
    sim.login(&web(&sim), "lisi").await.expect("redirects");
    let expected = [
        (Endpoint::GetToken, 1),
        (Endpoint::GetUserInfo, 1),
        (Endpoint::LegacyGetUserInfo, 0),
        (Endpoint::GetUserDetail, 1),
        (Endpoint::UserGet, 2),
        // The consent screen of snsapi_privateinfo, then its answer.
        (Endpoint::OAuthPage, 2),
        (Endpoint::WebLoginPage, 1),
    ];
    for (endpoint, n) in expected {
        assert_eq!(sim.calls(endpoint), n, "{endpoint:?}");
    }
    assert_eq!(sim.api_calls(), 5);
    assert_eq!(sim.consent_pages_shown(), 1);
    sim.reset_calls();
    assert_eq!(sim.api_calls(), 0);
    assert_eq!(sim.calls(Endpoint::OAuthPage), 0);
    assert_eq!(sim.consent_pages_shown(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_logins() {
    let sim = sample().await;
    let t = token(&sim).await;
    let mut tasks = Vec::new();
    for i in 0..64 {
        let sim = sim.clone();
        let t = t.clone();
        tasks.push(tokio::spawn(async move {
            let who = ["zhangsan", "lisi", "wangwu", "outsider"][i % 4];
            let c = code(&sim, &in_client(&sim, "snsapi_privateinfo"), who).await;
            let info = user_info(&sim, &t, &c).await;
            assert_eq!(errcode(&info), 0, "{info}");
            c
        }));
    }
    let mut codes = BTreeSet::new();
    for task in tasks {
        codes.insert(task.await.expect("the task finishes"));
    }
    assert_eq!(codes.len(), 64, "every code unique");
    assert_eq!(sim.calls(Endpoint::GetUserInfo), 64);
    // Each of the 48 members saw the consent screen, then answered it; the
    // 16 outsiders were not asked.
    assert_eq!(sim.consent_pages_shown(), 48);
    assert_eq!(sim.calls(Endpoint::OAuthPage), 2 * 48 + 16);
}

#[tokio::test]
async fn shutdown_and_last_drop_stop_the_server() {
    let sim = sample().await;
    let addr = sim.addr();
    assert_eq!(sim.base_url(), format!("http://{addr}"));
    let clone = sim.clone();
    clone.shutdown().await;
    assert!(send(addr, Method::GET, "/", "").await.is_err());

    let sim = sample().await;
    let addr = sim.addr();
    token(&sim).await;
    drop(sim);
    let mut closed = false;
    for _ in 0..100 {
        if TcpStream::connect(addr).await.is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(closed, "the listener closes once the last handle is gone");
}

/// `department/simplelist` (doc 95350) lists a subtree with `id`,
/// `parentid`, `order`; `tag/get` (doc 90213) a tag's members and
/// departments; both within the app's contact range (60011 outside), 60003
/// and 40068 for unknown ids; `user/get` gives the member's departments.
#[tokio::test]
async fn departments_and_tags_answer_like_wecom_within_the_apps_range() {
    let sim = sample().await;
    let t = token(&sim).await;
    let all = get_json(
        &sim,
        &format!("/cgi-bin/department/simplelist?access_token={t}"),
    )
    .await;
    assert_eq!(errcode(&all), 0, "{all}");
    let ids: Vec<u64> = all["department_id"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [1, 2, 3, 4]);
    assert_eq!(all["department_id"][3]["parentid"], 2);
    assert!(
        all["department_id"][0].get("name").is_none(),
        "simplelist has no names"
    );
    let rd = get_json(
        &sim,
        &format!("/cgi-bin/department/simplelist?access_token={t}&id=2"),
    )
    .await;
    let ids: Vec<u64> = rd["department_id"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [2, 4], "a department and its subtree");
    let unknown = get_json(
        &sim,
        &format!("/cgi-bin/department/simplelist?access_token={t}&id=99"),
    )
    .await;
    assert_eq!(errcode(&unknown), 60003);

    let tag = get_json(&sim, &format!("/cgi-bin/tag/get?access_token={t}&tagid=7")).await;
    assert_eq!(errcode(&tag), 0, "{tag}");
    assert_eq!(tag["tagname"], "运维");
    assert_eq!(tag["userlist"][0]["userid"], "lisi");
    assert_eq!(tag["partylist"], serde_json::json!([4]));
    let no_tag = get_json(&sim, &format!("/cgi-bin/tag/get?access_token={t}&tagid=8")).await;
    assert_eq!(errcode(&no_tag), 40068);
    let zhangsan = user_get(&sim, &t, "zhangsan").await;
    assert_eq!(zhangsan["department"], serde_json::json!([1, 2]));
    assert_eq!(zhangsan["main_department"], 1);

    // An app that may read 研发部 only.
    sim.update_model(|m| m.corps[0].agents[0].contact_range = Some(vec![2]));
    let finance = get_json(
        &sim,
        &format!("/cgi-bin/department/simplelist?access_token={t}&id=3"),
    )
    .await;
    assert_eq!(errcode(&finance), 60011);
    assert_tail(&finance);
    let ranged = get_json(
        &sim,
        &format!("/cgi-bin/department/simplelist?access_token={t}"),
    )
    .await;
    assert_eq!(ranged["department_id"].as_array().unwrap().len(), 2);
    let tag = get_json(&sim, &format!("/cgi-bin/tag/get?access_token={t}&tagid=7")).await;
    assert_eq!(
        tag["userlist"],
        serde_json::json!([]),
        "lisi is in 示例科技 only"
    );
    assert_eq!(tag["partylist"], serde_json::json!([4]));
}

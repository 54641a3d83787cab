//! Code to identity, through the built component in wasmtime, against the WeCom
//! simulator over loopback: the component calls the real WeCom URLs
//! (`https://qyapi.weixin.qq.com/...`), which the host routes to the simulator.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{APP_SECRET, CHROME, SIGNING_KEY, WECOM_ANDROID, authorize_request, host, settings};
use host_drafts::keyvalue::{CasMode, KeyValueBackend};
use host_test::bindings::login::{
    AuthError, Binding, CallbackRequest, ErrorCategory, ErrorDetail, LoginOutcome, LoginSuccess,
    Settings, StateRejection, User, UserInput, UserQuery,
};
use host_test::host::ComponentHost;
use wecom_auth_gateway::Routes;
use wecom_simulator::{Endpoint, Fault, Model, Simulator, SimulatorHandle, callback_params};

struct Fixture {
    host: ComponentHost,
    sim: SimulatorHandle,
}

/// WeCom's API host, routed to the simulator.
async fn fixture() -> Fixture {
    fixture_with(CasMode::Strict).await
}

async fn fixture_with(mode: CasMode) -> Fixture {
    let sim = Simulator::start(Model::sample()).await.unwrap();
    let mut host = host();
    host.routes = Routes::new([(
        "qyapi.weixin.qq.com".to_owned(),
        sim.addr().to_string().parse().unwrap(),
    )]);
    host.keyvalue = KeyValueBackend::memory(mode);
    Fixture { host, sim }
}

fn signup(on: bool) -> Settings {
    Settings {
        auto_signup: on,
        ..settings("corp")
    }
}

type Outcome = Result<LoginSuccess, AuthError>;

impl Fixture {
    /// A whole login as a browser does it: start, pick `userid` on WeCom's page
    /// (a real GET to the simulator), come back to the callback.
    async fn login(&self, settings: &Settings, user_agent: &str, userid: &str) -> Outcome {
        let request = self.started(settings, user_agent, userid).await;
        self.host.handle_callback(settings, &request).await.unwrap()
    }

    /// Everything up to (not including) the callback.
    async fn started(
        &self,
        settings: &Settings,
        user_agent: &str,
        userid: &str,
    ) -> CallbackRequest {
        let auth = self
            .host
            .authorize_url(settings, &authorize_request(user_agent, Some("/after")))
            .await
            .unwrap()
            .unwrap();
        let location = self.sim.login(&auth.url, userid).await.unwrap();
        let params = callback_params(&location).expect("WeCom redirects with a code");
        CallbackRequest {
            code: params.code,
            state: params.state,
            pre_auth_cookie: Some(auth.pre_auth_cookie.value),
            user_agent: user_agent.into(),
        }
    }

    async fn users(&self) -> Vec<User> {
        let (instance, mut store) = self.host.instantiate().await.unwrap();
        instance
            .wecom_auth_login()
            .call_list_users(&mut store, None, 1000)
            .await
            .unwrap()
            .unwrap()
            .users
    }

    async fn upsert(&self, input: UserInput) -> User {
        let (instance, mut store) = self.host.instantiate().await.unwrap();
        instance
            .wecom_auth_login()
            .call_upsert_user(&mut store, &input)
            .await
            .unwrap()
            .unwrap()
    }

    async fn find(&self, query: UserQuery) -> Option<User> {
        let (instance, mut store) = self.host.instantiate().await.unwrap();
        instance
            .wecom_auth_login()
            .call_find_user(&mut store, &query)
            .await
            .unwrap()
            .unwrap()
    }

    fn api_calls(&self) -> [u64; 4] {
        [
            Endpoint::GetToken,
            Endpoint::GetUserInfo,
            Endpoint::GetUserDetail,
            Endpoint::UserGet,
        ]
        .map(|e| self.sim.calls(e))
    }
}

fn bindings_of(user: &User) -> Vec<String> {
    user.bindings
        .iter()
        .map(|b| format!("{}/{}", b.authenticator, b.wecom_userid))
        .collect()
}

fn binding(userid: &str) -> Binding {
    Binding {
        authenticator: "corp".into(),
        wecom_userid: userid.into(),
    }
}

/// Nothing a caller sees may hold a secret.
fn assert_no_secret(shown: &str) {
    for secret in [APP_SECRET, SIGNING_KEY] {
        assert!(!shown.contains(secret), "secret leaked: {shown}");
    }
}

#[tokio::test]
async fn first_in_client_login_with_sign_up_creates_and_binds_the_member() {
    let f = fixture().await;
    let success = f
        .login(&signup(true), WECOM_ANDROID, "zhangsan")
        .await
        .unwrap();
    assert_eq!(success.outcome, LoginOutcome::Created);
    assert_eq!(success.authenticator, "corp");
    assert_eq!(success.redirect_to, "/after");
    let m = &success.member;
    assert_eq!(m.wecom_userid, "zhangsan");
    assert_eq!(m.name, "张三");
    assert_eq!(m.mobile.as_deref(), Some("13800000000"));
    assert_eq!(
        m.email.as_deref(),
        Some("zhangsan@example.wecom.work"),
        "biz_mail first"
    );
    assert_eq!(m.gender.as_deref(), Some("1"));
    let u = &success.user;
    assert!(u.id.starts_with("wc-") && u.created_by_signup);
    assert_eq!(
        (u.name.as_str(), u.mobile.as_deref()),
        ("张三", Some("13800000000"))
    );
    assert_eq!(bindings_of(u), ["corp/zhangsan"]);
    let cookie = &success.session_cookie.set_cookie;
    assert!(cookie.starts_with("wecom_auth_session=v2.k1."), "{cookie}");
    assert!(
        cookie.ends_with("; Path=/; HttpOnly; SameSite=Lax; Secure"),
        "{cookie}"
    );
    assert_eq!(success.cleared_pre_auth_cookie.max_age_seconds, 0);
    // In-client with a cold token: gettoken, getuserinfo, getuserdetail, user/get.
    assert_eq!(f.api_calls(), [1, 1, 1, 1]);
    assert_eq!(f.users().await.len(), 1);
    assert_no_secret(&format!("{success:?}"));

    // The session verifies through the component and names the user.
    let session = f
        .host
        .verify_session(&signup(true), &success.session_cookie.value)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(session.user.id, u.id);
    assert_eq!(session.wecom_userid, "zhangsan");
}

#[tokio::test]
async fn without_sign_up_an_unknown_mobile_is_user_not_found_and_nothing_is_written() {
    let f = fixture().await;
    let error = f
        .login(&signup(false), WECOM_ANDROID, "zhangsan")
        .await
        .unwrap_err();
    assert!(
        matches!(error.detail, ErrorDetail::UserNotFound),
        "{:?}",
        error
    );
    assert_eq!(
        (error.category, error.status),
        (ErrorCategory::AccessDenied, 403)
    );
    assert!(error.message_zh.contains("用户不存在"));
    assert!(f.users().await.is_empty());
    assert!(
        f.find(UserQuery::Binding(binding("zhangsan")))
            .await
            .is_none()
    );
}

#[tokio::test]
async fn an_existing_user_stored_as_plus_86_with_blanks_is_matched_and_bound() {
    let f = fixture().await;
    let alice = f
        .upsert(UserInput {
            id: Some("alice".into()),
            name: "Alice Zhang".into(),
            mobile: Some("+86 138 0000 0000".into()),
            email: None,
        })
        .await;
    assert_eq!(alice.mobile.as_deref(), Some("13800000000"));
    let success = f
        .login(&signup(false), WECOM_ANDROID, "zhangsan")
        .await
        .unwrap();
    assert_eq!(success.outcome, LoginOutcome::NewlyBound);
    assert_eq!(success.user.id, "alice");
    assert_eq!(
        success.user.name, "张三",
        "the profile is refreshed from WeCom"
    );
    assert_eq!(
        success.user.avatar.as_deref(),
        Some("https://wework.qpic.cn/wwpic/zhangsan/0")
    );
    assert_eq!(bindings_of(&success.user), ["corp/zhangsan"]);
    assert_eq!(f.users().await.len(), 1);

    // Then a desktop QR login of the same member: one WeCom call with a warm token.
    f.sim.reset_calls();
    let qr = f.login(&signup(false), CHROME, "zhangsan").await.unwrap();
    assert_eq!(
        (qr.outcome, qr.user.id.as_str()),
        (LoginOutcome::Existing, "alice")
    );
    assert_eq!(f.api_calls(), [0, 1, 0, 0]);
}

#[tokio::test]
async fn a_qr_login_without_binding_asks_for_a_first_login_inside_wecom() {
    let f = fixture().await;
    let error = f.login(&signup(true), CHROME, "lisi").await.unwrap_err();
    assert!(
        matches!(error.detail, ErrorDetail::FirstLoginInClient),
        "{:?}",
        error
    );
    assert_eq!(error.status, 403);
    assert!(
        error.message_en.contains("workbench"),
        "{}",
        error.message_en
    );
    assert!(error.message_zh.contains("工作台"));
    assert!(f.users().await.is_empty());
}

#[tokio::test]
async fn a_non_member_is_refused() {
    let f = fixture().await;
    let error = f
        .login(&signup(true), WECOM_ANDROID, "outsider")
        .await
        .unwrap_err();
    assert!(
        matches!(error.detail, ErrorDetail::NotAMember),
        "{:?}",
        error
    );
    assert_eq!(error.status, 403);
    assert!(f.users().await.is_empty());
}

#[tokio::test]
async fn a_member_declining_privateinfo_signs_up_without_a_mobile_or_is_not_found() {
    let f = fixture().await;
    let refused = f.login(&signup(false), WECOM_ANDROID, "wangwu").await;
    assert!(matches!(
        refused.unwrap_err().detail,
        ErrorDetail::UserNotFound
    ));
    let success = f
        .login(&signup(true), WECOM_ANDROID, "wangwu")
        .await
        .unwrap();
    assert_eq!(success.outcome, LoginOutcome::Created);
    assert_eq!(success.user.mobile, None);
    assert_eq!(success.user.name, "王五");
}

#[tokio::test]
async fn twenty_logins_fetch_the_token_exactly_once() {
    let f = fixture().await;
    f.login(&signup(true), WECOM_ANDROID, "zhangsan")
        .await
        .unwrap();
    for _ in 0..19 {
        f.login(&signup(true), CHROME, "zhangsan").await.unwrap();
    }
    assert_eq!(f.sim.calls(Endpoint::GetToken), 1);
    assert_eq!(f.sim.calls(Endpoint::GetUserInfo), 20);
}

#[tokio::test]
async fn an_expired_or_invalidated_token_is_refreshed_once_and_the_login_succeeds() {
    let f = fixture().await;
    f.login(&signup(true), WECOM_ANDROID, "zhangsan")
        .await
        .unwrap();
    // WeCom's clock runs past the token's life; the component's cache still trusts it.
    f.sim.advance(Duration::from_secs(7200));
    f.sim.reset_calls();
    f.login(&signup(true), CHROME, "zhangsan").await.unwrap();
    // getuserinfo (42001), gettoken, getuserinfo again.
    assert_eq!(f.api_calls(), [1, 2, 0, 0]);

    // WeCom drops the token early.
    f.sim.invalidate_tokens();
    f.sim.reset_calls();
    f.login(&signup(true), WECOM_ANDROID, "zhangsan")
        .await
        .unwrap();
    assert_eq!(f.api_calls(), [1, 2, 1, 1]);
    f.sim.reset_calls();
    f.login(&signup(true), CHROME, "zhangsan").await.unwrap();
    assert_eq!(f.api_calls(), [0, 1, 0, 0], "the new token is cached");
}

#[tokio::test]
async fn a_reused_code_is_refused_as_a_login_to_start_again() {
    let f = fixture().await;
    let first = f.started(&signup(true), WECOM_ANDROID, "zhangsan").await;
    f.host
        .handle_callback(&signup(true), &first)
        .await
        .unwrap()
        .unwrap();
    // The same code with a fresh login attempt of this browser.
    let mut replay = f.started(&signup(true), WECOM_ANDROID, "lisi").await;
    replay.code = first.code.clone();
    let error = f
        .host
        .handle_callback(&signup(true), &replay)
        .await
        .unwrap()
        .unwrap_err();
    let ErrorDetail::Wecom(wecom) = &error.detail else {
        panic!("{error:?}")
    };
    assert_eq!(
        (wecom.errcode, wecom.api.as_str()),
        (40029, "auth/getuserinfo")
    );
    assert_eq!(
        (error.category, error.status),
        (ErrorCategory::LoginRejected, 401)
    );
    // And the first state is spent too: a second callback of a *failed* login is refused.
    let again = f
        .host
        .handle_callback(&signup(true), &replay)
        .await
        .unwrap();
    assert!(matches!(
        again.unwrap_err().detail,
        ErrorDetail::StateRejected(StateRejection::AlreadyUsed)
    ));
}

#[tokio::test]
async fn a_duplicate_callback_of_a_finished_login_logs_the_browser_in_again() {
    let f = fixture().await;
    let request = f.started(&signup(true), WECOM_ANDROID, "zhangsan").await;
    let first = f
        .host
        .handle_callback(&signup(true), &request)
        .await
        .unwrap()
        .unwrap();
    let calls = f.api_calls();
    let second = f
        .host
        .handle_callback(&signup(true), &request)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second.user.id, first.user.id);
    assert_eq!(second.redirect_to, "/after");
    assert_eq!(f.api_calls(), calls, "the spent code is not sent again");
}

async fn error_of(f: &Fixture, settings: &Settings, user_agent: &str) -> AuthError {
    f.login(settings, user_agent, "zhangsan").await.unwrap_err()
}

#[tokio::test]
async fn each_wecom_error_maps_to_its_category_status_and_hint() {
    let f = fixture().await;
    // 60020, 45009, -1 on gettoken (cold cache).
    for (fault, status, hint) in [
        (Fault::UntrustedIp, 500, Some("企业可信IP")),
        (Fault::RateLimited, 503, Some("frequency")),
        (Fault::SystemBusy, 503, None),
    ] {
        f.sim.fault_times(Endpoint::GetToken, fault, 1);
        let e = error_of(&f, &signup(true), WECOM_ANDROID).await;
        assert_eq!(e.status, status, "{fault:?}: {e:?}");
        assert!(matches!(e.detail, ErrorDetail::Wecom(_)), "{e:?}");
        match hint {
            Some(needle) => assert!(
                e.admin_hint.as_deref().unwrap_or("").contains(needle),
                "{e:?}"
            ),
            None => assert_eq!(e.admin_hint, None),
        }
    }
    // Bad credentials: 40013, 40001 name the console setting.
    let mut wrong_corp = signup(true);
    wrong_corp.corp_id = "wwffffffffffffffff".into();
    let mut wrong_secret = signup(true);
    wrong_secret.secret = "not-the-secret".into();
    for (settings, errcode, needle) in [
        (&wrong_corp, 40013, "企业ID"),
        (&wrong_secret, 40001, "Secret"),
    ] {
        // The login starts with the real app (so WeCom's page accepts it).
        let request = f.started(&signup(true), WECOM_ANDROID, "zhangsan").await;
        let e = f
            .host
            .handle_callback(settings, &request)
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!((e.category, e.status), (ErrorCategory::Misconfigured, 500));
        let ErrorDetail::Wecom(w) = &e.detail else {
            panic!("{e:?}")
        };
        assert_eq!((w.errcode, w.api.as_str()), (errcode, "gettoken"));
        assert!(e.admin_hint.as_deref().unwrap().contains(needle), "{e:?}");
        assert_no_secret(&format!("{e:?}"));
        assert!(!format!("{e:?}").contains("not-the-secret"));
    }
    // 50001: the callback host is not the app's trusted domain.
    f.sim.update_model(|m| {
        *m = std::mem::take(m).with_trusted_domain("other.example.com");
    });
    let e = error_of(&f, &signup(true), WECOM_ANDROID).await;
    let ErrorDetail::Wecom(w) = &e.detail else {
        panic!("{e:?}")
    };
    assert_eq!((w.errcode, e.status), (50001, 500));
    assert!(e.admin_hint.unwrap().contains("可信域名"));
    f.sim.update_model(|m| {
        *m = std::mem::take(m).with_trusted_domain("apps.example.com");
    });
    // 60011: a member outside the app's visible range.
    let e = f
        .login(&signup(true), WECOM_ANDROID, "zhaoliu")
        .await
        .unwrap_err();
    assert_eq!((e.category, e.status), (ErrorCategory::AccessDenied, 403));
    assert!(e.admin_hint.unwrap().contains("可见范围"));
}

#[tokio::test]
async fn wecom_unreachable_slow_or_garbled_is_a_502_and_never_half_done() {
    let f = fixture().await;
    let quick = Settings {
        api_timeout_ms: Some(300),
        ..signup(true)
    };
    for fault in [
        Fault::Http(503),
        Fault::Http(500),
        Fault::MalformedJson,
        Fault::TruncatedJson,
        Fault::DropConnection,
        Fault::latency_ms(2000),
    ] {
        f.sim.fault_times(Endpoint::GetUserInfo, fault, 1);
        let e = error_of(&f, &quick, WECOM_ANDROID).await;
        assert_eq!(
            (e.category, e.status),
            (ErrorCategory::WecomUnavailable, 502),
            "{fault:?}: {e:?}"
        );
        assert!(
            matches!(e.detail, ErrorDetail::WecomUnavailable(_)),
            "{e:?}"
        );
        assert_no_secret(&format!("{e:?}"));
        assert!(f.users().await.is_empty(), "{fault:?} left a user behind");
    }
    f.sim.clear_faults();
    f.login(&quick, WECOM_ANDROID, "zhangsan").await.unwrap();
}

#[tokio::test]
async fn a_fault_at_each_wecom_step_of_a_first_login_then_a_clean_retry_gives_one_user() {
    for endpoint in [
        Endpoint::GetToken,
        Endpoint::GetUserInfo,
        Endpoint::GetUserDetail,
        Endpoint::UserGet,
    ] {
        for fault in [
            Fault::Http(502),
            Fault::TruncatedJson,
            Fault::DropConnection,
        ] {
            let f = fixture().await;
            f.sim.fault_times(endpoint, fault, 1);
            let failed = f.login(&signup(true), WECOM_ANDROID, "zhangsan").await;
            assert!(failed.is_err(), "{endpoint:?} {fault:?}");
            assert!(f.users().await.is_empty());
            let success = f
                .login(&signup(true), WECOM_ANDROID, "zhangsan")
                .await
                .unwrap();
            let users = f.users().await;
            assert_eq!(users.len(), 1, "{endpoint:?} {fault:?}");
            assert_eq!(format!("{:?}", users[0]), format!("{:?}", success.user));
            assert_eq!(success.outcome, LoginOutcome::Created);
        }
    }
}

/// 50 browsers of one member come back at once, each with its own code.
async fn concurrent_first_logins(mode: CasMode) {
    let f = Arc::new(fixture_with(mode).await);
    let mut requests = Vec::new();
    for _ in 0..50 {
        requests.push(f.started(&signup(true), WECOM_ANDROID, "zhangsan").await);
    }
    let mut tasks = Vec::new();
    for request in requests {
        let f = f.clone();
        tasks.push(tokio::spawn(async move {
            f.host
                .handle_callback(&signup(true), &request)
                .await
                .unwrap()
        }));
    }
    let mut ids = Vec::new();
    for task in tasks {
        ids.push(task.await.unwrap().unwrap().user.id);
    }
    let users = f.users().await;
    assert_eq!(users.len(), 1, "{mode:?}: {users:?}");
    assert!(ids.iter().all(|id| *id == users[0].id), "{mode:?}");
    assert_eq!(bindings_of(&users[0]), ["corp/zhangsan"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_first_logins_create_exactly_one_user_with_strict_cas() {
    concurrent_first_logins(CasMode::Strict).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_first_logins_create_exactly_one_user_with_spins_upsert_cas() {
    concurrent_first_logins(CasMode::UpsertWhenAbsent).await;
}

#[tokio::test]
async fn admin_functions_provision_find_unbind_and_delete() {
    let f = fixture().await;
    let alice = f
        .upsert(UserInput {
            id: None,
            name: "Alice".into(),
            mobile: Some("13800000000".into()),
            email: Some("alice@example.com".into()),
        })
        .await;
    assert!(alice.id.starts_with("u-"));
    f.login(&signup(false), WECOM_ANDROID, "zhangsan")
        .await
        .unwrap();
    assert_eq!(
        f.find(UserQuery::Mobile("+86 13800000000".into()))
            .await
            .map(|u| u.id),
        Some(alice.id.clone())
    );
    let (instance, mut store) = f.host.instantiate().await.unwrap();
    let login = instance.wecom_auth_login();
    assert!(
        login
            .call_unbind(&mut store, &binding("zhangsan"))
            .await
            .unwrap()
            .unwrap()
    );
    assert!(
        f.find(UserQuery::Binding(binding("zhangsan")))
            .await
            .is_none()
    );
    let (instance, mut store) = f.host.instantiate().await.unwrap();
    let login = instance.wecom_auth_login();
    assert!(
        login
            .call_delete_user(&mut store, &alice.id)
            .await
            .unwrap()
            .unwrap()
    );
    assert!(f.users().await.is_empty());
    // A session of a deleted user no longer verifies.
    let success = f.login(&signup(true), WECOM_ANDROID, "lisi").await.unwrap();
    let (instance, mut store) = f.host.instantiate().await.unwrap();
    instance
        .wecom_auth_login()
        .call_delete_user(&mut store, &success.user.id)
        .await
        .unwrap()
        .unwrap();
    let gone = f
        .host
        .verify_session(&signup(true), &success.session_cookie.value)
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(gone.detail, ErrorDetail::UserGone));
    assert_eq!(gone.status, 401);
}

#[tokio::test]
async fn nothing_the_host_records_or_the_caller_sees_carries_a_secret_to_a_browser() {
    let f = fixture().await;
    let success = f
        .login(&signup(true), WECOM_ANDROID, "zhangsan")
        .await
        .unwrap();
    assert_no_secret(&format!("{success:?}"));
    // The Secret goes to gettoken only, and the access token only to the API.
    for request in f.host.outgoing.requests() {
        assert!(
            request
                .uri
                .starts_with("https://qyapi.weixin.qq.com/cgi-bin/"),
            "{}",
            request.uri
        );
        let carries_secret = request.uri.contains(APP_SECRET);
        assert_eq!(
            carries_secret,
            request.uri.contains("/cgi-bin/gettoken?"),
            "{}",
            request.uri
        );
        assert!(!request.uri.contains(SIGNING_KEY));
    }
}

#[tokio::test]
async fn a_store_fault_at_each_write_of_a_first_login_then_a_clean_retry_gives_one_user() {
    for provisioned in [false, true] {
        // A first login writes: token cache, used state, its sweep number
        // (increment) and slot, mobile index, user index (sign-up only),
        // user, binding, finished state. Fail each in turn.
        let mut failed_logins = 0;
        for failing_write in 1..=9 {
            let f = fixture().await;
            if provisioned {
                f.upsert(UserInput {
                    id: Some("alice".into()),
                    name: "Alice".into(),
                    mobile: Some("+86 138 0000 0000".into()),
                    email: None,
                })
                .await;
            }
            f.host.keyvalue.faults().fail_nth_write(failing_write);
            let first = f.login(&signup(true), WECOM_ANDROID, "zhangsan").await;
            f.host.keyvalue.faults().clear();
            let retry = f.login(&signup(true), WECOM_ANDROID, "zhangsan").await;
            let success = retry.unwrap_or_else(|e| {
                panic!("retry after write fault {failing_write}: {e:?} (first: {first:?})")
            });
            if let Err(e) = &first {
                assert!(matches!(e.detail, ErrorDetail::Store(_)), "{e:?}");
                assert_eq!(e.status, 503);
                failed_logins += 1;
            }
            let users = f.users().await;
            assert_eq!(users.len(), 1, "write fault {failing_write}: {users:?}");
            let expected = if provisioned {
                "alice"
            } else {
                success.user.id.as_str()
            };
            assert_eq!(users[0].id, expected);
            assert_eq!(bindings_of(&users[0]), ["corp/zhangsan"]);
            let by_binding = f.find(UserQuery::Binding(binding("zhangsan"))).await;
            let by_mobile = f.find(UserQuery::Mobile("13800000000".into())).await;
            assert_eq!(by_binding.map(|u| u.id), Some(users[0].id.clone()));
            assert_eq!(by_mobile.map(|u| u.id), Some(users[0].id.clone()));
        }
        // The token cache, the sweep numbering and the finished-state marker
        // are best effort; the used state, the indexes, the user and the
        // binding must each fail the login.
        let expected_failures = if provisioned { 3 } else { 5 };
        assert_eq!(
            failed_logins, expected_failures,
            "provisioned: {provisioned}"
        );
    }
}

/// The typed setup check: the same live checks as `GET /admin/setup`, for
/// hosts that call the typed API.
#[tokio::test]
async fn the_typed_setup_check_calls_wecom_and_names_what_to_fix() {
    let f = fixture().await;
    let good = settings("corp");
    let report = f.host.check_setup(&good).await.unwrap().unwrap();
    assert_eq!(report.trusted_domain, "apps.example.com");
    assert!(report.links.callback_url.ends_with("/auth/wecom/callback"));
    let passed: Vec<(&str, bool)> = report
        .checks
        .iter()
        .map(|c| (c.check.as_str(), c.ok))
        .collect();
    assert_eq!(
        passed,
        [
            ("gettoken", true),
            ("agent", true),
            ("trusted-domain", true)
        ]
    );

    let wrong = Settings {
        secret: "wrong-secret-DO-NOT-LEAK-0123".into(),
        ..settings("corp")
    };
    let report = f.host.check_setup(&wrong).await.unwrap().unwrap();
    assert_eq!(report.checks.len(), 1, "no agent/get without a token");
    let gettoken = &report.checks[0];
    assert_eq!((gettoken.ok, gettoken.errcode), (false, Some(40001)));
    assert!(gettoken.hint_zh.as_deref().unwrap().contains("Secret"));
    let shown = format!("{report:?}");
    assert_no_secret(&shown);
    assert!(!shown.contains("DO-NOT-LEAK"), "{shown}");
}

/// The typed API gets the same access check: `handle-callback` refuses a
/// member no rule allows before anything is written (no user, no binding),
/// `verify-session` refuses a session whose member a rule now refuses and
/// tells the groups of one it lets in.
#[tokio::test]
async fn the_typed_api_checks_the_access_rules_and_tells_the_groups() {
    use host_test::bindings::login::{AccessRefusal, AccessRules, GroupKind};
    let f = fixture().await;
    let rules = |allowed_departments: &[&str], denied_tags: &[u32]| AccessRules {
        allowed_users: Vec::new(),
        allowed_departments: allowed_departments.iter().map(|d| d.to_string()).collect(),
        allowed_tags: Vec::new(),
        denied_users: Vec::new(),
        denied_departments: Vec::new(),
        denied_tags: denied_tags.to_vec(),
    };
    // 研发部 (2) and below: zhangsan (in 1 and 2) yes, lisi (in 1) no.
    let engineering = Settings {
        access_rules: Some(rules(&["2"], &[])),
        groups: Some(vec![GroupKind::Department, GroupKind::Tag]),
        ..signup(true)
    };
    let refused = f
        .login(&engineering, WECOM_ANDROID, "lisi")
        .await
        .unwrap_err();
    assert!(
        matches!(
            refused.detail,
            ErrorDetail::AccessRefused(AccessRefusal::NotAllowed)
        ),
        "{refused:?}"
    );
    assert_eq!(
        (refused.category, refused.status),
        (ErrorCategory::AccessDenied, 403)
    );
    assert!(f.users().await.is_empty(), "nothing written for a refusal");
    assert!(f.find(UserQuery::Binding(binding("lisi"))).await.is_none());

    let success = f
        .login(&engineering, WECOM_ANDROID, "zhangsan")
        .await
        .unwrap();
    let token = &success.session_cookie.value;
    let session = f
        .host
        .verify_session(&engineering, token)
        .await
        .unwrap()
        .unwrap();
    let keys: Vec<&str> = session.groups.iter().map(|g| g.key.as_str()).collect();
    assert_eq!(keys, ["dept:1", "dept:2"]);
    // Now the tag 运维 is denied and zhangsan joins it: within the bound
    // (300 s) the cached tag stands, after it the session is refused.
    f.sim
        .update_model(|model| model.corps[0].tags[0].userlist.push("zhangsan".into()));
    let denying = Settings {
        access_rules: Some(rules(&["2"], &[7])),
        ..engineering.clone()
    };
    let cached = f.host.verify_session(&denying, token).await.unwrap();
    assert!(cached.is_ok(), "{cached:?}");
    f.host.clock.advance(Duration::from_secs(301));
    let denied = f
        .host
        .verify_session(&denying, token)
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(
            denied.detail,
            ErrorDetail::AccessRefused(AccessRefusal::DeniedByTag)
        ),
        "{denied:?}"
    );
    assert!(denied.message_en.contains("tag"), "{}", denied.message_en);
}

/// The typed directory sync: a member removed from WeCom with no event
/// delivered is found missing from `user/list_id`; their session ends (and,
/// asked to, the binding goes); the others' sessions stay.
#[tokio::test]
async fn the_typed_directory_sync_ends_a_leavers_sessions() {
    let f = fixture().await;
    let settings = signup(true);
    let zhangsan = f.login(&settings, WECOM_ANDROID, "zhangsan").await.unwrap();
    let lisi = f.login(&settings, WECOM_ANDROID, "lisi").await.unwrap();
    f.sim
        .update_model(|model| model.corps[0].members.retain(|m| m.userid != "zhangsan"));
    let options = host_test::bindings::login::SyncOptions {
        leaver: host_test::bindings::login::LeaverAction::Unbind,
        force: false,
    };
    let report = f
        .host
        .sync_directory(&settings, options)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            report.bound,
            report.sessions_ended,
            report.unbound,
            report.wecom_pages
        ),
        (2, 1, 1, 1),
        "{report:?}"
    );
    let verify = |token: String| {
        let host = &f.host;
        let settings = &settings;
        async move { host.verify_session(settings, &token).await.unwrap() }
    };
    assert!(verify(zhangsan.session_cookie.value).await.is_err());
    assert!(verify(lisi.session_cookie.value).await.is_ok());
}

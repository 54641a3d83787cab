//! The example Spin app (`examples/spin-app`: a team notice board written
//! with spin-sdk 5.2) with the built component as its `wecom:auth/login`
//! dependency, composed by a real `spin up` and walked through its own pages
//! against the WeCom simulator: an in-client login (WeCom User-Agent) and a
//! QR login, the member's name and groups, a member the access rules refuse,
//! posting a notice, cross-site POSTs refused, logout.
//!
//! `spin build` builds the example in its folder (into its own, ignored
//! `target/`); `spin up` runs a copy of its manifest whose paths point at
//! that build and at the component built from this tree.
//!
//! Needs `spin` on `PATH` (Spin 3.x; `.ci/run` installs 3.6.3) and the
//! `wasm32-wasip1` target (added through rustup when missing, as
//! `host-test/build.rs` does for `wasm32-wasip2`). Skipped with a message
//! when `spin` is missing; a failure when `WECOM_AUTH_REQUIRE_SPIN=1` (CI).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use host_drafts::keyvalue::testing::{TempDir, free_port};
use host_test::COMPONENT_PATH;
use wecom_auth_dist::HOST_ONLY_ENV;
use wecom_simulator::{Model, Simulator};

mod common;

use common::http::{Browser, Reply};
use common::spin::{SpinUp, spin, wecom_variables};
use common::{CHROME, WECOM_ANDROID};

const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/spin-app");
/// What the example's manifest says, and the test's copy replaces.
const SOURCE: &str = "source = \"target/wasm32-wasip1/release/notice_board.wasm\"";
const DEPENDENCY: &str =
    "\"wecom:auth/login@0.1.0\" = { path = \"../../target/dist/wecom_auth.wasm\" }";

/// The text of `interface login { ... }` in a WIT file.
fn login_interface(wit: &str) -> &str {
    let start = wit.find("interface login {").expect("interface login");
    let length = wit[start..].find("\n}\n").expect("its end") + 3;
    &wit[start..start + length]
}

#[test]
fn the_example_imports_the_login_interface_the_component_exports() {
    let read = |path: &Path| std::fs::read_to_string(path).unwrap();
    let ours = read(&Path::new(REPO).join("wit/wecom-auth.wit"));
    let copy = read(&Path::new(EXAMPLE).join("wit/deps/wecom-auth/wecom-auth.wit"));
    assert!(
        login_interface(&ours) == login_interface(&copy),
        "examples/spin-app/wit/deps/wecom-auth/wecom-auth.wit is not wit/wecom-auth.wit's \
         login interface: copy wit/wecom-auth.wit there"
    );
    // The dependency is the shipped component, where `cargo run -p
    // wecom-auth-dist` puts it.
    let manifest = read(&Path::new(EXAMPLE).join("spin.toml"));
    assert!(manifest.contains(SOURCE), "the example's source moved");
    assert!(
        manifest.contains(DEPENDENCY),
        "the example's dependency moved"
    );
    assert!(DEPENDENCY.contains(&format!("../../target/{}", wecom_auth_dist::SHIPPED)));
    // Its variables are the project's: same names (and so the same docs).
    let variables = |text: &str| -> Vec<String> {
        let manifest: toml::Table = text.parse().unwrap();
        manifest["variables"]
            .as_table()
            .unwrap()
            .keys()
            .cloned()
            .collect()
    };
    let project = variables(&read(&Path::new(REPO).join("spin.toml")));
    for name in variables(&manifest) {
        assert!(
            project.contains(&name),
            "the example's variable {name} is not one of spin.toml's"
        );
    }
}

/// `spin build` in the example's folder; the app component it built.
fn spin_build(spin: &Path) -> PathBuf {
    wecom_auth_dist::ensure_wasm_target("wasm32-wasip1");
    let mut build = Command::new(spin);
    build.arg("build").current_dir(EXAMPLE).stdin(Stdio::null());
    for inherited in HOST_ONLY_ENV {
        build.env_remove(inherited);
    }
    let out = build.output().expect("spin build runs");
    assert!(
        out.status.success(),
        "spin build of examples/spin-app failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Path::new(EXAMPLE).join("target/wasm32-wasip1/release/notice_board.wasm")
}

/// The example's manifest in `dir`, its two paths made absolute: the app
/// just built and the component built from this tree.
fn manifest(dir: &Path, app: &Path) -> PathBuf {
    let shipped = std::fs::read_to_string(Path::new(EXAMPLE).join("spin.toml")).unwrap();
    let manifest = shipped
        .replace(SOURCE, &format!("source = {:?}", app.display().to_string()))
        .replace(
            DEPENDENCY,
            &format!("\"wecom:auth/login@0.1.0\" = {{ path = {COMPONENT_PATH:?} }}"),
        );
    let path = dir.join("spin.toml");
    std::fs::write(&path, manifest).unwrap();
    path
}

fn set_cookies(reply: &Reply) -> Vec<&str> {
    reply
        .headers
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case("set-cookie"))
        .map(|(_, value)| value.as_str())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_notice_board_composes_the_component_in_a_real_spin() {
    let Some(spin) = spin("the example Spin app (examples/spin-app) is NOT tested") else {
        return;
    };
    let app = spin_build(&spin);
    let dir = TempDir::new("spin-app").unwrap();
    let manifest = manifest(dir.path(), &app);
    let port = free_port().unwrap();
    let origin = format!("http://127.0.0.1:{port}");
    let sim = Simulator::start(Model::sample().with_trusted_domain(&format!("127.0.0.1:{port}")))
        .await
        .unwrap();
    let mut variables = wecom_variables(&origin, &sim);
    variables.extend([
        ("auto_signup", "true".to_owned()),
        ("groups", "departments,tags".to_owned()),
        // 研发部 and below: 张三 (departments 1 and 2) may enter, 李四 may not.
        ("allowed_departments", "2".to_owned()),
    ]);
    let up = SpinUp::start(&spin, dir.path(), &manifest, port, &variables, None, "/").await;
    eprintln!(
        "spin (the example app composing the component): spin up to first answer {:?}",
        up.cold_start
    );
    let at = up.addr;

    // Without a session: the login link.
    let mut phone = Browser::new(WECOM_ANDROID);
    let home = phone.request(at, "GET", "/").await;
    assert!(
        home.body.contains("href=\"/auth/wecom/login\""),
        "{}",
        home.body
    );

    // Inside the WeCom client: in-client OAuth, asking for the mobile number;
    // the pre-auth cookie set as the component returned it.
    let begun = phone.request(at, "GET", "/auth/wecom/login").await;
    assert_eq!(begun.status, 302, "{}", begun.body);
    assert!(begun.location().contains("/connect/oauth2/authorize?"));
    assert!(begun.location().contains("scope=snsapi_privateinfo"));
    let pre_auth = set_cookies(&begun);
    assert!(
        pre_auth.len() == 1 && pre_auth[0].contains("Path=/auth/wecom; HttpOnly; SameSite=Lax"),
        "{pre_auth:?}"
    );
    let back = sim.login(begun.location(), "zhangsan").await.unwrap();
    let done = phone.request(at, "GET", &back).await;
    assert_eq!(done.status, 302, "{}", done.body);
    assert_eq!(done.location(), "/");
    // The session and the pre-auth cookie handle-callback returned: both sent.
    let cookies = set_cookies(&done);
    assert_eq!(cookies.len(), 2, "{cookies:?}");
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("wecom_auth_session=v"))
    );
    let home = phone.request(at, "GET", "/").await;
    assert_eq!(home.status, 200, "{}", home.body);
    assert!(
        home.body.contains("<span class=\"member\">张三</span>"),
        "{}",
        home.body
    );
    assert!(home.body.contains("<code>zhangsan</code>"), "{}", home.body);
    assert!(home.body.contains("<code>dept:1</code>"), "{}", home.body);
    assert!(home.body.contains("<code>dept:2</code>"), "{}", home.body);

    // On a desktop browser, the notice board first: to the QR login, and
    // back to the board. The member is bound now, so no mobile is needed.
    let mut desktop = Browser::new(CHROME);
    let board = desktop.request(at, "GET", "/notices").await;
    assert_eq!(board.status, 302);
    assert_eq!(board.location(), "/auth/wecom/login?return_to=%2Fnotices");
    let begun = desktop.request(at, "GET", board.location()).await;
    assert_eq!(begun.status, 302, "{}", begun.body);
    assert!(
        begun.location().contains("/wwlogin/sso/login?"),
        "{}",
        begun.location()
    );
    let back = sim.login(begun.location(), "zhangsan").await.unwrap();
    let done = desktop.request(at, "GET", &back).await;
    assert_eq!(done.status, 302, "{}", done.body);
    assert_eq!(done.location(), "/notices");
    let board = desktop.request(at, "GET", "/notices").await;
    assert_eq!(board.status, 200, "{}", board.body);
    assert!(
        board
            .body
            .contains("Logged in as <span class=\"member\">张三</span>")
    );
    assert!(board.body.contains("No notices yet."), "{}", board.body);

    // 李四 is outside the allowed department: the component's message (in
    // Chinese, as his WeCom client asks), its status, and no cookie at all.
    let mut refused = Browser::new(WECOM_ANDROID);
    let begun = refused.request(at, "GET", "/auth/wecom/login").await;
    let back = sim.login(begun.location(), "lisi").await.unwrap();
    let done = refused.request(at, "GET", &back).await;
    assert_eq!(done.status, 403, "{}", done.body);
    let message = wecom_auth::core::texts::NOT_ALLOWED_BY_RULES.zh;
    assert!(done.body.contains(message), "{}", done.body);
    assert!(set_cookies(&done).is_empty(), "{:?}", done.headers);
    let home = refused.request(at, "GET", "/").await;
    assert!(home.body.contains("Log in with WeCom"), "{}", home.body);
    // A callback without code and state: refused by the component, no cookie.
    let bare = refused.request(at, "GET", "/auth/wecom/callback").await;
    assert!((400..500).contains(&bare.status), "{}", bare.body);
    assert!(set_cookies(&bare).is_empty(), "{:?}", bare.headers);

    // A notice, from the board's own form; the text is shown escaped.
    let same_site = [
        ("origin", origin.as_str()),
        ("content-type", "application/x-www-form-urlencoded"),
    ];
    let posted = desktop
        .request_with(
            at,
            "POST",
            "/notices",
            &same_site,
            b"text=%3Cb%3ELunch%3C%2Fb%3E+at+12+%26+%E5%8D%88%E9%A5%AD",
        )
        .await;
    assert_eq!(posted.status, 303, "{}", posted.body);
    assert_eq!(posted.location(), "/notices");
    // The phone, another session of the same member, sees it.
    let board = phone.request(at, "GET", "/notices").await;
    assert!(
        board
            .body
            .contains("&lt;b&gt;Lunch&lt;/b&gt; at 12 &amp; 午饭"),
        "{}",
        board.body
    );
    assert!(board.body.contains("<small>张三 · "), "{}", board.body);

    // Cross-site POSTs, session cookie and all: refused, nothing posted, no
    // logout.
    let cross_site = [
        ("origin", "https://evil.example"),
        ("content-type", "application/x-www-form-urlencoded"),
    ];
    let forged = desktop
        .request_with(at, "POST", "/notices", &cross_site, b"text=spam")
        .await;
    assert_eq!(forged.status, 403, "{}", forged.body);
    let unmarked = [("content-type", "application/x-www-form-urlencoded")];
    let forged = desktop
        .request_with(at, "POST", "/notices", &unmarked, b"text=spam")
        .await;
    assert_eq!(forged.status, 403, "no Origin or Referer: {}", forged.body);
    let forged = desktop
        .request_with(at, "POST", "/auth/wecom/logout", &cross_site, b"")
        .await;
    assert_eq!(forged.status, 403, "{}", forged.body);
    assert!(set_cookies(&forged).is_empty());
    let board = desktop.request(at, "GET", "/notices").await;
    assert_eq!(board.status, 200, "still logged in: {}", board.body);
    assert!(!board.body.contains("spam"), "{}", board.body);

    // Logout: the session cookie cleared with the attributes it was set with.
    let out = desktop
        .request_with(at, "POST", "/auth/wecom/logout", &same_site, b"")
        .await;
    assert_eq!(out.status, 303, "{}", out.body);
    assert_eq!(out.location(), "/");
    assert_eq!(
        set_cookies(&out),
        ["wecom_auth_session=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax"]
    );
    let home = desktop.request(at, "GET", "/").await;
    assert!(home.body.contains("Log in with WeCom"), "{}", home.body);
    assert_eq!(desktop.request(at, "GET", "/notices").await.status, 302);
}

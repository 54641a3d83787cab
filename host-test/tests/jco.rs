//! The built component in Node through jco (`host-test/jco`): a second,
//! independent implementation of the component model checking ours. The
//! Node script transpiles the component with small shims for the two Spin
//! drafts, calls the typed exports against the WeCom simulator, and serves
//! the HTTP front with `jco serve` for one login.
//!
//! Needs `node` and `npm ci` in `host-test/jco`; skipped with a message when
//! missing, a failure when `WECOM_AUTH_REQUIRE_JCO=1` (CI).

use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use host_drafts::keyvalue::testing::free_port;
use host_test::COMPONENT_PATH;
use wecom_simulator::{Model, Simulator};

const REQUIRE_JCO_ENV: &str = "WECOM_AUTH_REQUIRE_JCO";

fn jco_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/jco"))
}

fn ready() -> bool {
    let node = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success());
    let installed = jco_dir().join("node_modules/.bin/jco").exists();
    if !(node && installed) {
        let missing = if node {
            "npm ci in host-test/jco"
        } else {
            "node"
        };
        host_test::missing_part(
            REQUIRE_JCO_ENV,
            "the component is NOT checked in Node through jco",
            missing,
        );
    }
    node && installed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_runs_the_component_through_jco() {
    if !ready() {
        return;
    }
    let port = free_port().unwrap();
    let sim = Simulator::start(Model::sample().with_trusted_domain(&format!("127.0.0.1:{port}")))
        .await
        .unwrap();
    // The transpiled code must sit beside the shims' node_modules.
    let artifacts = jco_dir().join("artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let out_dir = artifacts.join(format!("run-{}-{port}", std::process::id()));
    let mut child = Command::new("node")
        .current_dir(jco_dir())
        .arg("check.mjs")
        .arg(COMPONENT_PATH)
        .arg(sim.base_url())
        .arg(&out_dir)
        .arg(port.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group: `jco serve` is stopped with it on a timeout.
        .process_group(0)
        .spawn()
        .expect("node starts");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > Duration::from_secs(240) {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.wait();
            break None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Whatever the script left running in its group goes too.
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .stderr(Stdio::null())
        .status();
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let _ = std::fs::remove_dir_all(&out_dir);
    assert!(
        status.is_some_and(|s| s.success()),
        "the jco check failed ({status:?}):\n{stdout}\n{stderr}"
    );
    for check in [
        "detect-wecom-browser",
        "authorize-url",
        "handle-callback against the simulator",
        "verify-session",
        "refuses a state of another browser",
        "jco serve: login through the HTTP front",
    ] {
        let passed = stdout
            .lines()
            .any(|line| line.starts_with("ok: ") && line.contains(check));
        assert!(passed, "{check}:\n{stdout}");
    }
}

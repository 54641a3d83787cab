//! The real browser test: the demo (the component in the reference gateway,
//! the WeCom simulator, the seeded directory) driven by headless Chromium
//! through playwright-core (`host-test/browser/drive.mjs`):
//!
//! 1. desktop QR login of a bound member (张三 → `alice`);
//! 2. the login page with WeCom's login panel (the simulator's stand-in
//!    JS-SDK), in Chinese: 张三 logs in inside it, no CSP violation;
//! 3. the same in English; its button when the JS-SDK cannot load or is
//!    not the pinned one (Subresource Integrity);
//! 4. first in-client login with a WeCom User-Agent, straight into the
//!    in-client OAuth by auto-login (李四, bound to `bob` by mobile);
//! 5. a non-member (外部访客) refused with a 403 page and no session;
//! 6. logout: the cookie cleared, `/me` 401, the login page;
//! 7. a leaver: 李四 deleted in the simulated WeCom console, whose
//!    `delete_user` ends the session (`/me` 401).
//!
//! Each asserts the redirect chain, statuses, final URL, page text and
//! cookies, and leaves a screenshot of its final page in
//! `<target dir>/browser-artifacts/` (`qr-login.png`,
//! `login-panel-zh-signed-in.png`, `login-panel-en-signed-in.png`,
//! `login-panel-unreachable.png`, `login-panel-tampered.png`,
//! `in-client-auto-login.png`, `non-member.png`, `logout.png`, `leaver.png`,
//! `console-removed.png`), plus the
//! login panel in both languages (`login-panel-zh.png`, `login-panel-en.png`,
//! copied to `docs/images/`).
//!
//! Needs Debian's `chromium` (or `$CHROMIUM`), `node` and
//! `npm ci` in `host-test/browser`. Without them the test prints a loud
//! SKIPPED note and passes, unless `WECOM_AUTH_REQUIRE_BROWSER=1` (CI sets
//! it), which makes that a failure.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use host_test::demo::{Demo, DemoOptions};

/// Set to `1` (CI does) to make a missing browser setup a failure.
const REQUIRE_BROWSER_ENV: &str = "WECOM_AUTH_REQUIRE_BROWSER";
/// The whole script: four logins take a few seconds; Chromium's first start
/// on a cold 2-core machine can take much longer.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(180);

struct Setup {
    node: PathBuf,
    chromium: PathBuf,
    dir: PathBuf,
}

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("browser")
}

/// `<target dir>/browser-artifacts`, emptied of earlier screenshots.
fn artifacts_dir() -> anyhow::Result<PathBuf> {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .context("CARGO_TARGET_TMPDIR has a parent")?
        .join("browser-artifacts");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    for entry in std::fs::read_dir(&dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "png") {
            std::fs::remove_file(&path)?;
        }
    }
    Ok(dir)
}

/// What the test needs, or `None` (after a loud note) to skip.
fn setup() -> anyhow::Result<Option<Setup>> {
    let chromium =
        PathBuf::from(std::env::var_os("CHROMIUM").unwrap_or("/usr/bin/chromium".into()));
    let node = PathBuf::from(std::env::var_os("NODE").unwrap_or("node".into()));
    let dir = browser_dir();
    let mut missing = Vec::new();
    if !chromium.is_file() {
        missing.push(format!(
            "Chromium at {} (apt-get install -y chromium, or set CHROMIUM)",
            chromium.display()
        ));
    }
    let node_works = Command::new(&node)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !node_works {
        missing.push(format!(
            "Node.js 20+ as `{}` (apt-get install -y nodejs npm, or set NODE)",
            node.display()
        ));
    }
    if !dir
        .join("node_modules/playwright-core/package.json")
        .is_file()
    {
        missing.push(format!(
            "playwright-core in {}/node_modules (cd host-test/browser && npm ci)",
            dir.display()
        ));
    }
    if missing.is_empty() {
        return Ok(Some(Setup {
            node,
            chromium,
            dir,
        }));
    }
    host_test::missing_part(
        REQUIRE_BROWSER_ENV,
        "the demo is NOT tested in a real browser",
        &missing.join("; "),
    );
    Ok(None)
}

/// Runs the script to its end or the timeout (then kills it); returns whether
/// it succeeded, and everything it printed.
fn run_script(setup: &Setup, app: &str, simulator: &str, artifacts: &Path) -> (bool, String) {
    let spawned = Command::new(&setup.node)
        .arg("drive.mjs")
        .args([app, simulator])
        .arg(artifacts)
        .current_dir(&setup.dir)
        .env("CHROMIUM", &setup.chromium)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => return (false, format!("cannot start node: {e}")),
    };
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("piped stdout")));
    let stderr = drain(Box::new(child.stderr.take().expect("piped stderr")));
    let deadline = Instant::now() + SCRIPT_TIMEOUT;
    let verdict = loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => break Ok(()),
            Ok(Some(status)) => break Err(format!("the script failed: {status}")),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break Err(format!(
                    "the script did not finish in {SCRIPT_TIMEOUT:?}: killed"
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => break Err(format!("waiting for the script: {e}")),
        }
    };
    let mut output = stdout.join().unwrap_or_default();
    let errors = stderr.join().unwrap_or_default();
    if !errors.trim().is_empty() {
        output.push_str("--- stderr ---\n");
        output.push_str(&errors);
    }
    if let Err(why) = &verdict {
        output.push_str(why);
        output.push('\n');
    }
    (verdict.is_ok(), output)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_in_headless_chromium() -> anyhow::Result<()> {
    let Some(setup) = setup()? else {
        return Ok(());
    };
    let artifacts = artifacts_dir()?;
    let demo = Demo::start(DemoOptions::for_tests()).await?;
    let (app, simulator) = (demo.url(), demo.simulator.base_url());
    let started = Instant::now();
    // The demo serves on this runtime's workers while the script blocks one
    // of the blocking pool's threads.
    let (ok, output) =
        tokio::task::spawn_blocking(move || run_script(&setup, &app, &simulator, &artifacts))
            .await?;
    println!(
        "{output}(browser script: {:.1} s)",
        started.elapsed().as_secs_f64()
    );
    demo.gateway.shutdown().await;
    assert!(ok, "the browser test failed:\n{output}");
    Ok(())
}

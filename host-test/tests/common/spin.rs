//! A real Spin for the tests that run `spin up` (`spin.rs`: the project's
//! own spin.toml; `spin_app.rs`: the example app that composes the
//! component): finding `spin`, one `spin up` with its variables from
//! `SPIN_VARIABLE_*`, the sample authenticator's variables.

use std::net::SocketAddr;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use host_test::COMPONENT_PATH;
use wecom_simulator::SimulatorHandle;

use super::http::send;

/// Set to `1` to fail instead of skipping when `spin` is missing (CI).
pub const REQUIRE_SPIN_ENV: &str = "WECOM_AUTH_REQUIRE_SPIN";

const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// `spin` on `PATH`, or `None` after a note saying what is not tested
/// (`untested`, e.g. "the component is NOT tested in a real Spin"); a
/// failure when `WECOM_AUTH_REQUIRE_SPIN=1`.
pub fn spin(untested: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("spin"))
            .find(|path| path.is_file())
    });
    if found.is_none() {
        host_test::missing_part(
            REQUIRE_SPIN_ENV,
            untested,
            "`spin` on PATH (Spin 3.x, https://spinframework.dev)",
        );
    }
    found
}

/// The sample authenticator (`wecom_auth::example`) serving `origin`, with
/// every WeCom base at the simulator: the variables both manifests name.
pub fn wecom_variables(origin: &str, sim: &SimulatorHandle) -> Vec<(&'static str, String)> {
    let base = sim.base_url();
    let mut variables = wecom_auth::example::variables();
    for (name, value) in &mut variables {
        if *name == "origin" {
            *value = origin.to_owned();
        }
    }
    variables.extend([
        ("api_base", base.clone()),
        ("oauth_base", base.clone()),
        ("sso_base", base),
    ]);
    variables
}

/// The project's `spin.toml`, with `source` pointing at the component built
/// from this tree; everything else as shipped.
pub fn manifest(dir: &Path) -> PathBuf {
    let shipped = std::fs::read_to_string(Path::new(REPO).join("spin.toml")).unwrap();
    let source = "source = \"target/dist/wecom_auth.wasm\"";
    assert!(shipped.contains(source), "spin.toml's source moved");
    let manifest = shipped.replace(source, &format!("source = {COMPONENT_PATH:?}"));
    let path = dir.join("spin.toml");
    std::fs::write(&path, manifest).unwrap();
    path
}

/// `deploy/runtime-config.redis.toml` with the test's Redis URL.
pub fn redis_runtime_config(dir: &Path, url: &str) -> PathBuf {
    let shipped =
        std::fs::read_to_string(Path::new(REPO).join("deploy/runtime-config.redis.toml")).unwrap();
    let line = "url = \"redis://127.0.0.1:6379\"";
    assert!(shipped.contains(line), "the runtime config's URL moved");
    let path = dir.join("runtime-config.redis.toml");
    std::fs::write(&path, shipped.replace(line, &format!("url = {url:?}"))).unwrap();
    path
}

/// One `spin up`, stopped when dropped.
pub struct SpinUp {
    child: Child,
    pub addr: SocketAddr,
    /// From the start of `spin up` to its first answer.
    pub cold_start: Duration,
}

impl Drop for SpinUp {
    fn drop(&mut self) {
        self.kill();
    }
}

impl SpinUp {
    /// Kills `spin up` and the `spin trigger http` it runs as a child of
    /// its own (SIGKILL to the process group: nothing finishes; killing
    /// `spin up` alone left the trigger serving), and waits for it to go.
    pub fn kill(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// `spin up --from manifest` on `127.0.0.1:port`, run in `dir` (its
    /// `.spin/` state and `spin-<port>.log` land there), each of
    /// `variables` as `SPIN_VARIABLE_<NAME>`. Returns once `GET ready`
    /// answers 200.
    pub async fn start(
        spin: &Path,
        dir: &Path,
        manifest: &Path,
        port: u16,
        variables: &[(&str, String)],
        runtime_config: Option<&Path>,
        ready: &str,
    ) -> SpinUp {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let log = dir.join(format!("spin-{port}.log"));
        let mut command = Command::new(spin);
        command
            .current_dir(dir)
            .args(["up", "--from"])
            .arg(manifest)
            .args(["--listen", &addr.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(&log).unwrap()));
        if let Some(config) = runtime_config {
            command.arg("--runtime-config-file").arg(config);
        }
        for (name, value) in variables {
            command.env(
                format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase()),
                value,
            );
        }
        // A process group of its own, so that `kill` reaches the trigger.
        command.process_group(0);
        let started = Instant::now();
        let child = command.spawn().expect("spin up starts");
        let mut up = SpinUp {
            child,
            addr,
            cold_start: Duration::ZERO,
        };
        let deadline = started + Duration::from_secs(120);
        loop {
            if let Ok(reply) = send(addr, "GET", ready, &[], b"").await {
                assert_eq!(reply.status, 200, "{}", reply.body);
                up.cold_start = started.elapsed();
                return up;
            }
            if let Ok(Some(status)) = up.child.try_wait() {
                let log = std::fs::read_to_string(&log);
                panic!("spin up exited with {status}: {}", log.unwrap_or_default());
            }
            assert!(Instant::now() < deadline, "spin up never answered");
            // Often enough that the measured start is close to the real one.
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

//! Helpers for tests of gateways and backends: a throwaway directory and a real
//! `redis-server` on a free loopback port, both removed when dropped.

use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// Set to `1` (CI does) to make a missing `redis-server` a test failure
/// instead of a skip.
pub const REQUIRE_REDIS_ENV: &str = "WECOM_AUTH_REQUIRE_REDIS";

/// A fresh directory under the system temp dir, deleted on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(label: &str) -> std::io::Result<Self> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!(
            "wecom-auth-{label}-{}-{}-{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir)?;
        Ok(TempDir(dir))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A port nobody listens on right now.
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// A `redis-server` child process on `127.0.0.1:<port>`, killed on drop:
/// no persistence ([`RedisServer::start`]), or every write on disk before
/// it is acknowledged ([`RedisServer::start_durable`]), so it can be killed
/// and started again with its data.
#[derive(Debug)]
pub struct RedisServer {
    child: Child,
    port: u16,
    /// The append-only file's directory of a durable server.
    durable: Option<PathBuf>,
}

impl RedisServer {
    /// Starts one. `Ok(None)` when `redis-server` is not installed and
    /// `WECOM_AUTH_REQUIRE_REDIS=1` is not set (a loud note is printed: the
    /// caller skips); an error when it is set or the server does not come up.
    pub fn start() -> anyhow::Result<Option<Self>> {
        Self::start_in(None)
    }

    /// As [`RedisServer::start`], with an append-only file in `dir` synced
    /// at every write (`appendfsync always`, as a store of logins is run):
    /// [`RedisServer::kill`] then [`RedisServer::restart`] loses nothing
    /// acknowledged.
    pub fn start_durable(dir: &Path) -> anyhow::Result<Option<Self>> {
        Self::start_in(Some(dir.to_owned()))
    }

    fn spawn(port: u16, durable: Option<&Path>) -> std::io::Result<Child> {
        let mut command = Command::new("redis-server");
        command
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--daemonize", "no"]);
        match durable {
            Some(dir) => command
                .args(["--appendonly", "yes", "--appendfsync", "always", "--dir"])
                .arg(dir),
            None => command.args(["--appendonly", "no"]),
        };
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
    }

    /// Kills the server (SIGKILL: no shutdown save) and waits for it to go.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the server again on its port, with its data when durable.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        self.child = Self::spawn(self.port, self.durable.as_deref())?;
        self.wait_until_ready()
    }

    fn start_in(durable: Option<PathBuf>) -> anyhow::Result<Option<Self>> {
        let mut last_error = None;
        for _attempt in 0..5 {
            let port = free_port()?;
            let spawned = Self::spawn(port, durable.as_deref());
            let child = match spawned {
                Ok(child) => child,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    if std::env::var(REQUIRE_REDIS_ENV).as_deref() == Ok("1") {
                        anyhow::bail!(
                            "redis-server is not on PATH but {REQUIRE_REDIS_ENV}=1: \
                             install it (apt-get install -y redis-server)"
                        );
                    }
                    // Straight to the stderr handle: the test harness captures
                    // `eprintln!`, and this note must be seen.
                    let _ = writeln!(
                        std::io::stderr(),
                        "\n*** SKIPPED: redis-server is not on PATH, so the Redis backend \
                         is NOT tested. Install it (apt-get install -y redis-server) or set \
                         {REQUIRE_REDIS_ENV}=1 to make this a failure. ***\n"
                    );
                    return Ok(None);
                }
                Err(e) => return Err(e.into()),
            };
            let mut server = RedisServer {
                child,
                port,
                durable: durable.clone(),
            };
            match server.wait_until_ready() {
                Ok(()) => return Ok(Some(server)),
                // Most likely someone took the port between probe and bind: retry.
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("redis-server did not start")))
    }

    fn wait_until_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                anyhow::bail!("redis-server exited at start ({status})");
            }
            if let Ok(stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
                // Another test's server may have taken the port first: make
                // sure the one answering is ours.
                let pid = server_pid(stream)?;
                if pid == self.child.id() {
                    return Ok(());
                }
                anyhow::bail!("port {} is served by another redis-server", self.port);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        anyhow::bail!("redis-server did not listen on {addr} within 10 s")
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

/// The `process_id` of the Redis server behind `stream` (from `INFO server`).
fn server_pid(mut stream: TcpStream) -> anyhow::Result<u32> {
    use std::io::Read as _;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(b"*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n")?;
    let mut reply = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let read = stream.read(&mut chunk)?;
        if read == 0 {
            anyhow::bail!("redis-server closed the connection");
        }
        reply.extend_from_slice(&chunk[..read]);
        let text = String::from_utf8_lossy(&reply);
        // The whole line, up to its CRLF: a partial read may cut the number.
        if let Some(start) = text.find("process_id:")
            && let Some(end) = text[start..].find("\r\n")
        {
            return text[start + "process_id:".len()..start + end]
                .parse()
                .map_err(|_| anyhow::anyhow!("unreadable process_id in INFO server"));
        }
        if reply.len() > 1 << 16 {
            anyhow::bail!("no process_id in INFO server");
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

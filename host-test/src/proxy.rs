//! Real proxies in front of the gateway, for the tests and the benches: the
//! recipes in `deploy/` with their addresses swapped, and an app that echoes
//! what it receives.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpListener;

/// The repository's root (where `deploy/` is).
pub const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// `text` with each `from` (which must be there) replaced.
pub fn swap(text: &str, pairs: &[(&str, &str)]) -> String {
    pairs.iter().fold(text.to_owned(), |text, (from, to)| {
        assert!(text.contains(from), "the recipe lost {from:?}");
        text.replace(from, to)
    })
}

/// `deploy/nginx.conf` for `component` and `app`, listening on `port`, inside
/// a main config whose files all live in `dir` (run `nginx -p dir -c
/// dir/nginx.conf -e dir/error.log`).
pub fn write_nginx_config(dir: &Path, port: u16, component: SocketAddr, app: SocketAddr) {
    let recipe = std::fs::read_to_string(Path::new(REPO).join("deploy/nginx.conf")).unwrap();
    let site = swap(
        &recipe,
        &[
            ("server 127.0.0.1:3000;", &format!("server {component};")),
            ("server 127.0.0.1:8080;", &format!("server {app};")),
            ("listen 80;", &format!("listen 127.0.0.1:{port};")),
        ],
    );
    std::fs::write(dir.join("site.conf"), site).unwrap();
    let d = dir.display();
    let main = format!(
        "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\n\
         events {{ worker_connections 1024; }}\nhttp {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  \
         proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  \
         scgi_temp_path {d}/scgi;\n  include {d}/site.conf;\n}}\n"
    );
    std::fs::write(dir.join("nginx.conf"), main).unwrap();
}

/// Nginx on the config [`write_nginx_config`] wrote to `dir`.
pub fn spawn_nginx(binary: &Path, dir: &Path) -> std::io::Result<Child> {
    let d = dir.display();
    Command::new(binary)
        .args(["-p", &d.to_string(), "-c", &format!("{d}/nginx.conf")])
        .args(["-e", &format!("{d}/error.log")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
}

/// `deploy/Caddyfile` for `component` and `app` on `http://127.0.0.1:port`,
/// without an admin endpoint, written to `dir/Caddyfile`.
pub fn write_caddyfile(dir: &Path, port: u16, component: SocketAddr, app: SocketAddr) {
    let recipe = std::fs::read_to_string(Path::new(REPO).join("deploy/Caddyfile")).unwrap();
    let site = swap(
        &recipe,
        &[
            (
                "reverse_proxy 127.0.0.1:3000",
                &format!("reverse_proxy {component}"),
            ),
            (
                "forward_auth 127.0.0.1:3000",
                &format!("forward_auth {component}"),
            ),
            (
                "reverse_proxy 127.0.0.1:8080",
                &format!("reverse_proxy {app}"),
            ),
            ("apps.example.com {", &format!("http://127.0.0.1:{port} {{")),
        ],
    );
    std::fs::write(
        dir.join("Caddyfile"),
        format!("{{\n\tadmin off\n}}\n\n{site}"),
    )
    .unwrap();
}

/// Caddy on the Caddyfile [`write_caddyfile`] wrote to `dir`, its state and
/// log (`caddy.log`) there too.
pub fn spawn_caddy(binary: &Path, dir: &Path) -> std::io::Result<Child> {
    let log = std::fs::File::create(dir.join("caddy.log"))?;
    Command::new(binary)
        .args(["run", "--adapter", "caddyfile", "--config"])
        .arg(dir.join("Caddyfile"))
        .env("HOME", dir)
        .env("XDG_DATA_HOME", dir)
        .env("XDG_CONFIG_HOME", dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
}

/// An app that answers every request with what it received, as JSON
/// (`method`, `path`, `headers`: name → values). Serves until the runtime ends.
pub async fn echo_app() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let service = service_fn(
                    |request: hyper::Request<hyper::body::Incoming>| async move {
                        let headers: BTreeMap<String, Vec<String>> = request
                            .headers()
                            .keys()
                            .map(|name| {
                                let values = request
                                    .headers()
                                    .get_all(name)
                                    .iter()
                                    .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                                    .collect();
                                (name.to_string(), values)
                            })
                            .collect();
                        let body = json!({
                            "method": request.method().as_str(),
                            "path": request.uri().path_and_query().map(|p| p.as_str()),
                            "headers": headers,
                        });
                        let mut response =
                            hyper::Response::new(Full::new(Bytes::from(body.to_string())));
                        response.headers_mut().insert(
                            http::header::CONTENT_TYPE,
                            http::HeaderValue::from_static("application/json"),
                        );
                        Ok::<_, Infallible>(response)
                    },
                );
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

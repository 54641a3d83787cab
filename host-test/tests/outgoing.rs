//! The host's outgoing-HTTP hook: records every request, forwards routed hosts
//! over loopback, refuses the rest (tests never reach the internet).

use std::convert::Infallible;

use bytes::Bytes;
use host_test::outgoing::RecordingHooks;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use tokio::net::TcpListener;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::{Error, WasiHttpHooks};
use wecom_auth_gateway::routes::{Routes, body};

/// A loopback server that answers with what it received: method, path and query, Host, body.
async fn echo_server() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let service = service_fn(
                    |request: hyper::Request<hyper::body::Incoming>| async move {
                        let line = format!(
                            "{} {} host={}",
                            request.method(),
                            request.uri(),
                            request
                                .headers()
                                .get("host")
                                .and_then(|h| h.to_str().ok())
                                .unwrap_or("-")
                        );
                        let body = request.into_body().collect().await.unwrap().to_bytes();
                        let answer = format!("{line} body={}", String::from_utf8_lossy(&body));
                        Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from(answer))))
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

fn request(uri: &str, payload: &'static str) -> http::Request<wasmtime_wasi_http::WasiBody> {
    http::Request::builder()
        .method("POST")
        .uri(uri)
        .header("host", "qyapi.weixin.qq.com")
        .body(body(payload))
        .unwrap()
}

#[tokio::test]
async fn routed_requests_are_recorded_and_forwarded_to_loopback() {
    let addr = echo_server().await;
    let mut hooks = RecordingHooks {
        routes: Routes::new([(
            "qyapi.weixin.qq.com".to_owned(),
            addr.to_string().parse().unwrap(),
        )]),
        ..RecordingHooks::default()
    };
    let uri = "https://qyapi.weixin.qq.com/cgi-bin/auth/getuserdetail?access_token=T";
    let sent = hooks.send_request(
        request(uri, r#"{"user_ticket":"X"}"#),
        None,
        Box::new(async { Ok(()) }),
    );
    let (response, _io) = Box::into_pin(sent).await.unwrap();
    let answer = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(
        String::from_utf8_lossy(&answer),
        r#"POST /cgi-bin/auth/getuserdetail?access_token=T host=qyapi.weixin.qq.com body={"user_ticket":"X"}"#
    );
    let recorded = hooks.log.requests();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].method, "POST");
    assert_eq!(
        recorded[0].uri, uri,
        "the log keeps the URI the component asked for"
    );
    assert_eq!(recorded[0].body, br#"{"user_ticket":"X"}"#);
}

#[tokio::test]
async fn unrouted_hosts_are_refused_but_still_recorded() {
    let mut hooks = RecordingHooks::default();
    let sent = hooks.send_request(
        request("https://example.com/", "x"),
        None,
        Box::new(async { Ok(()) }),
    );
    let Err(error) = Box::into_pin(sent).await else {
        panic!("an unrouted host must be refused");
    };
    assert!(matches!(error, Error::HttpRequestDenied), "{error:?}");
    assert_eq!(hooks.log.requests().len(), 1);
}

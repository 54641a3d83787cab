//! One HTTP/1.1 request over a fresh connection, for the benches: the
//! status, `Location`, and each `Set-Cookie` as `name=value`.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;

/// What the benches read of an answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub location: Option<String>,
    /// `name=value` of each `Set-Cookie`.
    pub cookies: Vec<String>,
}

/// `method url` with a User-Agent and `headers`; the body is read and dropped.
pub async fn request(
    method: &str,
    url: &str,
    user_agent: &str,
    headers: &[(&str, &str)],
) -> anyhow::Result<Answer> {
    let uri: hyper::Uri = url.parse()?;
    let authority = uri
        .authority()
        .ok_or_else(|| anyhow::anyhow!("{url} is not absolute"))?
        .clone();
    let stream = tokio::net::TcpStream::connect(authority.as_str()).await?;
    let (mut sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let mut builder = hyper::Request::builder()
        .method(method)
        .uri(uri.path_and_query().map_or("/", |p| p.as_str()))
        .header("host", authority.as_str())
        .header("user-agent", user_agent);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let response = sender
        .send_request(builder.body(Empty::<Bytes>::new())?)
        .await?;
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let cookies = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or_default().to_owned())
        .collect();
    response.into_body().collect().await?;
    Ok(Answer {
        status,
        location,
        cookies,
    })
}

//! The simulated admin console (管理后台 → 通讯录) for demos: `GET /console`
//! lists each company's members, each with a button that deletes the member
//! (`POST /console/remove`, form field `userid`), which sends `delete_user`
//! to each app's callback URL as WeCom does ([`super::callbacks`]); the page
//! then says how each delivery went. Not a WeCom API: no counter, no fault.

use bytes::Bytes;
use http::{Method, StatusCode, header};
use http_body_util::Full;
use hyper::Response;

use super::callbacks;
use std::sync::{Mutex, PoisonError};

use super::state::State;
use super::urls::{Query, html_escape, percent_encode};

pub const CONSOLE_PATH: &str = "/console";
const REMOVE_PATH: &str = "/console/remove";

/// The console's answer to `method path`, if it is one of its routes.
pub(crate) async fn answer(
    state: &Mutex<State>,
    method: &Method,
    uri: &hyper::Uri,
    body: &Bytes,
) -> Option<Response<Full<Bytes>>> {
    match (method.as_str(), uri.path()) {
        ("GET", CONSOLE_PATH) => {
            let query = Query::parse(uri.query().unwrap_or_default());
            Some(html(StatusCode::OK, page(state, query.get("done"))))
        }
        ("POST", REMOVE_PATH) => {
            let form = Query::parse(std::str::from_utf8(body).unwrap_or_default());
            let userid = form.get("userid").unwrap_or_default().to_owned();
            let deliveries = callbacks::remove_member(state, &userid).await;
            let done = if deliveries.is_empty() {
                format!("{userid} removed; no app has a callback URL")
            } else {
                let each: Vec<String> = deliveries
                    .iter()
                    .map(|d| match d.status {
                        Some(status) => format!(
                            "app {}: HTTP {status} in {:.1} ms",
                            d.agent_id,
                            d.elapsed.as_secs_f64() * 1000.0
                        ),
                        None => format!("app {}: no answer after {} tries", d.agent_id, d.attempts),
                    })
                    .collect();
                format!("{userid} removed; delete_user sent ({})", each.join("; "))
            };
            let location = format!("{CONSOLE_PATH}?done={}", percent_encode(&done));
            let mut reply = html(StatusCode::SEE_OTHER, String::new());
            if let Ok(value) = http::HeaderValue::from_str(&location) {
                reply.headers_mut().insert(header::LOCATION, value);
            }
            Some(reply)
        }
        _ => None,
    }
}

fn page(state: &Mutex<State>, done: Option<&str>) -> String {
    let model = state
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .model
        .clone();
    let mut html = String::from(
        "<!DOCTYPE html>\n<html lang=\"zh\"><head><meta charset=\"utf-8\"><title>企业微信 · 管理后台（模拟）</title></head>\n<body>\n\
         <h1>通讯录 / Contacts (simulated console)</h1>\n",
    );
    if let Some(done) = done {
        html.push_str(&format!(
            "<p id=\"done\"><b>{}</b></p>\n",
            html_escape(done)
        ));
    }
    for corp in &model.corps {
        html.push_str(&format!(
            "<h2>{} ({})</h2>\n<ul>\n",
            html_escape(&corp.name),
            html_escape(&corp.corp_id)
        ));
        for member in &corp.members {
            html.push_str(&format!(
                "<li>{} ({}) <form method=\"post\" action=\"{REMOVE_PATH}\" style=\"display:inline\">\
                 <input type=\"hidden\" name=\"userid\" value=\"{}\"><button>删除 / Remove</button></form></li>\n",
                html_escape(&member.name),
                html_escape(&member.userid),
                html_escape(&member.userid),
            ));
        }
        html.push_str("</ul>\n");
    }
    html.push_str("</body></html>\n");
    html
}

fn html(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut reply = Response::new(Full::new(Bytes::from(body)));
    *reply.status_mut() = status;
    reply.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    reply
}

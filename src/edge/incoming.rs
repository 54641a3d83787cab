//! `wasi:http/incoming-handler`: the HTTP front (being built).

use super::Component;
use super::exports::wasi::http::incoming_handler::Guest;
use super::wasi::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

impl Guest for Component {
    fn handle(_request: IncomingRequest, response_out: ResponseOutparam) {
        let headers = Fields::from_list(&[("content-type".to_owned(), b"text/plain".to_vec())])
            .expect("static headers are valid");
        let response = OutgoingResponse::new(headers);
        let _ = response.set_status_code(404);
        let body = response.body().expect("a new response has a body");
        ResponseOutparam::set(response_out, Ok(response));
        if let Ok(stream) = body.write() {
            let _ = stream.blocking_write_and_flush(b"not found\n");
        }
        let _ = OutgoingBody::finish(body, None);
    }
}

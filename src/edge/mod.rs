//! The WIT edge: exports `wecom:auth/login` and `wasi:http/incoming-handler`,
//! implements the core's ports over WASI (key-value, outgoing HTTP), and reads
//! the clock and randomness. Nothing here decides anything.

mod convert;
mod http_client;
mod incoming;
mod keyvalue;

use crate::core::browser;
use crate::core::directory;
use crate::core::login::{self, AuthError, AuthorizeRequest, CallbackRequest};
use crate::core::settings;
use crate::core::state::RANDOM_BYTES;

use http_client::WasiTransport;
use keyvalue::WasiKv;

wit_bindgen::generate!({
    world: "wecom-auth",
    path: "wit",
    generate_all,
});

use exports::wecom::auth::login as wit;

struct Component;

export!(Component);

type WitResult<T> = Result<T, wit::AuthError>;

impl wit::Guest for Component {
    fn detect_wecom_browser(user_agent: String) -> wit::BrowserInfo {
        browser::detect(&user_agent).into()
    }

    fn authorize_url(
        settings: wit::Settings,
        request: wit::AuthorizeRequest,
    ) -> WitResult<wit::Authorization> {
        let authenticator = login::checked(&settings.into())?;
        let request = AuthorizeRequest {
            user_agent: request.user_agent,
            return_to: request.return_to,
            force_flow: request.force_flow.map(Into::into),
            language: request.language.map(Into::into),
        };
        Ok(login::authorize(&authenticator, &request, now_seconds(), &random_bytes())?.into())
    }

    fn handle_callback(
        settings: wit::Settings,
        request: wit::CallbackRequest,
    ) -> WitResult<wit::LoginSuccess> {
        let authenticator = login::checked(&settings.into())?;
        let request = CallbackRequest {
            code: request.code,
            state: request.state,
            pre_auth_cookie: request.pre_auth_cookie,
            user_agent: request.user_agent,
        };
        let kv = WasiKv::open().map_err(AuthError::from)?;
        let success =
            login::complete_callback(&authenticator, &request, now_seconds(), &WasiTransport, &kv)?;
        Ok(success.into())
    }

    fn verify_session(settings: wit::Settings, token: String) -> WitResult<wit::Session> {
        let authenticator = login::checked(&settings.into())?;
        let kv = WasiKv::open().map_err(AuthError::from)?;
        Ok(login::verify_session(&authenticator, &token, now_seconds(), &kv)?.into())
    }

    fn upsert_user(input: wit::UserInput) -> WitResult<wit::User> {
        let kv = WasiKv::open().map_err(AuthError::from)?;
        Ok(directory::upsert(&kv, &input.into(), now_seconds(), &random_array())?.into())
    }

    fn find_user(query: wit::UserQuery) -> WitResult<Option<wit::User>> {
        let kv = WasiKv::open().map_err(AuthError::from)?;
        Ok(directory::find(&kv, &query.into())?.map(Into::into))
    }

    fn list_users(cursor: Option<String>, limit: u32) -> WitResult<wit::UserPage> {
        let kv = WasiKv::open().map_err(AuthError::from)?;
        Ok(directory::list(&kv, cursor.as_deref(), limit)?.into())
    }

    fn delete_user(id: String) -> WitResult<bool> {
        let kv = WasiKv::open().map_err(AuthError::from)?;
        Ok(directory::delete(&kv, &id)?)
    }

    fn unbind(binding: wit::Binding) -> WitResult<bool> {
        let kv = WasiKv::open().map_err(AuthError::from)?;
        Ok(directory::unbind(&kv, &binding.into(), now_seconds())?)
    }

    fn homepage_links(settings: wit::Settings) -> WitResult<wit::ConsoleLinks> {
        let authenticator = login::checked(&settings.into())?;
        Ok(login::homepage_links(&authenticator).into())
    }

    fn validate_settings(
        authenticators: Vec<wit::Settings>,
    ) -> Result<(), Vec<wit::SettingsError>> {
        let all: Vec<settings::Settings> = authenticators.into_iter().map(Into::into).collect();
        settings::check_all(&all)
            .map(drop)
            .map_err(|errors| errors.into_iter().map(Into::into).collect())
    }
}

fn now_seconds() -> u64 {
    wasi::clocks::wall_clock::now().seconds
}

fn random_bytes() -> [u8; RANDOM_BYTES] {
    random_array()
}

/// `N` bytes from `wasi:random`. WASI promises exactly the length asked for;
/// a host that breaks that promise must not get predictable ids: trap instead.
fn random_array<const N: usize>() -> [u8; N] {
    wasi::random::random::get_random_bytes(N as u64)
        .try_into()
        .expect("wasi:random/get-random-bytes returned a different length than asked for")
}

//! The typed exports `wecom:auth/login`: WIT types converted to the core's
//! and back around one core call each.

use super::bindings::Component;
use super::bindings::exports::wecom::auth::login as wit;
use super::environment::{now_seconds, random_array, random_bytes};
use super::http_client::WasiTransport;
use super::keyvalue::WasiKv;
use crate::core::browser;
use crate::core::contact_changes::LeaverAction;
use crate::core::directory;
use crate::core::error::AuthError;
use crate::core::flow::InClientScope;
use crate::core::login::{self, AuthorizeRequest, CallbackRequest};
use crate::core::ports::Transport;
use crate::core::settings::{self, Authenticator};
use crate::core::setup;
use crate::core::sync;

type WitResult<T> = Result<T, wit::AuthError>;

/// The transport as the core takes it everywhere (see `Transport for &T`).
const TRANSPORT: &dyn Transport = &WasiTransport;

/// One authenticator checked for a single call: the first problem is the error.
fn checked(settings: wit::Settings) -> Result<Authenticator, AuthError> {
    Ok(settings::Settings::from(settings).check()?)
}

impl wit::Guest for Component {
    fn detect_wecom_browser(user_agent: String) -> wit::BrowserInfo {
        browser::detect(&user_agent).into()
    }

    fn authorize_url(
        settings: wit::Settings,
        request: wit::AuthorizeRequest,
    ) -> WitResult<wit::Authorization> {
        let authenticator = checked(settings)?;
        let request = AuthorizeRequest {
            user_agent: request.user_agent,
            return_to: request.return_to,
            force_flow: request.force_flow.map(Into::into),
            language: request.language.map(Into::into),
            pre_auth_cookie: request.pre_auth_cookie,
            restarted: false,
            // No second round here: the consent is asked at once.
            scope: InClientScope::PrivateInfo,
        };
        Ok(login::authorize(&authenticator, &request, now_seconds(), &random_bytes())?.into())
    }

    fn handle_callback(
        settings: wit::Settings,
        request: wit::CallbackRequest,
    ) -> WitResult<wit::LoginSuccess> {
        let authenticator = checked(settings)?;
        let request = CallbackRequest {
            code: request.code,
            state: request.state,
            pre_auth_cookie: request.pre_auth_cookie,
            user_agent: request.user_agent,
        };
        let now = now_seconds();
        let callback = login::verify_callback(&authenticator, &request, now)?;
        let kv = WasiKv::open().map_err(AuthError::from)?;
        let success = login::complete_callback(
            &authenticator,
            &callback,
            now,
            &TRANSPORT,
            &kv,
            login::ProfileRefresh::Now,
        )?;
        Ok(success.into())
    }

    fn verify_session(settings: wit::Settings, token: String) -> WitResult<wit::Session> {
        let authenticator = checked(settings)?;
        let kv = WasiKv::open().map_err(AuthError::from)?;
        let now = now_seconds();
        let session = login::verify_session(&authenticator, &token, now, &kv)?;
        let admitted = login::admit_session(&authenticator, session, &[], now, &TRANSPORT, &kv)?;
        Ok(admitted.into())
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
        let authenticator = checked(settings)?;
        Ok(login::homepage_links(&authenticator).into())
    }

    fn check_setup(settings: wit::Settings) -> WitResult<wit::SetupReport> {
        let authenticator = checked(settings)?;
        let kv = WasiKv::open().map_err(AuthError::from)?;
        let report = setup::check(&authenticator, &TRANSPORT, &kv, now_seconds());
        Ok(report.into())
    }

    fn sync_directory(
        settings: wit::Settings,
        options: wit::SyncOptions,
    ) -> WitResult<wit::SyncReport> {
        let authenticator = checked(settings)?;
        let kv = WasiKv::open().map_err(AuthError::from)?;
        let options = sync::SyncOptions {
            leaver: match options.leaver {
                wit::LeaverAction::Keep => LeaverAction::Keep,
                wit::LeaverAction::Unbind => LeaverAction::Unbind,
                wit::LeaverAction::Disable => LeaverAction::Disable,
            },
            force: options.force,
        };
        let report = sync::sync_directory(&authenticator, options, now_seconds(), &TRANSPORT, &kv)?;
        Ok(report.into())
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

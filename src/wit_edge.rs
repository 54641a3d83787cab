//! The WIT edge: exports `wecom:auth/login` and maps between the generated WIT
//! types and the core's. Time and randomness come from WASI here, nowhere else.

use crate::core::browser::{self, BrowserInfo, ClientKind, Language, Platform};
use crate::core::cookie::Cookie;
use crate::core::login::{
    self, AuthError, Authorization, AuthorizeRequest, CallbackRequest, ConsoleLinks, LoginFlow,
};
use crate::core::settings::{self, Secret, SettingsError, SigningKey};
use crate::core::state::{RANDOM_BYTES, StateRejection};

wit_bindgen::generate!({
    world: "wecom-auth",
    path: "wit",
    generate_all,
});

use exports::wecom::auth::login as wit;

struct Component;

export!(Component);

impl wit::Guest for Component {
    fn detect_wecom_browser(user_agent: String) -> wit::BrowserInfo {
        browser::detect(&user_agent).into()
    }

    fn authorize_url(
        settings: wit::Settings,
        request: wit::AuthorizeRequest,
    ) -> Result<wit::Authorization, wit::AuthError> {
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
    ) -> Result<wit::LoginSuccess, wit::AuthError> {
        let authenticator = login::checked(&settings.into())?;
        let request = CallbackRequest {
            code: request.code,
            state: request.state,
            pre_auth_cookie: request.pre_auth_cookie,
            user_agent: request.user_agent,
        };
        login::verify_callback(&authenticator, &request, now_seconds())?;
        Err(AuthError::Unsupported(
            "the state verified, but this build does not yet exchange the code with WeCom".into(),
        )
        .into())
    }

    fn homepage_links(settings: wit::Settings) -> Result<wit::ConsoleLinks, wit::AuthError> {
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
    // WASI promises exactly the length asked for. A host that breaks that
    // promise must not get predictable cookies: trap instead.
    wasi::random::random::get_random_bytes(RANDOM_BYTES as u64)
        .try_into()
        .expect("wasi:random/get-random-bytes returned a different length than asked for")
}

impl From<wit::Settings> for settings::Settings {
    fn from(s: wit::Settings) -> Self {
        settings::Settings {
            name: s.name,
            corp_id: s.corp_id,
            agent_id: s.agent_id,
            secret: Secret::new(s.secret),
            origin: s.origin,
            redirect_path: s.redirect_path,
            auto_login: s.auto_login,
            auto_signup: s.auto_signup,
            api_base: s.api_base,
            oauth_base: s.oauth_base,
            sso_base: s.sso_base,
            signing_keys: s
                .signing_keys
                .into_iter()
                .map(|k| SigningKey {
                    id: k.id,
                    secret: Secret::new(k.secret),
                })
                .collect(),
            session_lifetime_seconds: s.session_lifetime_seconds,
            state_lifetime_seconds: s.state_lifetime_seconds,
            route_prefix: s.route_prefix,
        }
    }
}

impl From<BrowserInfo> for wit::BrowserInfo {
    fn from(info: BrowserInfo) -> Self {
        wit::BrowserInfo {
            client: match info.client {
                ClientKind::WecomMobile => wit::ClientKind::WecomMobile,
                ClientKind::WecomDesktop => wit::ClientKind::WecomDesktop,
                ClientKind::Wechat => wit::ClientKind::Wechat,
                ClientKind::Browser => wit::ClientKind::Browser,
            },
            platform: match info.platform {
                Platform::Ios => wit::Platform::Ios,
                Platform::Android => wit::Platform::Android,
                Platform::Harmony => wit::Platform::Harmony,
                Platform::Windows => wit::Platform::Windows,
                Platform::Macos => wit::Platform::Macos,
                Platform::Linux => wit::Platform::Linux,
                Platform::Unknown => wit::Platform::Unknown,
            },
            wecom_version: info.wecom_version,
            private_deployment: info.private_deployment,
            language: info.language.map(Into::into),
        }
    }
}

impl From<Language> for wit::Language {
    fn from(language: Language) -> Self {
        match language {
            Language::Zh => wit::Language::Zh,
            Language::En => wit::Language::En,
        }
    }
}

impl From<wit::Language> for Language {
    fn from(language: wit::Language) -> Self {
        match language {
            wit::Language::Zh => Language::Zh,
            wit::Language::En => Language::En,
        }
    }
}

impl From<LoginFlow> for wit::LoginFlow {
    fn from(flow: LoginFlow) -> Self {
        match flow {
            LoginFlow::InClient => wit::LoginFlow::InClient,
            LoginFlow::Web => wit::LoginFlow::Web,
        }
    }
}

impl From<wit::LoginFlow> for LoginFlow {
    fn from(flow: wit::LoginFlow) -> Self {
        match flow {
            wit::LoginFlow::InClient => LoginFlow::InClient,
            wit::LoginFlow::Web => LoginFlow::Web,
        }
    }
}

impl From<Cookie> for wit::Cookie {
    fn from(c: Cookie) -> Self {
        wit::Cookie {
            name: c.name,
            value: c.value,
            max_age_seconds: c.max_age_seconds,
            set_cookie: c.set_cookie,
        }
    }
}

impl From<Authorization> for wit::Authorization {
    fn from(a: Authorization) -> Self {
        wit::Authorization {
            url: a.url,
            flow: a.flow.into(),
            pre_auth_cookie: a.pre_auth_cookie.into(),
            return_to: a.return_to,
        }
    }
}

impl From<ConsoleLinks> for wit::ConsoleLinks {
    fn from(links: ConsoleLinks) -> Self {
        wit::ConsoleLinks {
            callback_url: links.callback_url,
            desktop_homepage: links.desktop_homepage,
            mobile_homepage: links.mobile_homepage,
            plain_homepage: links.plain_homepage,
        }
    }
}

impl From<SettingsError> for wit::SettingsError {
    fn from(e: SettingsError) -> Self {
        wit::SettingsError {
            authenticator: e.authenticator,
            field: e.field,
            message: e.message,
        }
    }
}

impl From<StateRejection> for wit::StateRejection {
    fn from(rejection: StateRejection) -> Self {
        match rejection {
            StateRejection::MissingCookie => wit::StateRejection::MissingCookie,
            StateRejection::Malformed => wit::StateRejection::Malformed,
            StateRejection::WrongAuthenticator => wit::StateRejection::WrongAuthenticator,
            StateRejection::BadSignature => wit::StateRejection::BadSignature,
            StateRejection::Expired => wit::StateRejection::Expired,
            StateRejection::AlreadyUsed => wit::StateRejection::AlreadyUsed,
        }
    }
}

impl From<AuthError> for wit::AuthError {
    fn from(error: AuthError) -> Self {
        match error {
            AuthError::InvalidSettings(e) => wit::AuthError::InvalidSettings(e.into()),
            AuthError::BadRequest { field, message } => {
                wit::AuthError::BadRequest(wit::RequestError {
                    field: field.into(),
                    message,
                })
            }
            AuthError::StateRejected(r) => wit::AuthError::StateRejected(r.into()),
            AuthError::Wecom(e) => wit::AuthError::Wecom(wit::WecomError {
                errcode: e.errcode,
                errmsg: e.errmsg,
                hint: e.hint,
            }),
            AuthError::WecomUnavailable(why) => wit::AuthError::WecomUnavailable(why),
            AuthError::Unsupported(what) => wit::AuthError::Unsupported(what),
        }
    }
}

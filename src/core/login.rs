//! The login flow on top of settings, browser detection, state, URLs, the
//! WeCom API and the directory: what the exported functions do, minus the WIT
//! types and WASI calls.

use super::access::{Group, GroupKinds, Rules};
use super::browser::{self, Language, MAX_USER_AGENT};
use super::cookie::{Cookie, pre_auth_cookie, pre_auth_cookie_after, session_cookie};
use super::directory::{self, Binding, MatchPolicy, Outcome, Profile, User};
use super::error::{AuthError, Category};
use super::facts;
use super::flow::{InClientScope, LoginFlow};
use super::mobile;
use super::ports::{KeyValue, Transport};
use super::session;
use super::settings::Authenticator;
use super::state::{
    self, MAX_PRE_AUTH_COOKIE, MAX_STATE, RANDOM_BYTES, StateRejection, VerifiedState,
};
use super::urls;
use super::used_states::{self, Claim, FinishedLogin};
use super::wecom::WecomApi;

/// How long after a finished login a second opening of its callback gets
/// the login again (WeCom clients open it twice, at once).
pub const REPEAT_WINDOW_SECONDS: u64 = 60;

/// WeCom codes are at most 512 bytes.
pub const MAX_CODE: usize = 512;

#[derive(Debug, Clone, Default)]
pub struct AuthorizeRequest {
    pub user_agent: String,
    pub return_to: Option<String>,
    pub force_flow: Option<LoginFlow>,
    pub language: Option<Language>,
    /// The browser's pre-auth cookie, if any: the logins in flight in it stay
    /// valid beside this one.
    pub pre_auth_cookie: Option<String>,
    /// A silent restart of an in-client login whose cookie was lost.
    pub restarted: bool,
    /// What an in-client login asks WeCom for: the HTTP front starts with
    /// the silent `snsapi_base`; the typed API (no second round) with
    /// `snsapi_privateinfo`, the default.
    pub scope: InClientScope,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub url: String,
    /// The `state` in `url`, for a page that starts the login itself (WeCom's
    /// login panel, [`urls::login_panel_params`]).
    pub state: String,
    pub flow: LoginFlow,
    pub pre_auth_cookie: Cookie,
    pub return_to: String,
}

/// Starts a login: in-client OAuth inside WeCom, web login elsewhere, unless forced.
pub fn authorize(
    authenticator: &Authenticator,
    request: &AuthorizeRequest,
    now: u64,
    random: &[u8; RANDOM_BYTES],
) -> Result<Authorization, AuthError> {
    bounded("user-agent", &request.user_agent, MAX_USER_AGENT)?;
    let browser = browser::detect(&request.user_agent);
    let flow = request
        .force_flow
        .unwrap_or_else(|| LoginFlow::for_browser(&browser));
    let return_to = authenticator
        .landing()
        .resolve(request.return_to.as_deref());
    let in_flight = request
        .pre_auth_cookie
        .as_deref()
        .filter(|cookie| cookie.len() <= MAX_PRE_AUTH_COOKIE);
    let attempt = state::Attempt {
        return_to: &return_to,
        flow,
        scope: request.scope,
        restarted: request.restarted,
        in_flight,
    };
    let issued = state::issue(authenticator, &attempt, now, random);
    let url = match flow {
        LoginFlow::InClient => {
            urls::in_client_oauth_url(authenticator, &issued.state, request.scope)
        }
        LoginFlow::Web => urls::web_login_url(
            authenticator,
            &issued.state,
            request.language.or(browser.language),
        ),
    };
    let pre_auth_cookie = pre_auth_cookie(authenticator, issued.pre_auth_cookie);
    Ok(Authorization {
        url,
        state: issued.state,
        flow,
        pre_auth_cookie,
        return_to,
    })
}

#[derive(Debug, Clone, Default)]
pub struct CallbackRequest {
    pub code: String,
    pub state: String,
    pub pre_auth_cookie: Option<String>,
    pub user_agent: String,
}

/// The first step of a callback: bounded inputs and a state that verifies
/// against this browser's pre-auth cookie.
pub fn verify_callback(
    authenticator: &Authenticator,
    request: &CallbackRequest,
    now: u64,
) -> Result<VerifiedCallback, AuthError> {
    bounded("code", &request.code, MAX_CODE)?;
    if request.code.is_empty() {
        return Err(AuthError::BadRequest {
            field: "code",
            message: "is missing: WeCom did not return a code (the member may have cancelled)"
                .into(),
        });
    }
    if !request.code.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(AuthError::BadRequest {
            field: "code",
            message: "holds characters no WeCom code has".into(),
        });
    }
    bounded("state", &request.state, MAX_STATE)?;
    bounded("user-agent", &request.user_agent, MAX_USER_AGENT)?;
    if let Some(cookie) = &request.pre_auth_cookie {
        bounded("pre-auth-cookie", cookie, MAX_PRE_AUTH_COOKIE)?;
    }
    let state = state::verify(
        authenticator,
        &request.state,
        request.pre_auth_cookie.as_deref(),
        now,
    )
    .map_err(AuthError::StateRejected)?;
    Ok(VerifiedCallback {
        code: request.code.clone(),
        state,
    })
}

/// A callback whose inputs are bounded and whose state verified against
/// this browser's pre-auth cookie: what [`complete_callback`] takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedCallback {
    /// WeCom's code, not yet exchanged.
    pub code: String,
    pub state: VerifiedState,
}

/// The member as WeCom described them at this login.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Member {
    pub wecom_userid: String,
    pub name: String,
    pub mobile: Option<String>,
    pub email: Option<String>,
    pub avatar: Option<String>,
    pub gender: Option<String>,
    /// The departments `user/get` gave, when this login called it (for the
    /// access rules' facts); None otherwise.
    pub departments: Option<Vec<u32>>,
}

impl Member {
    /// Member `wecom_userid` as the directory last stored its user: for a
    /// login answered without asking WeCom for the profile.
    fn as_stored(wecom_userid: &str, user: &User) -> Member {
        Member {
            wecom_userid: wecom_userid.to_owned(),
            name: user.name.clone(),
            mobile: user.mobile.clone(),
            email: user.email.clone(),
            avatar: user.avatar.clone(),
            gender: None,
            departments: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginSuccess {
    pub authenticator: String,
    pub user: User,
    pub member: Member,
    pub outcome: Outcome,
    pub session_cookie: Cookie,
    /// The pre-auth cookie to set now: the logins still in flight in this
    /// browser, or cleared when there are none.
    pub cleared_pre_auth_cookie: Cookie,
    pub redirect_to: String,
    /// What to fetch from WeCom once the answer is sent
    /// ([`ProfileRefresh::AfterAnswer`]): the profile of a returning member.
    pub pending_refresh: Option<PendingRefresh>,
}

/// When a returning member's profile is refreshed from WeCom.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProfileRefresh {
    /// Before answering: the answer carries the fresh profile (the typed
    /// `handle-callback`).
    Now,
    /// After answering, for a member already bound to a user: the login
    /// waits for `auth/getuserinfo` only (1 round trip on every flow), and
    /// [`LoginSuccess::pending_refresh`] says what to fetch once the answer
    /// is sent ([`refresh_profile`]). The HTTP front does this.
    AfterAnswer,
}

/// The profile fetch a login answered without: for [`refresh_profile`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRefresh {
    binding: Binding,
    /// The user the early session was issued for.
    user_id: String,
    user_ticket: Option<String>,
    in_client: bool,
}

impl PendingRefresh {
    /// The member's WeCom userid.
    pub fn wecom_userid(&self) -> &str {
        &self.binding.wecom_userid
    }
}

/// The rest of a verified callback: the state used once, the code exchanged
/// with WeCom, the member matched to a user, a session issued.
///
/// WeCom calls with a warm token: web (QR) login 1 (`auth/getuserinfo`);
/// in-client login with `snsapi_privateinfo` 3 (`+ auth/getuserdetail` with
/// the ticket and `user/get` for the name, in flight together: 2 round
/// trips), or for a member already bound with [`ProfileRefresh::AfterAnswer`]
/// 1 before the answer and 1 or 2 after (`user/get`, and `getuserdetail`
/// when a ticket came). A silent (`snsapi_base`) login of a member not
/// bound yet makes 2 (`auth/getuserinfo`, `user/get` for the visible range
/// and the rules) and answers [`AuthError::ConsentNeeded`]. Nothing is
/// written before every WeCom answer the login waits for is in.
pub fn complete_callback(
    authenticator: &Authenticator,
    callback: &VerifiedCallback,
    now: u64,
    transport: &impl Transport,
    kv: &impl KeyValue,
    refresh: ProfileRefresh,
) -> Result<LoginSuccess, AuthError> {
    let verified = &callback.state;
    match used_states::claim(kv, verified)? {
        Claim::Fresh => {}
        // WeCom clients are known to open the callback twice. The same browser
        // (the state verified against its cookie) gets the finished login again.
        Claim::Finished(finished) => {
            return repeat_finished_login(authenticator, verified, &finished, now, kv);
        }
        // A silent login that sent the member to the consent: WeCom's second
        // opening of its callback goes there too, not to an error page.
        Claim::ConsentAsked => return Err(AuthError::ConsentNeeded),
        Claim::Used => return Err(AuthError::StateRejected(StateRejection::AlreadyUsed)),
    }
    let api = WecomApi {
        authenticator,
        transport,
        kv,
        now,
    };
    let identity = api.user_info(&callback.code)?;
    let binding = Binding {
        authenticator: authenticator.name.clone(),
        wecom_userid: identity.userid.clone(),
    };
    let in_client = verified.flow == LoginFlow::InClient;
    let wants_profile = in_client || identity.user_ticket.is_some();
    // A member WeCom refused at a recent refresh waits for the profile, so
    // the refusal shows (403) instead of a session that ends at once.
    let early = refresh == ProfileRefresh::AfterAnswer
        && wants_profile
        && !directory::recently_denied(kv, &binding, now);
    // A silent login yields the userid only.
    let silent =
        in_client && verified.scope == InClientScope::Base && identity.user_ticket.is_none();
    // The binding, read once for both.
    let bound = if early || silent {
        directory::find_by_binding(kv, &binding)?
    } else {
        None
    };
    let bound = match bound {
        Some(user) if user.disabled => return Err(AuthError::UserDisabled),
        Some(user) if early => {
            // The rules on the facts known (cached, else fetched now).
            let access = &authenticator.access;
            facts::admit(
                &api,
                access,
                &[],
                GroupKinds::default(),
                &identity.userid,
                None,
            )?;
            let member = Member::as_stored(&identity.userid, &user);
            let pending = PendingRefresh {
                binding,
                user_id: user.id.clone(),
                user_ticket: identity.user_ticket,
                in_client,
            };
            let mut success = finish_login(
                authenticator,
                verified,
                user,
                member,
                Outcome::Existing,
                now,
                kv,
            );
            success.pending_refresh = Some(pending);
            return Ok(success);
        }
        bound => bound.is_some(),
    };
    // A member not bound yet is matched (or signed up) by the mobile, which
    // a silent login does not yield: it needs their consent. The state is
    // spent; the front starts the login again with it.
    if silent && !bound {
        // Not for a member who would be refused: the visible range
        // (`user/get` answers 60011 outside it) and the access rules first,
        // so no private data is asked for a login that cannot finish.
        let (member, _) = fetch_member(&api, &identity.userid, None, true)?;
        let access = &authenticator.access;
        let none = GroupKinds::default();
        facts::admit(
            &api,
            access,
            &[],
            none,
            &identity.userid,
            member.departments,
        )?;
        // Losing this costs a second opening of the callback an error page.
        let _ = used_states::consent_asked(kv, verified);
        return Err(AuthError::ConsentNeeded);
    }
    let (mut member, name) = fetch_member(
        &api,
        &identity.userid,
        identity.user_ticket.as_deref(),
        in_client,
    )?;
    // The rules before anything is written: a refused member gets no user
    // and no binding. Departments just read are kept for the groups too.
    let access = &authenticator.access;
    let departments = member.departments.clone();
    let userid = &identity.userid;
    facts::admit(
        &api,
        access,
        &[],
        GroupKinds::default(),
        userid,
        departments,
    )?;
    if let Some(departments) = member.departments.clone()
        && access.groups.any()
        && !access.rules.needs_departments()
    {
        facts::record_departments(&api, userid, departments)?;
    }
    let profile = Profile {
        name: name.clone(),
        mobile: member.mobile.clone(),
        email: member.email.clone(),
        avatar: member.avatar.clone(),
    };
    let policy = MatchPolicy {
        auto_signup: authenticator.auto_signup,
        web_login: verified.flow == LoginFlow::Web,
    };
    let (user, outcome) = directory::resolve_login(kv, &binding, &profile, policy, now)?;
    // WeCom let the member in and the login reached a user: a refusal or a
    // leaving remembered of them is over.
    directory::clear_denied(kv, &binding);
    member.name = name.unwrap_or_else(|| user.name.clone());
    Ok(finish_login(
        authenticator,
        verified,
        user,
        member,
        outcome,
        now,
        kv,
    ))
}

/// What WeCom tells of a member beyond the userid: `auth/getuserdetail`
/// with a ticket, `user/get` inside the client (the name), in flight
/// together when both are wanted, each error as if alone. Answers the
/// member and the name WeCom gave.
fn fetch_member<T: Transport, K: KeyValue>(
    api: &WecomApi<'_, T, K>,
    userid: &str,
    user_ticket: Option<&str>,
    in_client: bool,
) -> Result<(Member, Option<String>), AuthError> {
    let (detail, profile) = match (user_ticket, in_client) {
        (Some(ticket), true) => match api.user_detail_and_profile(ticket, userid) {
            // A refusal of the member decides, whichever call met it.
            (_, Err(e)) | (Err(e), _) if e.category() == Category::AccessDenied => return Err(e),
            (detail, profile) => (Some(detail?), Some(profile?)),
        },
        (Some(ticket), false) => (Some(api.user_detail(ticket)?), None),
        (None, true) => (None, Some(api.user(userid)?)),
        (None, false) => (None, None),
    };
    let mut member = Member {
        wecom_userid: userid.to_owned(),
        ..Member::default()
    };
    if let Some(detail) = detail {
        member.mobile = detail.mobile.as_deref().and_then(mobile::normalize);
        member.email = non_empty(detail.biz_mail).or(non_empty(detail.email));
        member.avatar = non_empty(detail.avatar);
        member.gender = non_empty(detail.gender.map(|g| g.0));
    }
    let mut name = None;
    if let Some(profile) = profile {
        member.departments = Some(profile.department.unwrap_or_default());
        name = non_empty(profile.name);
        member.email = member
            .email
            .or(non_empty(profile.biz_mail))
            .or(non_empty(profile.email));
        member.avatar = member.avatar.or(non_empty(profile.avatar));
    }
    Ok((member, name))
}

/// The profile fetch a login answered without ([`ProfileRefresh::AfterAnswer`]):
/// the same calls as [`complete_callback`] would have made, applied to the
/// bound user as a login applies them. When WeCom now refuses the member or
/// the app (which would have refused the login), every session of the user
/// the early session was issued for ends (the next `/verify` answers 401)
/// and the member's next login waits for the profile. Errors: WeCom's or
/// the store's.
pub fn refresh_profile(
    authenticator: &Authenticator,
    pending: &PendingRefresh,
    now: u64,
    transport: &impl Transport,
    kv: &impl KeyValue,
) -> Result<(), AuthError> {
    let api = WecomApi {
        authenticator,
        transport,
        kv,
        now,
    };
    let userid = &pending.binding.wecom_userid;
    let fetched = fetch_member(
        &api,
        userid,
        pending.user_ticket.as_deref(),
        pending.in_client,
    );
    let (member, name) = match fetched {
        Ok(fetched) => fetched,
        // WeCom now refuses the member (out of the visible range, gone:
        // 60011, 50002, 60111) or the app (48002): the login that answered
        // early would have been refused, so the sessions it may have begun
        // end, and the member's next login waits for the profile. A WeCom
        // that does not answer leaves the session, as a QR login would.
        Err(e)
            if matches!(
                e.category(),
                Category::AccessDenied | Category::Misconfigured
            ) =>
        {
            directory::end_sessions(kv, &pending.user_id, now)?;
            directory::mark_denied(kv, &pending.binding, now)?;
            return Err(e);
        }
        Err(e) => return Err(e),
    };
    let profile = Profile {
        name,
        mobile: member.mobile,
        email: member.email,
        avatar: member.avatar,
    };
    directory::refresh_bound(kv, &pending.binding, &profile, now)?;
    directory::clear_denied(kv, &pending.binding);
    // The departments just read are the freshest facts for the rules.
    if let Some(departments) = member.departments
        && authenticator.access.needs_departments()
    {
        facts::record_departments(&api, userid, departments)?;
    }
    Ok(())
}

/// The used state completed, a sweep now and then, the session issued.
fn finish_login(
    authenticator: &Authenticator,
    verified: &VerifiedState,
    user: User,
    member: Member,
    outcome: Outcome,
    now: u64,
    kv: &impl KeyValue,
) -> LoginSuccess {
    // Losing this write only costs the duplicate-callback convenience.
    let _ = used_states::finish(
        kv,
        verified,
        FinishedLogin {
            user_id: user.id.clone(),
            wecom_userid: member.wecom_userid.clone(),
            generation: user.session_generation,
            at: now,
        },
    );
    // The store has no expiry: one login in 16 (by its random nonce) sweeps
    // a bounded number of markers of states that can no longer come back.
    if verified.nonce[0] < 16 {
        let _ = used_states::sweep(kv, now);
    }
    let token = session::issue(
        authenticator,
        session::Subject {
            user_id: &user.id,
            wecom_userid: &member.wecom_userid,
            generation: user.session_generation,
        },
        now,
    );
    LoginSuccess {
        authenticator: authenticator.name.clone(),
        session_cookie: session_cookie(authenticator, token),
        cleared_pre_auth_cookie: pre_auth_cookie_after(authenticator, &verified.remaining_cookie),
        redirect_to: verified.return_to.clone(),
        user,
        member,
        outcome,
        pending_refresh: None,
    }
}

/// A second callback of a finished login: no WeCom call (the code is spent),
/// a fresh session for the user the first one found.
fn repeat_finished_login(
    authenticator: &Authenticator,
    verified: &VerifiedState,
    finished: &FinishedLogin,
    now: u64,
    kv: &impl KeyValue,
) -> Result<LoginSuccess, AuthError> {
    // Only the client's immediate second opening, and never past a logout:
    // a callback URL from the history must not log the member in again.
    let used = AuthError::StateRejected(StateRejection::AlreadyUsed);
    if now > finished.at.saturating_add(REPEAT_WINDOW_SECONDS) {
        return Err(used);
    }
    let user = directory::find_by_id(kv, &finished.user_id)?
        .filter(|user| user.session_generation == finished.generation && !user.disabled)
        .ok_or(used)?;
    let token = session::issue(
        authenticator,
        session::Subject {
            user_id: &user.id,
            wecom_userid: &finished.wecom_userid,
            generation: user.session_generation,
        },
        now,
    );
    Ok(LoginSuccess {
        authenticator: authenticator.name.clone(),
        member: Member::as_stored(&finished.wecom_userid, &user),
        user,
        outcome: Outcome::Existing,
        session_cookie: session_cookie(authenticator, token),
        cleared_pre_auth_cookie: pre_auth_cookie_after(authenticator, &verified.remaining_cookie),
        redirect_to: verified.return_to.clone(),
        pending_refresh: None,
    })
}

/// A verified session and its (current) user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub verified: session::VerifiedSession,
    pub user: User,
    /// The member's groups ([`admit_session`]); empty until admitted.
    pub groups: Vec<Group>,
}

/// Verifies a session token and loads its user: a deleted user, or one no
/// longer bound to the member, has no session.
pub fn verify_session(
    authenticator: &Authenticator,
    token: &str,
    now: u64,
    kv: &impl KeyValue,
) -> Result<Session, AuthError> {
    let verified =
        session::verify(authenticator, token, now).map_err(AuthError::SessionRejected)?;
    let user = directory::find_by_id(kv, &verified.claims.user_id)?
        .filter(|user| {
            let claims = &verified.claims;
            user.bindings
                .iter()
                .any(|b| b.names(&claims.authenticator, &claims.wecom_userid))
        })
        .ok_or(AuthError::UserGone)?;
    if verified.claims.generation != user.session_generation {
        return Err(AuthError::SessionRejected("ended by logout"));
    }
    if user.disabled {
        return Err(AuthError::SessionRejected("the user is disabled"));
    }
    Ok(Session {
        verified,
        user,
        groups: Vec::new(),
    })
}

/// A verified session its authenticator's access rules and `more` (a
/// proxy's own) let in, with the member's groups ([`facts::admit`]). No
/// WeCom call when the facts are cached. Errors: `AccessRefused`, WeCom's
/// when the facts cannot be had, the store's.
pub fn admit_session(
    authenticator: &Authenticator,
    mut session: Session,
    more: &[&Rules],
    now: u64,
    transport: &impl Transport,
    kv: &impl KeyValue,
) -> Result<Session, AuthError> {
    let api = WecomApi {
        authenticator,
        transport,
        kv,
        now,
    };
    let userid = &session.verified.claims.wecom_userid;
    let access = &authenticator.access;
    session.groups = facts::admit(&api, access, more, access.groups, userid, None)?;
    Ok(session)
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

/// As JSON: `{"callback_url", "desktop_homepage", "mobile_homepage", "plain_homepage"?}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ConsoleLinks {
    pub callback_url: String,
    pub desktop_homepage: String,
    pub mobile_homepage: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plain_homepage: Option<String>,
}

/// What the admin pastes into the WeCom console. Both homepages go through the
/// login route, which picks in-client OAuth inside WeCom and web login in a
/// system browser (the desktop client may open links in either).
pub fn homepage_links(authenticator: &Authenticator) -> ConsoleLinks {
    let login = urls::login_route_url(authenticator);
    ConsoleLinks {
        callback_url: urls::callback_url(authenticator),
        desktop_homepage: login.clone(),
        mobile_homepage: format!("{login}&flow=in-client"),
        plain_homepage: authenticator
            .auto_login
            .then(|| format!("{}{}", authenticator.origin, authenticator.redirect_path)),
    }
}

fn bounded(field: &'static str, value: &str, max: usize) -> Result<(), AuthError> {
    if value.len() > max {
        return Err(AuthError::BadRequest {
            field,
            message: format!("is {} bytes, more than the {max} allowed", value.len()),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::example::settings as sample;

    const NOW: u64 = 1_790_000_000;

    /// A callback verified, then completed, as the front and the guest do.
    fn complete(
        authenticator: &Authenticator,
        request: &CallbackRequest,
        now: u64,
        transport: &impl Transport,
        kv: &impl KeyValue,
    ) -> Result<LoginSuccess, AuthError> {
        let callback = verify_callback(authenticator, request, now)?;
        complete_callback(
            authenticator,
            &callback,
            now,
            transport,
            kv,
            ProfileRefresh::Now,
        )
    }
    const RANDOM: [u8; RANDOM_BYTES] = [9; RANDOM_BYTES];
    const WECOM_IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) Mobile/15E148 wxwork/4.1.30 MicroMessenger/7.0.1 Language/en";
    const CHROME: &str =
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/131.0.0.0 Safari/537.36";

    fn corp() -> Authenticator {
        sample("corp").check().unwrap()
    }

    fn request(user_agent: &str, return_to: Option<&str>) -> AuthorizeRequest {
        AuthorizeRequest {
            user_agent: user_agent.into(),
            return_to: return_to.map(Into::into),
            ..AuthorizeRequest::default()
        }
    }

    #[test]
    fn wecom_browsers_get_in_client_oauth_and_others_web_login() {
        let a = corp();
        let inside = authorize(&a, &request(WECOM_IPHONE, None), NOW, &RANDOM).unwrap();
        assert_eq!(inside.flow, LoginFlow::InClient);
        assert!(
            inside
                .url
                .starts_with("https://open.weixin.qq.com/connect/oauth2/authorize?")
        );
        let outside = authorize(&a, &request(CHROME, None), NOW, &RANDOM).unwrap();
        assert_eq!(outside.flow, LoginFlow::Web);
        assert!(
            outside
                .url
                .starts_with("https://login.work.weixin.qq.com/wwlogin/sso/login?")
        );
        assert!(!outside.url.contains("lang="));
    }

    #[test]
    fn a_forced_flow_wins_and_the_ua_language_reaches_web_login() {
        let forced = AuthorizeRequest {
            force_flow: Some(LoginFlow::Web),
            ..request(WECOM_IPHONE, None)
        };
        let auth = authorize(&corp(), &forced, NOW, &RANDOM).unwrap();
        assert_eq!(auth.flow, LoginFlow::Web);
        assert!(auth.url.ends_with("&lang=en"));
    }

    #[test]
    fn the_pre_auth_cookie_is_scoped_protected_and_lives_as_long_as_the_state() {
        let auth = authorize(&corp(), &request(CHROME, Some("/x")), NOW, &RANDOM).unwrap();
        let cookie = &auth.pre_auth_cookie;
        assert_eq!(cookie.name, crate::core::cookie::PRE_AUTH_COOKIE);
        assert_eq!(cookie.max_age_seconds, 600);
        assert!(
            cookie
                .set_cookie
                .ends_with("; Path=/auth/wecom; HttpOnly; SameSite=Lax; Secure")
        );
        assert_eq!(auth.return_to, "/x");
        assert!(!auth.url.contains("%2Fx") && !auth.url.contains("secret"));
    }

    #[test]
    fn an_unsafe_return_path_becomes_the_redirect_path() {
        let mut s = sample("corp");
        s.redirect_path = Some("/home".into());
        let a = s.check().unwrap();
        let auth = authorize(&a, &request(CHROME, Some("//evil.com")), NOW, &RANDOM).unwrap();
        assert_eq!(auth.return_to, "/home");
    }

    #[test]
    fn a_callback_round_trip_verifies_and_returns_the_path() {
        let a = corp();
        let auth = authorize(&a, &request(CHROME, Some("/reports?q=1")), NOW, &RANDOM).unwrap();
        let state = auth.url.split("state=").nth(1).unwrap().to_owned();
        let callback = CallbackRequest {
            code: "CODE".into(),
            state,
            pre_auth_cookie: Some(auth.pre_auth_cookie.value.clone()),
            user_agent: CHROME.into(),
        };
        assert_eq!(
            verify_callback(&a, &callback, NOW + 1)
                .unwrap()
                .state
                .return_to,
            "/reports?q=1"
        );
    }

    #[test]
    fn oversized_or_missing_inputs_name_their_field() {
        let a = corp();
        let long_ua = "x".repeat(MAX_USER_AGENT + 1);
        let Err(AuthError::BadRequest { field, .. }) =
            authorize(&a, &request(&long_ua, None), NOW, &RANDOM)
        else {
            panic!("a huge UA must be refused");
        };
        assert_eq!(field, "user-agent");
        let base = CallbackRequest {
            code: "C".into(),
            state: "s".into(),
            ..CallbackRequest::default()
        };
        for (request, expected) in [
            (
                CallbackRequest {
                    code: "c".repeat(513),
                    ..base.clone()
                },
                "code",
            ),
            (
                CallbackRequest {
                    code: String::new(),
                    ..base.clone()
                },
                "code",
            ),
            (
                CallbackRequest {
                    code: "a b".into(),
                    ..base.clone()
                },
                "code",
            ),
            (
                CallbackRequest {
                    state: "s".repeat(129),
                    ..base.clone()
                },
                "state",
            ),
            (
                CallbackRequest {
                    pre_auth_cookie: Some("c".repeat(4097)),
                    ..base.clone()
                },
                "pre-auth-cookie",
            ),
        ] {
            match verify_callback(&a, &request, NOW) {
                Err(AuthError::BadRequest { field, .. }) => assert_eq!(field, expected),
                other => panic!("{expected}: {other:?}"),
            }
        }
    }

    mod callback {
        use super::*;
        use crate::core::directory::Outcome;
        use crate::core::ports::MemoryKv;
        use crate::core::wecom::tests::{Scripted, TOKEN_OK};

        /// A login started in its own browser: `seed` makes its randomness.
        fn started(a: &Authenticator, flow: LoginFlow, seed: u8) -> CallbackRequest {
            let request = AuthorizeRequest {
                force_flow: Some(flow),
                ..request(CHROME, Some("/after"))
            };
            let auth = authorize(a, &request, NOW, &[seed; RANDOM_BYTES]).unwrap();
            CallbackRequest {
                code: "CODE".into(),
                state: auth.url.split("state=").nth(1).unwrap()[..84].to_owned(),
                pre_auth_cookie: Some(auth.pre_auth_cookie.value),
                user_agent: CHROME.into(),
            }
        }

        fn in_client_script() -> Scripted {
            Scripted::default()
                .json(TOKEN_OK)
                .json(r#"{"errcode":0,"errmsg":"ok","userid":"zhangsan","user_ticket":"T"}"#)
                .json(r#"{"errcode":0,"errmsg":"ok","userid":"zhangsan","mobile":"+86 138 0000 0000","email":"z@x.cn","biz_mail":"z@corp.work","avatar":"http://a/0","gender":"1"}"#)
                .json(r#"{"errcode":0,"errmsg":"ok","userid":"zhangsan","name":"张三","department":[1]}"#)
        }

        #[test]
        fn in_client_first_login_signs_up_then_web_login_takes_one_call() {
            let mut s = sample("corp");
            s.auto_signup = true;
            let a = s.check().unwrap();
            let kv = MemoryKv::default();
            let t = in_client_script();
            let first = complete(&a, &started(&a, LoginFlow::InClient, 1), NOW, &t, &kv).unwrap();
            assert_eq!(first.outcome, Outcome::Created);
            assert_eq!(first.member.mobile.as_deref(), Some("13800000000"));
            assert_eq!(first.member.email.as_deref(), Some("z@corp.work"));
            assert_eq!(first.user.name, "张三");
            assert_eq!(first.redirect_to, "/after");
            assert!(
                first
                    .session_cookie
                    .set_cookie
                    .contains("; HttpOnly; SameSite=Lax; Secure")
            );
            assert_eq!(
                t.paths(),
                [
                    "gettoken",
                    "auth/getuserinfo",
                    "auth/getuserdetail",
                    "user/get"
                ]
            );
            let session = verify_session(&a, &first.session_cookie.value, NOW + 1, &kv).unwrap();
            assert_eq!(session.user.id, first.user.id);

            let web =
                Scripted::default().json(r#"{"errcode":0,"errmsg":"ok","userid":"zhangsan"}"#);
            let second = complete(&a, &started(&a, LoginFlow::Web, 2), NOW, &web, &kv).unwrap();
            assert_eq!(
                (second.outcome, second.user.id),
                (Outcome::Existing, first.user.id)
            );
            assert_eq!(
                web.paths(),
                ["auth/getuserinfo"],
                "warm token: one WeCom call"
            );
        }

        #[test]
        fn expired_used_state_markers_are_swept_by_an_occasional_login() {
            let mut s = sample("corp");
            s.auto_signup = true;
            let a = s.check().unwrap();
            let kv = MemoryKv::default();
            let markers = |kv: &MemoryKv| {
                kv.keys()
                    .into_iter()
                    .filter(|k| k.starts_with("used-state"))
                    .collect::<Vec<_>>()
            };
            // Seeds of 16 and more give nonces that do not sweep.
            for seed in 20..23 {
                let warm = in_client_script();
                if seed > 20 {
                    warm.answers.borrow_mut().pop_front();
                }
                complete(&a, &started(&a, LoginFlow::InClient, seed), NOW, &warm, &kv).unwrap();
            }
            // Three markers, numbered in one window: three slots and a count.
            assert_eq!(markers(&kv).len(), 3 + 3 + 1, "{:?}", markers(&kv));
            // Long after those states expired, a sweeping login (seed 0)
            // removes them and keeps its own.
            let later = NOW + 3 * 600;
            let warm = in_client_script();
            warm.answers.borrow_mut().pop_front();
            let request = AuthorizeRequest {
                force_flow: Some(LoginFlow::InClient),
                ..request(CHROME, None)
            };
            let auth = authorize(&a, &request, later, &[0; RANDOM_BYTES]).unwrap();
            let callback = CallbackRequest {
                code: "CODE".into(),
                state: auth.url.split("state=").nth(1).unwrap()[..84].to_owned(),
                pre_auth_cookie: Some(auth.pre_auth_cookie.value),
                user_agent: CHROME.into(),
            };
            complete(&a, &callback, later, &warm, &kv).unwrap();
            let left = markers(&kv);
            assert_eq!(
                left.iter().filter(|k| k.starts_with("used-state/")).count(),
                1,
                "{left:?}: only the live login's marker"
            );
            assert_eq!(kv.faults().count(host_drafts::keyvalue::Op::ListKeys), 0);
        }

        #[test]
        fn a_callback_opened_again_after_logout_or_later_logs_nobody_in() {
            let mut s = sample("corp");
            s.auto_signup = true;
            let a = s.check().unwrap();
            let kv = MemoryKv::default();
            let request = started(&a, LoginFlow::InClient, 44);
            let first = complete(&a, &request, NOW, &in_client_script(), &kv).unwrap();
            let none = Scripted::default();
            // Within the window the second opening gets the login again...
            assert!(complete(&a, &request, NOW + 5, &none, &kv).is_ok());
            // ...but not after the member logged out (a shared computer's
            // history), nor once the window has passed.
            assert!(directory::end_sessions(&kv, &first.user.id, NOW + 6).unwrap());
            let replay = complete(&a, &request, NOW + 7, &none, &kv).unwrap_err();
            assert_eq!(
                replay,
                AuthError::StateRejected(StateRejection::AlreadyUsed)
            );
            let other = started(&a, LoginFlow::InClient, 45);
            let warm = in_client_script();
            warm.answers.borrow_mut().pop_front();
            complete(&a, &other, NOW, &warm, &kv).unwrap();
            let late = complete(&a, &other, NOW + REPEAT_WINDOW_SECONDS + 1, &none, &kv);
            assert_eq!(
                late.unwrap_err(),
                AuthError::StateRejected(StateRejection::AlreadyUsed)
            );
            assert!(none.paths().is_empty());
        }

        #[test]
        fn logout_ends_the_users_sessions_and_a_login_in_the_same_second_works() {
            let mut s = sample("corp");
            s.auto_signup = true;
            let a = s.check().unwrap();
            let kv = MemoryKv::default();
            let first = complete(
                &a,
                &started(&a, LoginFlow::InClient, 40),
                NOW,
                &in_client_script(),
                &kv,
            )
            .unwrap();
            let token = first.session_cookie.value;
            assert!(verify_session(&a, &token, NOW + 5, &kv).is_ok());
            assert!(directory::end_sessions(&kv, &first.user.id, NOW + 5).unwrap());
            assert_eq!(
                verify_session(&a, &token, NOW + 6, &kv).unwrap_err(),
                AuthError::SessionRejected("ended by logout")
            );
            // Logged in again within the same second (and on an instance whose
            // clock lags): the new session counts, the old one stays ended.
            let warm = in_client_script();
            warm.answers.borrow_mut().pop_front();
            for at in [NOW + 5, NOW + 3] {
                let again = complete(&a, &started(&a, LoginFlow::InClient, 41), at, &warm, &kv);
                let token = again.unwrap().session_cookie.value;
                assert!(verify_session(&a, &token, at, &kv).is_ok(), "at {at}");
                let warm_again = in_client_script();
                warm_again.answers.borrow_mut().pop_front();
                *warm.answers.borrow_mut() = warm_again.answers.take();
            }
            assert!(verify_session(&a, &token, NOW + 5, &kv).is_err());
            assert!(!directory::end_sessions(&kv, "nobody", NOW).unwrap());
        }

        #[test]
        fn a_duplicate_callback_repeats_the_finished_login_and_a_replay_of_a_failed_one_is_refused()
        {
            let mut s = sample("corp");
            s.auto_signup = true;
            let a = s.check().unwrap();
            let kv = MemoryKv::default();
            let request = started(&a, LoginFlow::InClient, 3);
            let first = complete(&a, &request, NOW, &in_client_script(), &kv).unwrap();
            let none = Scripted::default();
            let again = complete(&a, &request, NOW + 1, &none, &kv).unwrap();
            assert_eq!(again.user.id, first.user.id);
            assert_eq!(again.redirect_to, "/after");
            assert!(none.paths().is_empty(), "the spent code is not sent again");

            let failing = started(&a, LoginFlow::InClient, 4);
            // The token is warm from the first login.
            let refused = Scripted::default().json(r#"{"errcode":40029,"errmsg":"invalid code"}"#);
            let e = complete(&a, &failing, NOW, &refused, &kv).unwrap_err();
            assert_eq!(e.status(), 401);
            assert_eq!(
                complete(&a, &failing, NOW, &Scripted::default(), &kv).unwrap_err(),
                AuthError::StateRejected(StateRejection::AlreadyUsed)
            );
        }

        #[test]
        fn non_members_and_unmatched_members_are_refused_without_writing_users() {
            let a = corp();
            let kv = MemoryKv::default();
            let outsider = Scripted::default()
                .json(TOKEN_OK)
                .json(r#"{"errcode":0,"errmsg":"ok","openid":"oAAA","external_userid":"wmAAA"}"#);
            let e = complete(
                &a,
                &started(&a, LoginFlow::InClient, 5),
                NOW,
                &outsider,
                &kv,
            )
            .unwrap_err();
            assert_eq!(e, AuthError::NotAMember);
            let warm = in_client_script();
            warm.answers.borrow_mut().pop_front();
            let e =
                complete(&a, &started(&a, LoginFlow::InClient, 6), NOW, &warm, &kv).unwrap_err();
            assert_eq!(e, AuthError::UserNotFound, "auto-signup is off");
            assert!(
                kv.keys()
                    .iter()
                    .all(|k| !k.starts_with("user/") && !k.starts_with("binding/")),
                "{:?}",
                kv.keys()
            );
        }
    }

    #[test]
    fn homepage_links_point_at_the_login_route() {
        let mut s = sample("corp");
        s.auto_login = true;
        s.redirect_path = Some("/app".into());
        let links = homepage_links(&s.check().unwrap());
        assert_eq!(
            links.callback_url,
            "https://apps.example.com/auth/wecom/callback"
        );
        assert_eq!(
            links.desktop_homepage,
            "https://apps.example.com/auth/wecom/login?authenticator=corp"
        );
        assert_eq!(
            links.mobile_homepage,
            "https://apps.example.com/auth/wecom/login?authenticator=corp&flow=in-client"
        );
        assert_eq!(
            links.plain_homepage.as_deref(),
            Some("https://apps.example.com/app")
        );
        assert_eq!(homepage_links(&corp()).plain_homepage, None);
    }
}

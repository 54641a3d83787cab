//! Cookies the component asks the caller to set: always HttpOnly and
//! SameSite=Lax (WeCom's redirect back is a top-level GET, which Lax allows),
//! Secure on https origins, scoped to the login routes where possible.

use super::settings::Authenticator;

pub const PRE_AUTH_COOKIE: &str = "wecom_auth_login";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cookie {
    pub name: String,
    pub value: String,
    pub max_age_seconds: u32,
    pub set_cookie: String,
}

impl Cookie {
    /// `value` must already consist of cookie octets.
    pub fn new(name: &str, value: String, max_age_seconds: u32, path: &str, secure: bool) -> Self {
        let secure = if secure { "; Secure" } else { "" };
        let set_cookie = format!(
            "{name}={value}; Max-Age={max_age_seconds}; Path={path}; HttpOnly; SameSite=Lax{secure}"
        );
        Cookie {
            name: name.to_owned(),
            value,
            max_age_seconds,
            set_cookie,
        }
    }

    /// Adds a `Domain` attribute (share the cookie with sibling hosts).
    pub fn with_domain(mut self, domain: Option<&str>) -> Self {
        if let Some(domain) = domain {
            self.set_cookie.push_str("; Domain=");
            self.set_cookie.push_str(domain);
        }
        self
    }

    /// A cookie that removes `name` from the browser.
    pub fn cleared(name: &str, path: &str, secure: bool) -> Self {
        Cookie::new(name, String::new(), 0, path, secure)
    }
}

/// The session cookie: on the whole site (`Path=/`), optionally shared with
/// sibling hosts through `Domain`.
pub fn session_cookie(authenticator: &Authenticator, token: String) -> Cookie {
    Cookie::new(
        &authenticator.session_cookie_name,
        token,
        authenticator.session_lifetime,
        "/",
        authenticator.is_https(),
    )
    .with_domain(authenticator.session_cookie_domain.as_deref())
}

/// Clears the session cookie (logout).
pub fn cleared_session_cookie(authenticator: &Authenticator) -> Cookie {
    Cookie::cleared(
        &authenticator.session_cookie_name,
        "/",
        authenticator.is_https(),
    )
    .with_domain(authenticator.session_cookie_domain.as_deref())
}

/// The cookie that removes the pre-auth cookie once a callback is done with it.
pub fn cleared_pre_auth_cookie(authenticator: &Authenticator) -> Cookie {
    Cookie::cleared(
        PRE_AUTH_COOKIE,
        &authenticator.route_prefix,
        authenticator.is_https(),
    )
}

/// The pre-auth cookie: scoped to the login routes, living as long as a state.
pub fn pre_auth_cookie(authenticator: &Authenticator, value: String) -> Cookie {
    Cookie::new(
        PRE_AUTH_COOKIE,
        value,
        authenticator.state_lifetime,
        &authenticator.route_prefix,
        authenticator.is_https(),
    )
}

/// The pre-auth cookie once a login finished: the logins still in flight in
/// this browser (`remaining`, see `state`), or cleared when there are none.
pub fn pre_auth_cookie_after(authenticator: &Authenticator, remaining: &str) -> Cookie {
    if remaining.is_empty() {
        cleared_pre_auth_cookie(authenticator)
    } else {
        pre_auth_cookie(authenticator, remaining.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_cookie_carries_every_protective_attribute() {
        let c = Cookie::new("n", "v".into(), 600, "/auth/wecom", true);
        assert_eq!(
            c.set_cookie,
            "n=v; Max-Age=600; Path=/auth/wecom; HttpOnly; SameSite=Lax; Secure"
        );
        let plain = Cookie::cleared("n", "/", false);
        assert_eq!(
            plain.set_cookie,
            "n=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax"
        );
    }
}

//! A WeCom (企业微信) simulator: a real HTTP server on `127.0.0.1` that answers
//! like WeCom's server API and browser login pages, for tests, benches and demos.
//!
//! One server serves all three WeCom hosts, by path:
//! - `https://qyapi.weixin.qq.com`: `GET /cgi-bin/gettoken`, `GET /cgi-bin/auth/getuserinfo`,
//!   `GET /cgi-bin/user/getuserinfo` (legacy), `POST /cgi-bin/auth/getuserdetail`,
//!   `GET /cgi-bin/user/get`, `GET /cgi-bin/agent/get`,
//!   `GET /cgi-bin/department/simplelist`, `GET /cgi-bin/tag/get`, `GET /cgi-bin/tag/list`;
//! - `https://open.weixin.qq.com`: `GET /connect/oauth2/authorize` (in-client OAuth);
//! - `https://login.work.weixin.qq.com`: `GET /wwlogin/sso/login` (web / QR login,
//!   also inside the login panel: `redirect_type=callback|top|self`);
//! - `https://wwcdn.weixin.qq.com`: `GET /node/open/js/wecom-jssdk-2.0.2.js`, a
//!   stand-in for the JS-SDK's `ww.createWWLoginPanel` (doc 98478) that frames
//!   this simulator's web login page.
//!
//! So the component can use `api-base = oauth-base = sso-base =` [`SimulatorHandle::base_url`].
//! Any other path answers 404 with an empty body.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use wecom_simulator::*;
//! let sim = Simulator::start(Model::sample().with_trusted_domain("apps.example.com")).await?;
//! let url = sim.oauth_url(SAMPLE_CORP_ID, Some(SAMPLE_AGENT_ID), "snsapi_privateinfo",
//!                         "https://apps.example.com/cb", "st4te");
//! let location = sim.login(&url, "zhangsan").await?;     // a real GET, 302
//! let CallbackParams { code, state } = callback_params(&location).expect("code");
//! sim.fault(Endpoint::GetUserDetail, Fault::Http(503)).times(1);
//! sim.advance(std::time::Duration::from_secs(301));      // the code has now expired
//! assert_eq!(sim.calls(Endpoint::OAuthPage), 1);
//! # let _ = (code, state); Ok(()) }
//! ```
//!
//! # Behaviour (what WeCom does, and the choices where it is vague)
//! - Every API answer is HTTP 200 JSON `{"errcode":N,"errmsg":"..."}`; errors carry
//!   WeCom's `errmsg` tail (`, hint: [...], from ip: 127.0.0.1, more info at ...?e=N`),
//!   except 45009 and `user/get` errors (which also carry empty arrays), as in the vectors.
//! - `gettoken`: 41002 / 41004 missing corpid / corpsecret, 40013 unknown corp, 40001
//!   wrong secret, 60020 from an IP outside the app's `trusted_ips`. Tokens are random
//!   (64 chars), valid 7200 s of simulator time; within that time `gettoken` returns
//!   the same token with the remaining `expires_in`, as WeCom does.
//! - Every call with a token: 41001 missing, 40014 unknown or invalidated
//!   ([`SimulatorHandle::invalidate_tokens`]), 42001 expired, 60020 untrusted IP.
//! - `auth/getuserinfo`, `user/getuserinfo`: 41008 no code; **40029** for an unknown,
//!   expired (300 s) or **already used** code (this simulator never answers 42022),
//!   or a code of another corp; **50001** when the code's `redirect_uri` host\[:port\]
//!   is not the token's app's trusted domain (the code then stays unused). A code is
//!   consumed by its first successful exchange. Members give `userid` (legacy:
//!   `UserId`, `DeviceId`), plus `user_ticket` (legacy: and `expires_in` 1800) only
//!   for an in-client `snsapi_privateinfo` login with an `agentid` by a member who is
//!   in the visible range and agrees on the consent screen (which such a login
//!   always shows; `snsapi_base` never does). Non-members give `openid` + `external_userid`
//!   (legacy: `OpenId`, `DeviceId`, `external_userid`).
//! - **Members outside the visible range** get a code and a `userid` but never a
//!   `user_ticket`; `user/get` for them answers **60011**; unknown userids 60111.
//! - `auth/getuserdetail`: 43002 unless POST, 47001 body not JSON, 84015 ticket
//!   missing, unknown or of another app, 84014 expired (1800 s). Tickets can be used
//!   repeatedly until they expire. Gives `userid`, `gender` (string), `avatar`,
//!   `qr_code`, `mobile`, `email`, `biz_mail`, `address` (absent when the member has
//!   none); never `name`.
//! - `user/get`: 41009 no userid; as for an app created after 2022-06-20: name,
//!   department, position, ... but no mobile, email, avatar or gender.
//! - Login pages: without `pick`, a list of members and non-members linking to
//!   the same URL plus `pick=<userid>`; with `pick`, 302 to `redirect_uri?code=..&state=..`.
//!   Errors:
//!   40013 unknown `appid`, 40056 bad or (web login) missing `agentid`, 40035 bad
//!   `redirect_uri` (not absolute http(s)) / `response_type` / `scope` / `login_type`,
//!   84025 bad `state` (`[A-Za-z0-9]{0,128}`), 60111 unknown `pick`. Errors are 200
//!   HTML pages with the errcode in the [`ERRCODE_HEADER`] header. `#wechat_redirect`
//!   never reaches a server, so it is not checked. `snsapi_privateinfo` without
//!   `agentid` silently becomes `snsapi_base`.
//! - `agent/get` (doc 90227): the token's own app only (another app of the
//!   company: 301002; no such app: 40056), with `redirect_domain` = its trusted domain.
//! - `department/simplelist` (doc 95350): `{"department_id": [{"id", "parentid",
//!   "order"}]}` for the subtree of `id` (all without it) within the app's
//!   contact range; 60011 for an `id` outside it, 60003 for an unknown one.
//! - `tag/get` (doc 90213): `tagname`, `userlist` (`userid`, `name`) and
//!   `partylist`; 40068 for an unknown `tagid`; with a contact range, only
//!   the members and departments inside it.
//! - `tag/list` (doc 90216): `{"taglist": [{"tagid", "tagname"}]}`, every tag
//!   of the company (a self-built app sees them all).
//! - Faults: see [`Fault`] and [`SimulatorHandle::fault`].
//! - Network: [`Network`] adds a round trip to every API answer and more on a
//!   new connection; [`SimulatorHandle::connections`] and
//!   [`SimulatorHandle::max_concurrent_api_calls`] show reuse and concurrency.

mod api;
mod callbacks;
mod console;
mod endpoint;
mod faults;
mod model;
mod network;
mod pages;
mod server;
mod state;
mod urls;

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use callbacks::CallbackDelivery;
pub use console::CONSOLE_PATH;
pub use endpoint::Endpoint;
pub use faults::{Fault, FaultScope};
pub use model::{
    Agent, CallbackConfig, Corp, Department, Gender, Member, Model, NonMember, SAMPLE_AGENT_ID,
    SAMPLE_CORP_ID, SAMPLE_SECRET, SAMPLE_TRUSTED_DOMAIN, Tag,
};
pub use network::Network;
pub use pages::ERRCODE_HEADER;
pub use pages::LOGIN_PANEL_SCRIPT;
pub use urls::{CallbackParams, callback_params, percent_encode};

use server::Shared;
use state::State;

/// Starts simulators.
pub struct Simulator;

impl Simulator {
    /// Serves `model` on `127.0.0.1` at an ephemeral port. Needs a tokio runtime.
    pub async fn start(model: Model) -> io::Result<SimulatorHandle> {
        Self::start_on(model, 0).await
    }

    /// Serves `model` on `127.0.0.1:port` (0: ephemeral).
    pub async fn start_on(model: Model, port: u16) -> io::Result<SimulatorHandle> {
        let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State::new(model)),
            counters: endpoint::Counters::default(),
            addr,
            traffic: network::Traffic::default(),
        });
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(server::serve(listener, Arc::clone(&shared), stopped));
        Ok(SimulatorHandle {
            shared,
            lifetime: Arc::new(Lifetime {
                stop,
                task: Mutex::new(Some(task)),
            }),
        })
    }
}

/// Stops the server when the last handle goes (dropping `stop` wakes the tasks).
struct Lifetime {
    stop: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

/// A running simulator. Cheap to clone; the server stops when the last clone is
/// dropped or on [`SimulatorHandle::shutdown`].
#[derive(Clone)]
pub struct SimulatorHandle {
    shared: Arc<Shared>,
    lifetime: Arc<Lifetime>,
}

impl std::fmt::Debug for SimulatorHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimulatorHandle")
            .field("addr", &self.shared.addr)
            .finish_non_exhaustive()
    }
}

/// One installed fault, returned by [`SimulatorHandle::fault`]. Installed at
/// once and persistent until [`FaultRule::times`] limits it or
/// [`FaultRule::clear`] / [`SimulatorHandle::clear_faults`] removes it.
pub struct FaultRule {
    shared: Arc<Shared>,
    id: u64,
}

impl std::fmt::Debug for FaultRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultRule").field("id", &self.id).finish()
    }
}

impl FaultRule {
    /// Limits the fault to the next `n` matching calls (0 removes it).
    /// Set it before the calls it is meant for (or use [`SimulatorHandle::fault_times`]).
    pub fn times(self, n: u32) -> Self {
        self.shared.lock().faults.set_remaining(self.id, n);
        self
    }

    /// Removes the fault.
    pub fn clear(self) {
        self.shared.lock().faults.remove(self.id);
    }

    /// Whether it is still installed (a counted fault goes once used up).
    pub fn is_active(&self) -> bool {
        self.shared.lock().faults.remaining(self.id).is_some()
    }

    /// Uses left: `None` if persistent or gone (see [`FaultRule::is_active`]).
    pub fn remaining(&self) -> Option<u32> {
        self.shared.lock().faults.remaining(self.id).flatten()
    }
}

impl SimulatorHandle {
    /// The listening address (`127.0.0.1:PORT`).
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// Answers one request in-process, exactly as over the network but without
    /// it (counted, faults applied): for hosts and benches that measure the
    /// component rather than loopback. `None`: the fault was a dropped connection.
    pub async fn answer_in_process(
        &self,
        request: http::Request<bytes::Bytes>,
    ) -> Option<http::Response<bytes::Bytes>> {
        use http_body_util::BodyExt as _;
        let (parts, body) = request.into_parts();
        let peer = std::net::IpAddr::from(Ipv4Addr::LOCALHOST);
        let reply = server::answer(&self.shared, peer, &parts.method, &parts.uri, &body)
            .await
            .ok()?;
        let (parts, body) = reply.into_parts();
        let body = body.collect().await.ok()?.to_bytes();
        Some(http::Response::from_parts(parts, body))
    }

    /// `http://127.0.0.1:PORT`, no trailing slash: the api, oauth and sso base alike.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.shared.addr)
    }

    /// Stops accepting and closes open connections; waits until the listener is
    /// closed. Affects every clone.
    pub async fn shutdown(&self) {
        let _ = self.lifetime.stop.send(true);
        let task = self
            .lifetime
            .task
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }

    // ---- faults ----

    /// Installs `fault` for calls matching `scope` (an [`Endpoint`],
    /// [`FaultScope::Api`] or [`FaultScope::All`]), persistent until cleared;
    /// chain `.times(n)` for the next `n` calls only:
    ///
    /// ```no_run
    /// # fn f(sim: &wecom_simulator::SimulatorHandle) {
    /// use wecom_simulator::{Endpoint, Fault, FaultScope};
    /// sim.fault(Endpoint::GetUserDetail, Fault::Http(503)).times(1);
    /// sim.fault(FaultScope::Api, Fault::latency_ms(200));
    /// sim.fault(Endpoint::GetToken, Fault::RateLimited).times(3);
    /// # }
    /// ```
    ///
    /// Several faults may match one call: all latencies add up, and the first
    /// installed of the others decides the answer (each used one counts down).
    pub fn fault(&self, scope: impl Into<FaultScope>, fault: Fault) -> FaultRule {
        let id = self.shared.lock().faults.add(scope.into(), fault, None);
        self.rule(id)
    }

    /// Installs `fault` for the next `n` matching calls, atomically.
    pub fn fault_times(&self, scope: impl Into<FaultScope>, fault: Fault, n: u32) -> FaultRule {
        let id = self.shared.lock().faults.add(scope.into(), fault, Some(n));
        self.rule(id)
    }

    fn rule(&self, id: u64) -> FaultRule {
        FaultRule {
            shared: Arc::clone(&self.shared),
            id,
        }
    }

    /// Removes every fault.
    pub fn clear_faults(&self) {
        self.shared.lock().faults.clear();
    }

    // ---- clock and tokens ----

    /// Moves simulator time forward (token, code and ticket expiry use it).
    pub fn advance(&self, by: Duration) {
        let mut state = self.shared.lock();
        state.clock_offset = state.clock_offset.saturating_add(by);
    }

    /// How far simulator time is ahead of real time.
    pub fn clock_offset(&self) -> Duration {
        self.shared.lock().clock_offset
    }

    /// WeCom invalidating tokens early: every token issued so far answers 40014
    /// from now on, and the next `gettoken` issues a new one.
    pub fn invalidate_tokens(&self) {
        self.shared.lock().tokens.clear();
    }

    // ---- counters ----

    /// Calls to `endpoint` since start or [`SimulatorHandle::reset_calls`],
    /// counted on arrival (faulted calls included; 404s not counted).
    pub fn calls(&self, endpoint: Endpoint) -> u64 {
        self.shared.counters.get(endpoint)
    }

    /// Calls to all server API endpoints together.
    pub fn api_calls(&self) -> u64 {
        Endpoint::ALL
            .into_iter()
            .filter(|e| e.is_api())
            .map(|e| self.calls(e))
            .sum()
    }

    /// The consent screens shown for in-client `snsapi_privateinfo` logins
    /// since start or [`SimulatorHandle::reset_calls`].
    pub fn consent_pages_shown(&self) -> u64 {
        self.shared.lock().authorizations.consent_pages
    }

    /// The in-client `snsapi_base` logins, redirected without a screen.
    pub fn silent_authorizations(&self) -> u64 {
        self.shared.lock().authorizations.silent
    }

    /// Sets every counter to 0 (connections and the most API calls in
    /// flight at once too).
    pub fn reset_calls(&self) {
        self.shared.counters.reset();
        self.shared.traffic.reset();
        self.shared.lock().authorizations = Default::default();
    }

    // ---- network ----

    /// Models a network from now on ([`Network`]): a round trip added to
    /// every API answer, more on a new connection.
    pub fn set_network(&self, network: Network) {
        *self
            .shared
            .traffic
            .network
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = network;
    }

    /// Connections opened for API calls (their first request an API call)
    /// since start or [`SimulatorHandle::reset_calls`].
    pub fn connections(&self) -> u64 {
        self.shared
            .traffic
            .connections
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// API calls in flight now (arrived, not yet answered).
    pub fn api_calls_in_flight(&self) -> u64 {
        self.shared.traffic.in_flight()
    }

    /// The most API calls in flight at once (arrived, not yet answered)
    /// since start or [`SimulatorHandle::reset_calls`].
    pub fn max_concurrent_api_calls(&self) -> u64 {
        self.shared.traffic.max_in_flight()
    }

    // ---- model ----

    /// A copy of the current model.
    pub fn model(&self) -> Model {
        self.shared.lock().model.clone()
    }

    /// Changes the model in place (e.g. a member withdraws consent, an app's
    /// trusted domain changes). Issued codes, tokens and tickets stay.
    pub fn update_model<R>(&self, change: impl FnOnce(&mut Model) -> R) -> R {
        change(&mut self.shared.lock().model)
    }

    // ---- the console: contact changes, sent to the apps' callbacks ----

    /// Removes member `userid` (通讯录 → 删除成员) and tells each app with
    /// a callback (`delete_user`), as WeCom does. The deliveries, one per
    /// app with a callback (none when no corp has the member).
    pub async fn remove_member(&self, userid: &str) -> Vec<CallbackDelivery> {
        callbacks::remove_member(&self.shared.state, userid).await
    }

    /// Changes member `userid`'s userid to `new` (WeCom allows it once) and
    /// tells the apps (`update_user` with `NewUserID`).
    pub async fn rename_member(&self, userid: &str, new: &str) -> Vec<CallbackDelivery> {
        callbacks::rename_member(&self.shared.state, userid, new).await
    }

    /// Disables member `userid` (禁用) and tells the apps (`update_user`
    /// with `Status` 2).
    pub async fn disable_member(&self, userid: &str) -> Vec<CallbackDelivery> {
        callbacks::disable_member(&self.shared.state, userid).await
    }

    /// Adds `add` to tag `tagid` and removes `remove` from it, and tells the
    /// apps (`update_tag`).
    pub async fn change_tag(
        &self,
        tagid: u32,
        add: &[&str],
        remove: &[&str],
    ) -> Vec<CallbackDelivery> {
        callbacks::change_tag(&self.shared.state, tagid, add, remove).await
    }

    /// Moves member `userid` to `departments` and tells the apps
    /// (`update_user` with `Department`).
    pub async fn move_member(&self, userid: &str, departments: &[u32]) -> Vec<CallbackDelivery> {
        callbacks::move_member(&self.shared.state, userid, departments).await
    }

    /// Sends a contact change (`change_type` with its `fields`, doc 90970)
    /// to each app of `corp_id` with a callback, encrypted and signed with
    /// that app's keys; one delivery each, with WeCom's retries.
    pub async fn contact_change(
        &self,
        corp_id: &str,
        change_type: &str,
        fields: &[(&str, &str)],
    ) -> Vec<CallbackDelivery> {
        callbacks::contact_change(&self.shared.state, corp_id, change_type, fields).await
    }

    // ---- logins ----

    /// The in-client OAuth URL at this simulator:
    /// `BASE/connect/oauth2/authorize?appid=..&redirect_uri=..&response_type=code&scope=..&state=..[&agentid=..]#wechat_redirect`.
    pub fn oauth_url(
        &self,
        corp_id: &str,
        agent_id: Option<u32>,
        scope: &str,
        redirect_uri: &str,
        state: &str,
    ) -> String {
        let agent = agent_id.map_or_else(String::new, |a| format!("&agentid={a}"));
        format!(
            "{}{}?appid={}&redirect_uri={}&response_type=code&scope={}&state={}{agent}#wechat_redirect",
            self.base_url(),
            Endpoint::OAuthPage.path(),
            percent_encode(corp_id),
            percent_encode(redirect_uri),
            percent_encode(scope),
            percent_encode(state),
        )
    }

    /// The stand-in for WeCom's JS-SDK at this simulator, for the
    /// component's `login_panel_script`.
    pub fn login_panel_script_url(&self) -> String {
        format!("{}{}", self.base_url(), Endpoint::LoginPanelScript.path())
    }

    /// The web / QR login URL at this simulator:
    /// `BASE/wwlogin/sso/login?login_type=CorpApp&appid=..&agentid=..&redirect_uri=..&state=..`.
    pub fn web_login_url(
        &self,
        corp_id: &str,
        agent_id: u32,
        redirect_uri: &str,
        state: &str,
    ) -> String {
        format!(
            "{}{}?login_type=CorpApp&appid={}&agentid={agent_id}&redirect_uri={}&state={}",
            self.base_url(),
            Endpoint::WebLoginPage.path(),
            percent_encode(corp_id),
            percent_encode(redirect_uri),
            percent_encode(state),
        )
    }

    /// Logs `userid` (a member's userid or a non-member's id) in through a login
    /// page, as clicking their entry would: a real GET of `authorize_url` plus
    /// `pick=<userid>` to this simulator (only the path and query of the URL are
    /// used, so a URL on WeCom's real hostnames works too). Returns the 302
    /// `Location`, `redirect_uri?code=..&state=..`; read it with [`callback_params`].
    /// Fails if the page answers anything but a redirect (e.g. an error page).
    pub async fn login(&self, authorize_url: &str, userid: &str) -> anyhow::Result<String> {
        let target = urls::append_query(&urls::path_and_query(authorize_url), &[("pick", userid)]);
        let mut response = server::get(self.addr(), &target).await?;
        // The consent screen of `snsapi_privateinfo`: the member answers as
        // the model says.
        if response.status() == http::StatusCode::OK
            && response.headers().get(ERRCODE_HEADER).is_none()
        {
            let consents = self
                .model()
                .corps
                .iter()
                .find_map(|corp| corp.member(userid).map(|m| m.consents_to_privateinfo))
                .unwrap_or(false);
            let answer = if consents { "agree" } else { "decline" };
            let target = urls::append_query(&target, &[("consent", answer)]);
            response = server::get(self.addr(), &target).await?;
        }
        if response.status() != http::StatusCode::FOUND {
            let errcode = response
                .headers()
                .get(ERRCODE_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("none");
            bail!(
                "the login page answered {} (errcode {errcode}), not a redirect",
                response.status()
            );
        }
        let location = response
            .headers()
            .get(http::header::LOCATION)
            .context("a 302 without Location")?
            .to_str()
            .context("a Location that is not text")?;
        Ok(location.to_owned())
    }
}

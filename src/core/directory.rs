//! The user directory in the key-value store: users, the WeCom members bound
//! to them, and the mobile-number index that matches first logins.
//!
//! Key layout (bucket `default`; values are JSON):
//!
//! | key | value |
//! |---|---|
//! | `user/<id>` | [`User`] |
//! | `mobile/<normalised mobile>` | the id of the user with that mobile |
//! | `binding/<authenticator>/<wecom userid, lowercase>` | the id of the bound user |
//! | `user-index/<shard>` | the sorted ids of the users whose id hashes to the shard (16 shards) |
//! | `profile-denied/binding/<authenticator>/<wecom userid>` | until when (Unix s) the member's logins wait for the profile: WeCom refused it at a refresh |
//!
//! WeCom compares userids ignoring case (its create-member API, doc 90195:
//! the userid is unique "不区分大小写"), so `ZhangWu` and `zhangwu` are one
//! member: binding keys and sign-up ids use the lowercase userid, every
//! comparison ignores ASCII case, and the user record keeps the spelling
//! WeCom gave first. (A binding written under a mixed-case key before this
//! rule is still found when WeCom spells the userid as it did then.)
//!
//! Consistency without transactions:
//! - The user record is the truth; `mobile/` and `binding/` keys are indexes
//!   that readers check against it (an index naming a missing user, or a user
//!   whose mobile differs, is ignored). So writes go index-first where a stale
//!   index is harmless (`mobile/` before the user) and record-first where the
//!   index is the commit point (`binding/` after the user lists the binding).
//!   A failure at any step leaves nothing a later login misreads, and the retry
//!   redoes the same writes.
//! - Listing users reads the 16 `user-index/` shards, never the store's key
//!   list (Spin's Redis store lists with `KEYS *`, the whole database). An id
//!   enters its shard before its record is written and leaves it after the
//!   record is deleted, so the index never misses a user; an id without a
//!   record is skipped. Shards spread concurrent sign-ups over 16 keys.
//!   (On Spin's SQLite store the very first write of a shard is an upsert:
//!   two users created at that same moment can lose one index entry, and
//!   with it their place in the admin listing, never their login.)
//! - A user created by sign-up gets an id derived from (authenticator, WeCom
//!   userid), so racing first logins of one member all write the same user,
//!   even on stores whose compare-and-swap on an absent key is an upsert
//!   (Spin's SQLite store). Updates of existing records use compare-and-swap.

use super::browser::truncate_at_char_boundary;
use sha2::{Digest, Sha256};

use super::error::AuthError;
use serde::{Deserialize, Serialize};

use super::mobile;
use super::ports::{KeyValue, Update, get_json, set_json, update_json};

pub const USER_PREFIX: &str = "user/";
pub const MAX_PAGE: u32 = 1000;
const MAX_NAME: usize = 256;
const MAX_EMAIL: usize = 320;
const MAX_AVATAR: usize = 2048;
const MAX_ID: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Binding {
    pub authenticator: String,
    /// As WeCom spelled it (userids compare ignoring case).
    pub wecom_userid: String,
}

impl Binding {
    /// The same member of the same authenticator, however WeCom spells the
    /// userid this time.
    pub fn same_member(&self, other: &Binding) -> bool {
        self.authenticator == other.authenticator
            && self.wecom_userid.eq_ignore_ascii_case(&other.wecom_userid)
    }

    /// Whether a session's claims name this member.
    pub fn names(&self, authenticator: &str, wecom_userid: &str) -> bool {
        self.authenticator == authenticator && self.wecom_userid.eq_ignore_ascii_case(wecom_userid)
    }
}

/// A user record, `user/<id>`. The fields added since the first release
/// (`bindings`, `created_by_signup`, `session_generation`) read as empty,
/// false and 0 from records that lack them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    pub name: String,
    pub mobile: Option<String>,
    pub email: Option<String>,
    pub avatar: Option<String>,
    #[serde(default)]
    pub bindings: Vec<Binding>,
    #[serde(default)]
    pub created_by_signup: bool,
    pub created_at: u64,
    pub updated_at: u64,
    /// Sessions carry the generation they were issued in; logout moves it on,
    /// which ends every earlier session on every instance without comparing
    /// clocks.
    #[serde(default)]
    pub session_generation: u64,
    /// Disabled when its member left WeCom (`leaver_action = disable`): no
    /// login reaches it, neither by a binding, nor by its mobile, nor a
    /// sign-up; an admin's upsert enables it again. Absent: false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disabled: bool,
}

impl User {
    pub fn is_bound_to(&self, binding: &Binding) -> bool {
        self.bindings.iter().any(|b| b.same_member(binding))
    }
}

/// What an admin provisions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserInput {
    pub id: Option<String>,
    pub name: String,
    pub mobile: Option<String>,
    pub email: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserQuery {
    Id(String),
    Mobile(String),
    Binding(Binding),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserPage {
    pub users: Vec<User>,
    pub cursor: Option<String>,
}

/// The member's profile as WeCom gave it at this login.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Profile {
    pub name: Option<String>,
    /// Normalised.
    pub mobile: Option<String>,
    pub email: Option<String>,
    pub avatar: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Existing,
    NewlyBound,
    Created,
}

impl Outcome {
    /// `existing`, `newly-bound`, `created` (the WIT enum's names).
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Existing => "existing",
            Outcome::NewlyBound => "newly-bound",
            Outcome::Created => "created",
        }
    }
}

/// How a login may find its user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatchPolicy {
    pub auto_signup: bool,
    /// Web (QR) logins never carry a mobile: no binding means "log in inside
    /// WeCom first", whatever sign-up says.
    pub web_login: bool,
}

pub fn user_key(id: &str) -> String {
    format!("{USER_PREFIX}{id}")
}

/// Shards of the user index.
const INDEX_SHARDS: u8 = 16;

fn index_key(shard: u8) -> String {
    format!("user-index/{shard:x}")
}

fn shard_of(id: &str) -> u8 {
    Sha256::digest(id.as_bytes())[0] % INDEX_SHARDS
}

/// Adds `id` to its index shard (no write when it is there already).
fn index_add(kv: &impl KeyValue, id: &str) -> Result<(), AuthError> {
    update_json::<Vec<String>, _>(kv, &index_key(shard_of(id)), |current| {
        let ids = current.cloned().unwrap_or_default();
        Ok(match ids.binary_search_by(|probe| probe.as_str().cmp(id)) {
            Ok(_) => Update::Keep,
            Err(at) => {
                let mut next = ids;
                next.insert(at, id.to_owned());
                Update::Write(next)
            }
        })
    })?;
    Ok(())
}

/// Removes `id` from its index shard.
fn index_remove(kv: &impl KeyValue, id: &str) -> Result<(), AuthError> {
    update_json::<Vec<String>, _>(kv, &index_key(shard_of(id)), |current| {
        let Some(ids) = current else {
            return Ok(Update::Keep);
        };
        Ok(match ids.binary_search_by(|probe| probe.as_str().cmp(id)) {
            Ok(at) => {
                let mut next = ids.clone();
                next.remove(at);
                Update::Write(next)
            }
            Err(_) => Update::Keep,
        })
    })?;
    Ok(())
}

pub fn mobile_key(mobile: &str) -> String {
    format!("mobile/{mobile}")
}

pub fn binding_key(binding: &Binding) -> String {
    format!(
        "binding/{}/{}",
        binding.authenticator,
        binding.wecom_userid.to_ascii_lowercase()
    )
}

/// Where a binding was kept before userids were compared ignoring case.
fn legacy_binding_key(binding: &Binding) -> Option<String> {
    let exact = format!("binding/{}/{}", binding.authenticator, binding.wecom_userid);
    (exact != binding_key(binding)).then_some(exact)
}

/// The id sign-up gives the user of a member: the same for every racing login.
pub fn signup_id(binding: &Binding) -> String {
    let digest = Sha256::new()
        .chain_update(b"wecom-auth signup\0")
        .chain_update(binding.authenticator.as_bytes())
        .chain_update([0])
        .chain_update(binding.wecom_userid.to_ascii_lowercase().as_bytes())
        .finalize();
    format!("wc-{}", hex::encode(&digest[..10]))
}

/// The id of a provisioned user given without one: from the mobile number, so
/// importing the same list twice creates nobody twice.
fn provisioned_id(mobile: Option<&str>, random: &[u8; 10]) -> String {
    match mobile {
        Some(mobile) => {
            let digest = Sha256::new()
                .chain_update(b"wecom-auth provisioned\0")
                .chain_update(mobile.as_bytes())
                .finalize();
            format!("u-{}", hex::encode(&digest[..10]))
        }
        None => format!("u-{}", hex::encode(random)),
    }
}

pub fn find_by_id(kv: &impl KeyValue, id: &str) -> Result<Option<User>, AuthError> {
    get_json::<User>(kv, &user_key(id))
}

/// The user a `mobile/` index names, if that user still has the mobile.
fn find_by_mobile(kv: &impl KeyValue, mobile: &str) -> Result<Option<User>, AuthError> {
    let Some(id) = get_json::<String>(kv, &mobile_key(mobile))? else {
        return Ok(None);
    };
    Ok(find_by_id(kv, &id)?.filter(|u| u.mobile.as_deref() == Some(mobile)))
}

/// The user a binding names, if that user still lists the binding.
/// The user `binding` is bound to, if any.
pub fn find_by_binding(kv: &impl KeyValue, binding: &Binding) -> Result<Option<User>, AuthError> {
    let Some(id) = bound_id(kv, binding)? else {
        return Ok(None);
    };
    Ok(find_by_id(kv, &id)?.filter(|u| u.is_bound_to(binding)))
}

/// The user id a binding key names (the legacy key as a fallback).
fn bound_id(kv: &impl KeyValue, binding: &Binding) -> Result<Option<String>, AuthError> {
    if let Some(id) = get_json::<String>(kv, &binding_key(binding))? {
        return Ok(Some(id));
    }
    match legacy_binding_key(binding) {
        Some(legacy) => get_json::<String>(kv, &legacy),
        None => Ok(None),
    }
}

pub fn find(kv: &impl KeyValue, query: &UserQuery) -> Result<Option<User>, AuthError> {
    match query {
        UserQuery::Id(id) => find_by_id(kv, id),
        UserQuery::Mobile(raw) => match mobile::parse(raw) {
            Ok(m) => find_by_mobile(kv, &m),
            Err(why) => Err(AuthError::bad_request("mobile", why.message())),
        },
        UserQuery::Binding(binding) => find_by_binding(kv, binding),
    }
}

/// Finds (or binds, or creates) the user of a member who just logged in, and
/// refreshes their profile.
pub fn resolve_login(
    kv: &impl KeyValue,
    binding: &Binding,
    profile: &Profile,
    policy: MatchPolicy,
    now: u64,
) -> Result<(User, Outcome), AuthError> {
    if let Some(user) = find_by_binding(kv, binding)? {
        if user.disabled {
            return Err(AuthError::UserDisabled);
        }
        let user = refresh(kv, &user, binding, profile, now)?;
        return Ok((user, Outcome::Existing));
    }
    let Some(mobile) = profile.mobile.as_deref() else {
        if policy.web_login {
            return Err(AuthError::FirstLoginInClient);
        }
        // Inside WeCom without a mobile (the member declined privateinfo):
        // nothing to match, but sign-up can still create the member's user.
        if !policy.auto_signup {
            return Err(AuthError::UserNotFound);
        }
        return create(kv, binding, profile, now);
    };
    if let Some(user) = find_by_mobile(kv, mobile)? {
        if user.disabled {
            return Err(AuthError::UserDisabled);
        }
        let user = refresh(kv, &user, binding, profile, now)?;
        set_json(kv, &binding_key(binding), &user.id)?;
        return Ok((user, Outcome::NewlyBound));
    }
    if policy.web_login {
        return Err(AuthError::FirstLoginInClient);
    }
    if !policy.auto_signup {
        return Err(AuthError::UserNotFound);
    }
    create(kv, binding, profile, now)
}

/// Applies a profile fetched after a login was answered to the user
/// `binding` is bound to (as [`resolve_login`] applies it to a bound user);
/// nothing when the binding is gone since.
pub fn refresh_bound(
    kv: &impl KeyValue,
    binding: &Binding,
    profile: &Profile,
    now: u64,
) -> Result<(), AuthError> {
    let Some(user) = find_by_binding(kv, binding)? else {
        return Ok(());
    };
    let profile = &applicable(kv, &user, profile)?;
    // An unbind landing meanwhile wins: the refresh never binds again.
    update_json::<User, _>(kv, &user_key(&user.id), |current| {
        Ok(match current {
            Some(user) if user.is_bound_to(binding) => {
                match refreshed(user, binding, profile, now) {
                    Some(next) => Update::Write(next),
                    None => Update::Keep,
                }
            }
            _ => Update::Keep,
        })
    })?;
    Ok(())
}

/// How long a member WeCom refused at a profile refresh logs in the slow
/// way (waiting for the profile, which shows the refusal).
pub const DENIED_SECONDS: u64 = 3600;

fn denied_key(binding: &Binding) -> String {
    format!("profile-denied/{}", binding_key(binding))
}

/// Remembers that WeCom refused this member at a refresh (one key per
/// binding, overwritten, so bounded by the bindings).
pub fn mark_denied(kv: &impl KeyValue, binding: &Binding, now: u64) -> Result<(), AuthError> {
    set_json(kv, &denied_key(binding), &(now + DENIED_SECONDS))
}

/// Remembers that this member left WeCom (deleted, disabled): until a login
/// of theirs succeeds again ([`clear_denied`]), their logins wait for
/// WeCom's answer and a directory sync does not end them again.
pub fn mark_left(kv: &impl KeyValue, binding: &Binding) -> Result<(), AuthError> {
    set_json(kv, &denied_key(binding), &u64::MAX)
}

/// Whether WeCom refused this member at a refresh within [`DENIED_SECONDS`],
/// or the member left ([`mark_left`]).
pub fn recently_denied(kv: &impl KeyValue, binding: &Binding, now: u64) -> bool {
    matches!(get_json::<u64>(kv, &denied_key(binding)), Ok(Some(until)) if until > now)
}

/// Forgets a refusal (a refresh went through). Losing this costs one slow login.
pub fn clear_denied(kv: &impl KeyValue, binding: &Binding) {
    let _ = kv.delete(&denied_key(binding));
}

/// Sign-up: mobile index, then the user (listing the binding), then the binding.
fn create(
    kv: &impl KeyValue,
    binding: &Binding,
    profile: &Profile,
    now: u64,
) -> Result<(User, Outcome), AuthError> {
    let id = signup_id(binding);
    // A sign-up of this member's userid again never takes a disabled user.
    if find_by_id(kv, &id)?.is_some_and(|user| user.disabled) {
        return Err(AuthError::UserDisabled);
    }
    if let Some(mobile) = &profile.mobile {
        set_json(kv, &mobile_key(mobile), &id)?;
    }
    index_add(kv, &id)?;
    let mut created = false;
    let (user, _) = update_json::<User, _>(kv, &user_key(&id), |current| {
        created = current.is_none();
        Ok(match current {
            Some(user) if user.disabled => return Err(AuthError::UserDisabled),
            Some(user) => match refreshed(user, binding, profile, now) {
                Some(next) => Update::Write(next),
                None => Update::Keep,
            },
            None => Update::Write(User {
                id: id.clone(),
                name: profile
                    .name
                    .clone()
                    .unwrap_or_else(|| binding.wecom_userid.clone()),
                mobile: profile.mobile.clone(),
                email: profile.email.clone(),
                avatar: profile.avatar.clone(),
                bindings: vec![binding.clone()],
                created_by_signup: true,
                created_at: now,
                updated_at: now,
                session_generation: 0,
                disabled: false,
            }),
        })
    })?;
    let user = user.ok_or_else(|| AuthError::Store("the new user vanished".into()))?;
    set_json(kv, &binding_key(binding), &id)?;
    let outcome = if created {
        Outcome::Created
    } else {
        Outcome::Existing
    };
    Ok((user, outcome))
}

/// The part of a login's `profile` that may apply to `user`: a mobile
/// fills in one the user lacks (a user bound before WeCom had it, or by a
/// login that yielded none) only when no other user has it, and its
/// `mobile/` index is written first, so a first login or a lookup by that
/// mobile finds the user. (Two users lacking a mobile, logging in at once
/// with the same one, could both take it: WeCom gives a mobile to one
/// member of a company only.)
fn applicable(kv: &impl KeyValue, user: &User, profile: &Profile) -> Result<Profile, AuthError> {
    let mut profile = profile.clone();
    if let (None, Some(mobile)) = (&user.mobile, &profile.mobile) {
        match find_by_mobile(kv, mobile)? {
            Some(other) if other.id != user.id => profile.mobile = None,
            _ => set_json(kv, &mobile_key(mobile), &user.id)?,
        }
    }
    Ok(profile)
}

/// Adds the binding and the login's profile to `user` (compare-and-swap);
/// writes nothing when nothing changed.
fn refresh(
    kv: &impl KeyValue,
    user: &User,
    binding: &Binding,
    profile: &Profile,
    now: u64,
) -> Result<User, AuthError> {
    let id = user.id.as_str();
    let profile = &applicable(kv, user, profile)?;
    let (user, _) = update_json::<User, _>(kv, &user_key(id), |current| {
        let Some(user) = current else {
            return Err(AuthError::Store(format!(
                "user {id:?} was deleted during the login"
            )));
        };
        // Disabled since it was read: this login does not reach it.
        if user.disabled {
            return Err(AuthError::UserDisabled);
        }
        Ok(match refreshed(user, binding, profile, now) {
            Some(next) => Update::Write(next),
            None => Update::Keep,
        })
    })?;
    user.ok_or_else(|| AuthError::Store("the user vanished".into()))
}

/// `user` with the binding and profile applied, or None when that changes nothing.
/// An admin-provisioned mobile is never replaced by a login.
fn refreshed(user: &User, binding: &Binding, profile: &Profile, now: u64) -> Option<User> {
    let mut next = user.clone();
    if !next.is_bound_to(binding) {
        next.bindings.push(binding.clone());
    }
    if let Some(name) = profile.name.as_ref().filter(|n| !n.is_empty()) {
        next.name = bounded(name, MAX_NAME);
    }
    if let Some(email) = profile.email.as_ref().filter(|e| !e.is_empty()) {
        next.email = Some(bounded(email, MAX_EMAIL));
    }
    if let Some(avatar) = profile.avatar.as_ref().filter(|a| !a.is_empty()) {
        next.avatar = Some(bounded(avatar, MAX_AVATAR));
    }
    if next.mobile.is_none() {
        next.mobile = profile.mobile.clone();
    }
    if next == *user {
        return None;
    }
    next.updated_at = now;
    Some(next)
}

fn bounded(text: &str, max: usize) -> String {
    truncate_at_char_boundary(text, max).to_owned()
}

/// Creates or updates a provisioned user. Index first, then the record, then
/// the old mobile's index goes.
pub fn upsert(
    kv: &impl KeyValue,
    input: &UserInput,
    now: u64,
    random: &[u8; 10],
) -> Result<User, AuthError> {
    let name = input.name.trim();
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(AuthError::bad_request(
            "name",
            format!("must be 1 to {MAX_NAME} bytes"),
        ));
    }
    let mobile = match input
        .mobile
        .as_deref()
        .map(str::trim)
        .filter(|m| !m.is_empty())
    {
        None => None,
        Some(raw) => Some(mobile::parse(raw).map_err(|why| {
            AuthError::bad_request(
                "mobile",
                format!("{}, e.g. +86 138 0000 0000", why.message()),
            )
        })?),
    };
    let email = input
        .email
        .as_deref()
        .map(str::trim)
        .filter(|e| !e.is_empty());
    if let Some(email) = email
        && (email.len() > MAX_EMAIL || !email.contains('@') || email.contains(char::is_whitespace))
    {
        return Err(AuthError::bad_request("email", "is not an email address"));
    }
    if let Some(id) = &input.id {
        check_id(id)?;
    }
    let owner = match &mobile {
        Some(m) => find_by_mobile(kv, m)?,
        None => None,
    };
    let id = match (&input.id, &owner) {
        (Some(id), Some(owner)) if owner.id != *id => {
            return Err(AuthError::Conflict(format!(
                "mobile number already belongs to user {}",
                owner.id
            )));
        }
        (Some(id), _) => id.clone(),
        (None, Some(owner)) => owner.id.clone(),
        (None, None) => provisioned_id(mobile.as_deref(), random),
    };
    if let Some(m) = &mobile {
        set_json(kv, &mobile_key(m), &id)?;
    }
    index_add(kv, &id)?;
    let mut previous_mobile = None;
    let (user, _) = update_json::<User, _>(kv, &user_key(&id), |current| {
        previous_mobile = current.and_then(|u| u.mobile.clone());
        let mut next = current.cloned().unwrap_or_else(|| User {
            id: id.clone(),
            name: String::new(),
            mobile: None,
            email: None,
            avatar: None,
            bindings: Vec::new(),
            created_by_signup: false,
            created_at: now,
            updated_at: now,
            session_generation: 0,
            disabled: false,
        });
        next.name = name.to_owned();
        // The admin provisions it again: enabled.
        next.disabled = false;
        next.mobile = mobile.clone();
        next.email = email.map(str::to_owned);
        next.updated_at = now;
        Ok(Update::Write(next))
    })?;
    let user = user.ok_or_else(|| AuthError::Store("the user vanished".into()))?;
    if let Some(old) = previous_mobile.filter(|old| Some(old) != mobile.as_ref()) {
        drop_index_if_points_to(kv, &mobile_key(&old), &id)?;
    }
    Ok(user)
}

/// Deletes a user: bindings and mobile index first (so no login finds a
/// half-deleted user), the record last.
pub fn delete(kv: &impl KeyValue, id: &str) -> Result<bool, AuthError> {
    let Some(user) = find_by_id(kv, id)? else {
        return Ok(false);
    };
    for binding in &user.bindings {
        drop_index_if_points_to(kv, &binding_key(binding), id)?;
        if let Some(legacy) = legacy_binding_key(binding) {
            drop_index_if_points_to(kv, &legacy, id)?;
        }
    }
    if let Some(m) = &user.mobile {
        drop_index_if_points_to(kv, &mobile_key(m), id)?;
    }
    kv.delete(&user_key(id))?;
    index_remove(kv, id)?;
    Ok(true)
}

/// Removes a binding: the binding key first (logins stop finding it), then the
/// entry in the user's record.
pub fn unbind(kv: &impl KeyValue, binding: &Binding, now: u64) -> Result<bool, AuthError> {
    let Some(id) = bound_id(kv, binding)? else {
        return Ok(false);
    };
    kv.delete(&binding_key(binding))?;
    if let Some(legacy) = legacy_binding_key(binding) {
        kv.delete(&legacy)?;
    }
    update_json::<User, _>(kv, &user_key(&id), |current| {
        Ok(match current {
            Some(user) if user.is_bound_to(binding) => {
                let mut next = user.clone();
                next.bindings.retain(|b| !b.same_member(binding));
                next.updated_at = now;
                Update::Write(next)
            }
            _ => Update::Keep,
        })
    })?;
    Ok(true)
}

/// Moves a binding to the member's new userid (WeCom lets a userid change
/// once: `update_user` with `NewUserID`): the new binding key first (the
/// renamed member's logins find the user), then the user's record, then the
/// old key goes. None when `old` is bound to no user. A `new` still bound
/// to another user is stale (WeCom gives a userid to one member at a time:
/// a leaver's kept binding): it goes, and that user's sessions end, so the
/// renamed member never lands in someone else's account.
pub fn rename_binding(
    kv: &impl KeyValue,
    old: &Binding,
    new: &Binding,
    now: u64,
) -> Result<Option<User>, AuthError> {
    let id = bound_id(kv, old)?;
    // The user that really lists `new` (a stale key names no one).
    if let Some(other) = find_by_binding(kv, new)?.filter(|other| Some(&other.id) != id.as_ref()) {
        unbind(kv, new, now)?;
        end_sessions(kv, &other.id, now)?;
    }
    let Some(id) = id else {
        return Ok(None);
    };
    set_json(kv, &binding_key(new), &id)?;
    let (user, _) = update_json::<User, _>(kv, &user_key(&id), |current| {
        Ok(match current {
            Some(user) if user.is_bound_to(old) => {
                let mut next = user.clone();
                next.bindings
                    .retain(|b| !b.same_member(old) && !b.same_member(new));
                next.bindings.push(new.clone());
                next.updated_at = now;
                Update::Write(next)
            }
            _ => Update::Keep,
        })
    })?;
    if !old.same_member(new) {
        drop_index_if_points_to(kv, &binding_key(old), &id)?;
        if let Some(legacy) = legacy_binding_key(old) {
            drop_index_if_points_to(kv, &legacy, &id)?;
        }
    }
    Ok(user)
}

/// Disables user `id` (its member left WeCom) and ends its sessions: no
/// login reaches it until an admin's [`upsert`]. False when there is no
/// such user.
pub fn disable(kv: &impl KeyValue, id: &str, now: u64) -> Result<bool, AuthError> {
    next_generation(kv, id, now, true)
}

/// Ends every session of user `id` issued so far (logout: stateless tokens
/// cannot be recalled one by one, so the user's session generation moves on
/// and tokens of earlier generations stop counting; no clock is compared).
/// False when there is no such user.
pub fn end_sessions(kv: &impl KeyValue, id: &str, now: u64) -> Result<bool, AuthError> {
    next_generation(kv, id, now, false)
}

/// Moves user `id`'s session generation on, disabling the user too when
/// `disable`; false when there is no such user.
fn next_generation(
    kv: &impl KeyValue,
    id: &str,
    now: u64,
    disable: bool,
) -> Result<bool, AuthError> {
    let (user, _) = update_json::<User, _>(kv, &user_key(id), |current| {
        Ok(match current {
            Some(user) => {
                let mut next = user.clone();
                next.disabled |= disable;
                next.session_generation = user.session_generation.wrapping_add(1);
                next.updated_at = now;
                Update::Write(next)
            }
            None => Update::Keep,
        })
    })?;
    Ok(user.is_some())
}

/// Users in id order, `limit` at a time, after `cursor` (an id).
pub fn list(kv: &impl KeyValue, cursor: Option<&str>, limit: u32) -> Result<UserPage, AuthError> {
    if limit == 0 || limit > MAX_PAGE {
        return Err(AuthError::bad_request(
            "limit",
            format!("must be 1 to {MAX_PAGE}"),
        ));
    }
    let mut ids = Vec::new();
    for shard in 0..INDEX_SHARDS {
        let shard: Vec<String> = get_json(kv, &index_key(shard))?.unwrap_or_default();
        ids.extend(
            shard
                .into_iter()
                .filter(|id| cursor.is_none_or(|c| id.as_str() > c)),
        );
    }
    ids.sort();
    let more = ids.len() > limit as usize;
    ids.truncate(limit as usize);
    // One `get` per user: `get-many` is broken on Spin 3.6's Redis store.
    let mut users = Vec::with_capacity(ids.len());
    for id in &ids {
        users.extend(find_by_id(kv, id)?);
    }
    let cursor = if more { ids.last().cloned() } else { None };
    Ok(UserPage { users, cursor })
}

fn drop_index_if_points_to(kv: &impl KeyValue, key: &str, id: &str) -> Result<(), AuthError> {
    if get_json::<String>(kv, key)?.as_deref() == Some(id) {
        kv.delete(key)?;
    }
    Ok(())
}

fn check_id(id: &str) -> Result<(), AuthError> {
    let ok = !id.is_empty()
        && id.len() <= MAX_ID
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(AuthError::bad_request(
            "id",
            format!("must be 1 to {MAX_ID} letters, digits, - _ . or @"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::ports::MemoryKv;

    #[test]
    fn users_bindings_and_indexes_of_todays_layout_read_and_are_written_the_same() {
        let kv = MemoryKv::default();
        let today = crate::core::ports::stored_record("user.json");
        kv.set("user/u-3f2a9c01d4e5b6a7c8d9", &today).unwrap();
        let user = find_by_id(&kv, "u-3f2a9c01d4e5b6a7c8d9").unwrap().unwrap();
        assert_eq!(user.bindings.len(), 1);
        assert_eq!(user.session_generation, 2);
        set_json(&kv, "user/again", &user).unwrap();
        assert_eq!(kv.get("user/again").unwrap().unwrap(), today);

        let first = crate::core::ports::stored_record("user.first-release.json");
        kv.set("user/u-7b1e", &first).unwrap();
        let user = find_by_id(&kv, "u-7b1e").unwrap().unwrap();
        assert_eq!(
            (user.name.as_str(), user.mobile, user.bindings.len()),
            ("李四", None, 0)
        );
        assert!(!user.created_by_signup && user.session_generation == 0);

        let id: String = crate::core::ports::assert_layout_kept("binding.json");
        assert_eq!(id, "u-3f2a9c01d4e5b6a7c8d9");
        let shard: Vec<String> = crate::core::ports::assert_layout_kept("user-index.json");
        assert_eq!(shard.len(), 2);
        let until: u64 = crate::core::ports::assert_layout_kept("profile-denied.json");
        assert_eq!(until, 1_764_547_500);
    }

    const NOW: u64 = 1_790_000_000;
    const RANDOM: [u8; 10] = [3; 10];

    fn zhangsan() -> Binding {
        Binding {
            authenticator: "corp".into(),
            wecom_userid: "zhangsan".into(),
        }
    }

    fn profile(mobile: Option<&str>) -> Profile {
        Profile {
            name: Some("张三".into()),
            mobile: mobile.map(Into::into),
            email: Some("zhangsan@corp.wecom.work".into()),
            avatar: Some("http://a/0".into()),
        }
    }

    const IN_CLIENT_SIGNUP: MatchPolicy = MatchPolicy {
        auto_signup: true,
        web_login: false,
    };

    fn member(userid: &str) -> Binding {
        Binding {
            authenticator: "corp".into(),
            wecom_userid: userid.into(),
        }
    }

    const WEB: MatchPolicy = MatchPolicy {
        auto_signup: false,
        web_login: true,
    };

    #[test]
    fn a_user_of_the_first_layout_is_read_updated_and_deleted() {
        // Written before bindings, sign-up and session generations existed.
        let kv = MemoryKv::default();
        kv.set(
            &user_key("u-old"),
            r#"{"id":"u-old","name":"老用户","mobile":null,"email":null,"avatar":null,"created_at":1,"updated_at":1}"#.as_bytes(),
        )
        .unwrap();
        let old = find_by_id(&kv, "u-old").unwrap().unwrap();
        assert_eq!(
            (
                old.bindings.len(),
                old.created_by_signup,
                old.session_generation
            ),
            (0, false, 0)
        );
        let input = UserInput {
            id: Some("u-old".into()),
            name: "老用户".into(),
            mobile: Some("13800000077".into()),
            email: None,
        };
        let updated = upsert(&kv, &input, NOW, &RANDOM).unwrap();
        assert_eq!(updated.mobile.as_deref(), Some("13800000077"));
        assert!(delete(&kv, "u-old").unwrap());
    }

    /// `alice` provisioned with a mobile, then bound at the in-client login
    /// of the member WeCom spells `ZhangWu`.
    fn alice_bound_as_zhangwu(kv: &MemoryKv) -> (User, Outcome) {
        provision(kv, "13800000000");
        let login = profile(Some("13800000000"));
        resolve_login(kv, &member("ZhangWu"), &login, IN_CLIENT_SIGNUP, NOW).unwrap()
    }

    #[test]
    fn a_userid_is_one_member_whatever_its_case() {
        let kv = MemoryKv::default();
        let (bound, outcome) = alice_bound_as_zhangwu(&kv);
        assert_eq!((bound.id.as_str(), outcome), ("alice", Outcome::NewlyBound));
        // A later QR login spells it otherwise: still the bound member.
        for spelling in ["zhangwu", "ZHANGWU", "ZhangWu"] {
            let (user, outcome) =
                resolve_login(&kv, &member(spelling), &profile(None), WEB, NOW).unwrap();
            assert_eq!(
                (user.id.as_str(), outcome),
                ("alice", Outcome::Existing),
                "{spelling}"
            );
            assert_eq!(
                user.bindings,
                [member("ZhangWu")],
                "the first spelling is kept"
            );
        }
        let query = UserQuery::Binding(member("zhangWU"));
        assert_eq!(find(&kv, &query).unwrap().unwrap().id, "alice");
        // The admin unbinds with yet another spelling.
        assert!(unbind(&kv, &member("zhangwu"), NOW).unwrap());
        assert!(
            find_by_id(&kv, "alice")
                .unwrap()
                .unwrap()
                .bindings
                .is_empty()
        );
        assert_eq!(find(&kv, &query).unwrap(), None);
    }

    #[test]
    fn sign_up_gives_one_user_to_every_spelling_of_a_userid() {
        let kv = MemoryKv::default();
        let (first, _) =
            resolve_login(&kv, &member("LiSi"), &profile(None), IN_CLIENT_SIGNUP, NOW).unwrap();
        assert_eq!(signup_id(&member("LiSi")), signup_id(&member("lisi")));
        let (again, outcome) =
            resolve_login(&kv, &member("lisi"), &profile(None), IN_CLIENT_SIGNUP, NOW).unwrap();
        assert_eq!((again.id, outcome), (first.id, Outcome::Existing));
    }

    #[test]
    fn a_binding_kept_under_its_old_mixed_case_key_is_still_found_and_unbound() {
        let kv = MemoryKv::default();
        alice_bound_as_zhangwu(&kv);
        // As an earlier release kept it: the exact spelling in the key.
        let id = kv.get(&binding_key(&member("ZhangWu"))).unwrap().unwrap();
        kv.delete(&binding_key(&member("ZhangWu"))).unwrap();
        kv.set("binding/corp/ZhangWu", &id).unwrap();
        let (user, _) = resolve_login(&kv, &member("ZhangWu"), &profile(None), WEB, NOW).unwrap();
        assert_eq!(user.id, "alice");
        assert!(unbind(&kv, &member("ZhangWu"), NOW).unwrap());
        assert_eq!(kv.get("binding/corp/ZhangWu").unwrap(), None);
    }

    fn provision(kv: &MemoryKv, mobile: &str) -> User {
        let input = UserInput {
            id: Some("alice".into()),
            name: "Alice".into(),
            mobile: Some(mobile.into()),
            email: None,
        };
        upsert(kv, &input, NOW, &RANDOM).unwrap()
    }

    /// A user bound without a mobile gets the member's at a login that
    /// yields one, with its index (a lookup by that mobile finds them),
    /// unless another user has it: mobiles stay unique.
    #[test]
    fn a_bound_user_without_a_mobile_gets_the_members_with_its_index() {
        let kv = MemoryKv::default();
        let (user, _) =
            resolve_login(&kv, &zhangsan(), &profile(None), IN_CLIENT_SIGNUP, NOW).unwrap();
        assert_eq!(user.mobile, None);
        let mobile = Some("13800000000");
        let (user, outcome) = resolve_login(
            &kv,
            &zhangsan(),
            &profile(mobile),
            IN_CLIENT_SIGNUP,
            NOW + 1,
        )
        .unwrap();
        assert_eq!(outcome, Outcome::Existing);
        assert_eq!(user.mobile.as_deref(), mobile);
        let found = find_by_mobile(&kv, "13800000000").unwrap();
        assert_eq!(found.map(|u| u.id), Some(user.id.clone()));
        // A profile refreshed after an answer does the same, but never takes
        // another user's mobile.
        let (lisi, _) =
            resolve_login(&kv, &member("lisi"), &profile(None), IN_CLIENT_SIGNUP, NOW).unwrap();
        refresh_bound(&kv, &member("lisi"), &profile(mobile), NOW + 2).unwrap();
        assert_eq!(find_by_id(&kv, &lisi.id).unwrap().unwrap().mobile, None);
        let found = find_by_mobile(&kv, "13800000000").unwrap();
        assert_eq!(found.map(|u| u.id), Some(user.id));
        refresh_bound(&kv, &member("lisi"), &profile(Some("13900000001")), NOW + 3).unwrap();
        let found = find_by_mobile(&kv, "13900000001").unwrap();
        assert_eq!(found.map(|u| u.id), Some(lisi.id));
    }

    #[test]
    fn a_provisioned_mobile_in_any_spelling_matches_and_binds() {
        let kv = MemoryKv::default();
        provision(&kv, "+86 138 0000 0000");
        let policy = MatchPolicy {
            auto_signup: false,
            web_login: false,
        };
        let (user, outcome) =
            resolve_login(&kv, &zhangsan(), &profile(Some("13800000000")), policy, NOW).unwrap();
        assert_eq!((user.id.as_str(), outcome), ("alice", Outcome::NewlyBound));
        assert_eq!(user.name, "张三", "the profile is refreshed");
        assert_eq!(user.bindings, [zhangsan()]);
        // A QR login now finds the binding, with no mobile.
        let web = MatchPolicy {
            auto_signup: false,
            web_login: true,
        };
        let (again, outcome) =
            resolve_login(&kv, &zhangsan(), &Profile::default(), web, NOW).unwrap();
        assert_eq!((again.id.as_str(), outcome), ("alice", Outcome::Existing));
    }

    #[test]
    fn sign_up_creates_once_and_off_means_user_not_found() {
        let kv = MemoryKv::default();
        let off = MatchPolicy {
            auto_signup: false,
            web_login: false,
        };
        assert_eq!(
            resolve_login(&kv, &zhangsan(), &profile(Some("13800000000")), off, NOW),
            Err(AuthError::UserNotFound)
        );
        assert!(kv.keys().is_empty(), "a refusal writes nothing");
        let (user, outcome) = resolve_login(
            &kv,
            &zhangsan(),
            &profile(Some("13800000000")),
            IN_CLIENT_SIGNUP,
            NOW,
        )
        .unwrap();
        assert_eq!(outcome, Outcome::Created);
        assert_eq!(user.id, signup_id(&zhangsan()));
        assert!(user.created_by_signup);
        let (same, outcome) = resolve_login(
            &kv,
            &zhangsan(),
            &profile(Some("13800000000")),
            IN_CLIENT_SIGNUP,
            NOW + 5,
        )
        .unwrap();
        assert_eq!((same.id, outcome), (user.id, Outcome::Existing));
        assert_eq!(list(&kv, None, 10).unwrap().users.len(), 1);
    }

    #[test]
    fn web_login_without_binding_asks_for_a_first_login_in_client() {
        let kv = MemoryKv::default();
        let web = MatchPolicy {
            auto_signup: true,
            web_login: true,
        };
        assert_eq!(
            resolve_login(&kv, &zhangsan(), &Profile::default(), web, NOW),
            Err(AuthError::FirstLoginInClient)
        );
    }

    #[test]
    fn a_fault_at_every_write_then_a_clean_retry_gives_one_consistent_user() {
        for mobile_known in [false, true] {
            for failing_write in 0..6 {
                let kv = MemoryKv::default();
                if mobile_known {
                    provision(&kv, "13800000000");
                }
                kv.fail_write_at(failing_write as u64);
                let first = resolve_login(
                    &kv,
                    &zhangsan(),
                    &profile(Some("13800000000")),
                    IN_CLIENT_SIGNUP,
                    NOW,
                );
                kv.faults().clear();
                let (user, _) = resolve_login(
                    &kv,
                    &zhangsan(),
                    &profile(Some("13800000000")),
                    IN_CLIENT_SIGNUP,
                    NOW + 1,
                )
                .unwrap_or_else(|e| panic!("retry after fault {failing_write}: {e} ({first:?})"));
                let all = list(&kv, None, 10).unwrap().users;
                assert_eq!(all.len(), 1, "fault {failing_write}");
                assert_eq!(all[0], user);
                assert_eq!(user.bindings, [zhangsan()]);
                let expected_id = if mobile_known {
                    "alice".to_owned()
                } else {
                    signup_id(&zhangsan())
                };
                assert_eq!(user.id, expected_id);
                assert_eq!(
                    find(&kv, &UserQuery::Binding(zhangsan()))
                        .unwrap()
                        .unwrap()
                        .id,
                    expected_id
                );
                assert_eq!(
                    find(&kv, &UserQuery::Mobile("+8613800000000".into()))
                        .unwrap()
                        .unwrap()
                        .id,
                    expected_id
                );
            }
        }
    }

    #[test]
    fn an_unchanged_profile_writes_nothing() {
        let kv = MemoryKv::default();
        resolve_login(
            &kv,
            &zhangsan(),
            &profile(Some("13800000000")),
            IN_CLIENT_SIGNUP,
            NOW,
        )
        .unwrap();
        kv.fail_write_at(0);
        resolve_login(
            &kv,
            &zhangsan(),
            &profile(Some("13800000000")),
            IN_CLIENT_SIGNUP,
            NOW + 9,
        )
        .expect("no write, so the armed fault never fires");
    }

    #[test]
    fn upsert_keeps_mobiles_unique_and_moves_the_index() {
        let kv = MemoryKv::default();
        let alice = provision(&kv, "13800000000");
        let bob = UserInput {
            id: Some("bob".into()),
            name: "Bob".into(),
            mobile: Some("+86 138-0000-0000".into()),
            email: None,
        };
        assert!(matches!(
            upsert(&kv, &bob, NOW, &RANDOM),
            Err(AuthError::Conflict(_))
        ));
        let moved = UserInput {
            id: Some(alice.id.clone()),
            name: "Alice".into(),
            mobile: Some("13900000001".into()),
            email: Some("alice@example.com".into()),
        };
        upsert(&kv, &moved, NOW, &RANDOM).unwrap();
        assert_eq!(
            find(&kv, &UserQuery::Mobile("13800000000".into())).unwrap(),
            None
        );
        assert!(
            upsert(&kv, &bob, NOW, &RANDOM).is_ok(),
            "the old number is free again"
        );
        // Without an id, the same mobile updates the same user (idempotent import).
        let again = UserInput {
            id: None,
            name: "Bobby".into(),
            mobile: Some("13800000000".into()),
            email: None,
        };
        assert_eq!(upsert(&kv, &again, NOW, &RANDOM).unwrap().id, "bob");
        let carol = UserInput {
            id: None,
            name: "Carol".into(),
            mobile: Some("13700000000".into()),
            email: None,
        };
        let first = upsert(&kv, &carol, NOW, &RANDOM).unwrap();
        assert_eq!(upsert(&kv, &carol, NOW, &[9; 10]).unwrap().id, first.id);
        assert_eq!(list(&kv, None, 100).unwrap().users.len(), 3);
    }

    #[test]
    fn bad_input_names_its_field() {
        let kv = MemoryKv::default();
        for (input, field) in [
            (
                UserInput {
                    name: " ".into(),
                    ..UserInput::default()
                },
                "name",
            ),
            (
                UserInput {
                    name: "a".into(),
                    mobile: Some("call me".into()),
                    ..UserInput::default()
                },
                "mobile",
            ),
            (
                UserInput {
                    name: "a".into(),
                    email: Some("nope".into()),
                    ..UserInput::default()
                },
                "email",
            ),
            (
                UserInput {
                    name: "a".into(),
                    id: Some("a/b".into()),
                    ..UserInput::default()
                },
                "id",
            ),
        ] {
            match upsert(&kv, &input, NOW, &RANDOM) {
                Err(AuthError::BadRequest { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: {other:?}"),
            }
        }
        assert!(list(&kv, None, 0).is_err());
    }

    #[test]
    fn delete_and_unbind_leave_no_dangling_index() {
        let kv = MemoryKv::default();
        let (user, _) = resolve_login(
            &kv,
            &zhangsan(),
            &profile(Some("13800000000")),
            IN_CLIENT_SIGNUP,
            NOW,
        )
        .unwrap();
        assert!(unbind(&kv, &zhangsan(), NOW).unwrap());
        assert!(!unbind(&kv, &zhangsan(), NOW).unwrap());
        assert!(
            find_by_id(&kv, &user.id)
                .unwrap()
                .unwrap()
                .bindings
                .is_empty()
        );
        // The mobile binds the member again.
        let (again, outcome) = resolve_login(
            &kv,
            &zhangsan(),
            &profile(Some("13800000000")),
            IN_CLIENT_SIGNUP,
            NOW,
        )
        .unwrap();
        assert_eq!(
            (again.id.as_str(), outcome),
            (user.id.as_str(), Outcome::NewlyBound)
        );
        assert!(delete(&kv, &user.id).unwrap());
        assert!(!delete(&kv, &user.id).unwrap());
        // An index shard may stay, empty (deleting it could race an add).
        let left = kv.keys();
        assert!(
            left.iter().all(|k| k.starts_with("user-index/")
                && kv.get(k).unwrap().as_deref() == Some(&b"[]"[..])),
            "{left:?}"
        );
    }

    #[test]
    fn listing_reads_the_index_never_the_store_key_list() {
        let kv = MemoryKv::default();
        for n in 0..40 {
            let input = UserInput {
                id: Some(format!("u{n:02}")),
                name: format!("User {n}"),
                mobile: None,
                email: None,
            };
            upsert(&kv, &input, NOW, &RANDOM).unwrap();
        }
        resolve_login(&kv, &member("new"), &profile(None), IN_CLIENT_SIGNUP, NOW).unwrap();
        // Unrelated keys (another app sharing Redis) are never listed.
        kv.set("someone-else/user/x", b"1").unwrap();
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let page = list(&kv, cursor.as_deref(), 7).unwrap();
            seen.extend(page.users.into_iter().map(|u| u.id));
            match page.cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        assert_eq!(seen.len(), 41);
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
        assert!(delete(&kv, "u07").unwrap());
        assert_eq!(list(&kv, None, 100).unwrap().users.len(), 40);
        assert_eq!(kv.faults().count(host_drafts::keyvalue::Op::ListKeys), 0);
    }

    #[test]
    fn list_pages_in_id_order() {
        let kv = MemoryKv::default();
        for i in 0..5 {
            let input = UserInput {
                id: Some(format!("u{i}")),
                name: format!("U{i}"),
                ..UserInput::default()
            };
            upsert(&kv, &input, NOW, &RANDOM).unwrap();
        }
        let first = list(&kv, None, 2).unwrap();
        assert_eq!(
            first
                .users
                .iter()
                .map(|u| u.id.as_str())
                .collect::<Vec<_>>(),
            ["u0", "u1"]
        );
        let second = list(&kv, first.cursor.as_deref(), 3).unwrap();
        assert_eq!(
            second
                .users
                .iter()
                .map(|u| u.id.as_str())
                .collect::<Vec<_>>(),
            ["u2", "u3", "u4"]
        );
        assert_eq!(second.cursor, None);
    }
}

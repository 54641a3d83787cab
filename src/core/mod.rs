//! The pure core: plain Rust, no WIT and no WASI. Time and randomness come in
//! as arguments, the store and HTTP through the traits in [`ports`], so every
//! rule here is unit-tested natively.
//!
//! | module | concept |
//! |---|---|
//! | [`access`], [`facts`] | who may enter: rules by WeCom member, department and tag; the facts from WeCom, cached |
//! | [`settings`] | an authenticator's settings and their checks |
//! | [`browser`], [`flow`] | which client asks; in-client OAuth or web login |
//! | [`state`], [`used_states`] | the OAuth `state` bound to the browser; its single use |
//! | [`urls`], [`return_path`] | WeCom's and our URLs; safe return paths |
//! | [`wecom`] | the WeCom server API with its token cache |
//! | [`directory`], [`mobile`] | users, bindings, the mobile index |
//! | [`login`] | the login flow over all of the above |
//! | [`session`], [`cookie`] | session tokens; the cookies we set |
//! | [`setup`] | the admin's setup check against WeCom |
//! | [`events`], [`contact_changes`], [`sync`] | WeCom's callbacks, checked and decrypted; what a contact change does; the directory sync that repairs missed ones |
//! | [`error`], [`texts`] | one error type; every zh/en text |
//! | [`expiring`], [`rate_limit`] | short-lived keys swept without listing; request rates |
//! | [`ports`] | the store and HTTP as traits |
//! | [`warnings`] | guards that cannot work as configured, said aloud |

pub mod access;
pub mod browser;
pub mod contact_changes;
pub mod cookie;
pub mod directory;
pub mod error;
pub mod events;
pub mod expiring;
pub mod facts;
pub mod flow;
pub mod login;
pub mod mobile;
pub mod ports;
pub mod rate_limit;
pub mod return_path;
pub mod session;
pub mod settings;
pub mod setup;
pub mod state;
pub mod sync;
pub mod texts;
pub mod urls;
pub mod used_states;
pub mod warnings;
pub mod wecom;

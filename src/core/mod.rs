//! The pure core: plain Rust, no WIT and no WASI. Time and randomness come in
//! as arguments, so every rule here is unit-tested natively.

pub mod browser;
pub mod cookie;
pub mod directory;
pub mod error;
pub mod login;
pub mod mobile;
pub mod ports;
pub mod return_path;
pub mod session;
pub mod settings;
pub mod state;
pub mod urls;
pub mod wecom;

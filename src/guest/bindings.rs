//! The guest bindings of the world `wecom-auth` (`../../wit`), and the type
//! the exports are implemented on.

wit_bindgen::generate!({
    world: "wecom-auth",
    path: "wit",
    generate_all,
});

/// The component: implements `wecom:auth/login` (in `login.rs`) and
/// `wasi:http/incoming-handler` (in `incoming.rs`).
pub struct Component;

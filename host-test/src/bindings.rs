//! Host-side bindings of the component's typed export `wecom:auth/login`,
//! generated from `../wit`. Only the export: what the component imports is
//! linked by the gateway crate's [`wecom_auth_gateway::linker`].

wasmtime::component::bindgen!({
    path: "../wit",
    inline: "
        package wecom:harness;
        world harness {
            export wecom:auth/login@0.1.0;
        }
    ",
    world: "wecom:harness/harness",
    exports: { default: async },
});

pub use exports::wecom::auth::login;

/// Makes rustc track the WIT the bindings above are generated from, so an
/// edit of the contract rebuilds them.
const _: &str = include_str!("../../wit/wecom-auth.wit");

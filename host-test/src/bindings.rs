//! Host-side bindings of the component's world, generated from `../wit`.
//! WASI interfaces map to wasmtime-wasi(-http)'s own implementations; the two
//! Spin drafts (keyvalue, config) are implemented in this crate.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "wecom:auth/wecom-auth",
    imports: { default: async | trappable },
    exports: { default: async },
    with: {
        "wasi:io": wasmtime_wasi::p2::bindings::io,
        "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
        "wasi:random": wasmtime_wasi::p2::bindings::random,
        "wasi:http": wasmtime_wasi_http::p2::bindings::http,
        "wasi:keyvalue/store.bucket": crate::keyvalue::Bucket,
        "wasi:keyvalue/atomics.cas": crate::keyvalue::Cas,
    },
});

pub use exports::wecom::auth::login;

/// Makes rustc track the WIT the bindings above are generated from, so an
/// edit of the contract rebuilds them.
const _: &str = include_str!("../../wit/wecom-auth.wit");

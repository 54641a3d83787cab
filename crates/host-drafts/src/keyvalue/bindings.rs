//! Host bindings of `wasi:keyvalue@0.2.0-draft2`, generated from the WIT the
//! component vendors; private to this crate.

wasmtime::component::bindgen!({
    path: "../../wit/deps/keyvalue-0.2.0-draft2",
    world: "wasi:keyvalue/imports",
    imports: { default: async | trappable },
    with: {
        "wasi:keyvalue/store.bucket": crate::keyvalue::handles::Bucket,
        "wasi:keyvalue/atomics.cas": crate::keyvalue::handles::Cas,
    },
});

//! The built component's contract, read from the `.wasm` itself: what it
//! exports and that it imports nothing but standard WASI.

mod common;

use wasmtime::component::types::ComponentItem;

#[test]
fn exports_the_login_interface_with_every_function() {
    let (engine, component) = common::engine_and_component();
    let ty = component.component_type();
    let exports: Vec<&str> = ty.exports(engine).map(|(name, _)| name).collect();
    assert_eq!(
        exports,
        ["wecom:auth/login@0.1.0", "wasi:http/incoming-handler@0.2.6"]
    );
    let ComponentItem::ComponentInstance(login) =
        ty.get_export(engine, "wecom:auth/login@0.1.0").unwrap().ty
    else {
        panic!("wecom:auth/login is not an instance");
    };
    let functions: Vec<&str> = login
        .exports(engine)
        .filter(|(_, item)| matches!(item.ty, ComponentItem::ComponentFunc(_)))
        .map(|(name, _)| name)
        .collect();
    for expected in [
        "detect-wecom-browser",
        "authorize-url",
        "handle-callback",
        "verify-session",
        "upsert-user",
        "find-user",
        "list-users",
        "delete-user",
        "unbind",
        "homepage-links",
        "validate-settings",
    ] {
        assert!(
            functions.contains(&expected),
            "{expected} missing from {functions:?}"
        );
    }
}

#[test]
fn imports_only_standard_wasi() {
    let (engine, component) = common::engine_and_component();
    let imports: Vec<String> = component
        .component_type()
        .imports(engine)
        .map(|(name, _)| name.to_owned())
        .collect();
    assert!(!imports.is_empty());
    for import in &imports {
        assert!(
            import.starts_with("wasi:"),
            "non-WASI import {import} in {imports:?}"
        );
    }
    // The exact drafts Spin implements, never wasmtime's other drafts.
    for import in imports
        .iter()
        .filter(|i| i.starts_with("wasi:keyvalue") || i.starts_with("wasi:config"))
    {
        assert!(
            import.ends_with("@0.2.0-draft2") || import.ends_with("@0.2.0-draft-2024-09-27"),
            "{import}"
        );
    }
}

/// Spin's worlds, vendored from the spin-sdk 5.2.0 crate (Spin 3.6).
const SPIN_WIT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/spin-wit");

/// Checks the built component against `world` (declared in a package of its own
/// on top of Spin's), as `wasm-tools component targets` does.
fn targets(world_body: &str) -> Result<(), String> {
    let mut resolve = wit_parser::Resolve::default();
    resolve.push_dir(SPIN_WIT).map_err(|e| format!("{e:#}"))?;
    let check = resolve
        .push_str(
            "check.wit",
            &format!("package wecom:spin-check;\nworld check {{ {world_body} }}\n"),
        )
        .map_err(|e| format!("{e:#}"))?;
    let world = resolve
        .select_world(&[check], Some("check"))
        .map_err(|e| format!("{e:#}"))?;
    let component = std::fs::read(host_test::COMPONENT_PATH).unwrap();
    wit_component::targets(&resolve, world, &component).map_err(|e| format!("{e:#}"))
}

#[test]
fn spin_3_6_can_link_every_import() {
    targets("include spin:up/platform@3.6.0;").unwrap();
}

#[test]
fn the_spin_check_refuses_a_host_that_lacks_an_import() {
    // The control: a world without WASI imports cannot host the component.
    let refused = targets("import wasi:config/store@0.2.0-draft-2024-09-27;").unwrap_err();
    assert!(refused.contains("wasi:"), "{refused}");
}

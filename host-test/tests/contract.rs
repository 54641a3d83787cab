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
        "check-setup",
        "sync-directory",
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

/// The WIT `settings` record, read from the built component, holds the one
/// list of settings (`Field::SETTINGS`), in order: the access rules inside
/// `access-rules`, and `return-hosts` left to the HTTP front (the typed
/// API's callers return to relative paths). A setting added on one side
/// only fails here.
#[test]
fn the_settings_record_holds_the_one_list_of_settings() {
    use wasmtime::component::types::Type;
    use wecom_auth::core::settings::Field;

    let (engine, component) = common::engine_and_component();
    let ty = component.component_type();
    let ComponentItem::ComponentInstance(login) =
        ty.get_export(engine, "wecom:auth/login@0.1.0").unwrap().ty
    else {
        panic!("wecom:auth/login is not an instance");
    };
    let ComponentItem::ComponentFunc(authorize) =
        login.get_export(engine, "authorize-url").unwrap().ty
    else {
        panic!("authorize-url is not a function");
    };
    let (_, Type::Record(settings)) = authorize.params().next().unwrap() else {
        panic!("authorize-url takes the settings record first");
    };
    let mut fields = Vec::new();
    for field in settings.fields() {
        match (field.name, field.ty) {
            ("access-rules", Type::Option(rules)) => {
                let Type::Record(rules) = rules.ty() else {
                    panic!("access-rules is not a record");
                };
                fields.extend(rules.fields().map(|f| f.name.to_owned()));
            }
            (name, _) => fields.push(name.to_owned()),
        }
    }
    let settings: Vec<&str> = Field::SETTINGS
        .into_iter()
        .filter(|field| *field != Field::ReturnHosts)
        .map(Field::name)
        .collect();
    assert_eq!(fields, settings);
}

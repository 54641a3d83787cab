//! Spin compatibility, checked statically: the built component against Spin's
//! own published WIT, and `spin.toml` against what the build produces and what
//! the component reads.
//!
//! Spin's WIT is not copied into this repository: the spin-sdk 5.2.0 crate on
//! crates.io ships Spin 3.6's worlds (`spin:up@3.6.0`, with its `deps/`), and
//! cargo fetches it at test time into its registry cache (see `spin_sdk_wit`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use wecom_auth_dist::SHIPPED;
use wit_parser::decoding::DecodedWasm;
use wit_parser::{PackageId, PackageName, Resolve, WorldId, WorldItem, WorldKey};

/// The crate whose `wit/` is Spin's published WIT, and the Spin it matches.
const SPIN_SDK: &str = "spin-sdk";
const SPIN_SDK_VERSION: &str = "5.2.0";
/// Spin 3.6's world for HTTP components: its imports are everything Spin 3.6
/// links (WASI 0.2, outgoing HTTP, keyvalue draft2, config, Spin's own).
const SPIN_HTTP_TRIGGER: &str = "spin:up/http-trigger@3.6.0";
/// The newest Spin world in the same WIT that declares the WASI 0.2 HTTP
/// handler export. 3.6's `http-trigger` declares only the WASI 0.3 handler
/// (behind the unstable feature below); Spin 3.6 still serves WASI 0.2
/// components, which is what every spin-sdk 5 HTTP component exports.
const SPIN_WASI_0_2_HTTP_TRIGGER: &str = "spin:up/http-trigger@3.4.0";
const SPIN_WASIP3_FEATURE: &str = "wasip3-rc20260106";

const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

// ---------------------------------------------------------------------------
// Fetching spin-sdk's WIT through cargo
// ---------------------------------------------------------------------------

/// The `wit/` folder of spin-sdk 5.2.0, as cargo unpacked it in its registry
/// cache (`$CARGO_HOME/registry/src/...`). A throwaway manifest that depends
/// on `spin-sdk = "=5.2.0"` is resolved with `cargo metadata`, which downloads
/// the crate when it is not cached yet and tells where its `Cargo.toml` is.
/// Nothing is compiled. Offline first (instant when cached), then online.
fn spin_sdk_wit() -> &'static Path {
    static WIT: OnceLock<PathBuf> = OnceLock::new();
    WIT.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("spin-sdk-wit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // `[workspace]`: the temp dir may sit inside this workspace's target dir.
        std::fs::write(
            dir.join("Cargo.toml"),
            format!(
                "[package]\nname = \"fetch-spin-wit\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\
                 publish = false\n\n[lib]\npath = \"lib.rs\"\n\n[dependencies]\n\
                 {SPIN_SDK} = \"={SPIN_SDK_VERSION}\"\n\n[workspace]\n"
            ),
        )
        .unwrap();
        std::fs::write(dir.join("lib.rs"), "").unwrap();
        let metadata = cargo_metadata(&dir, true)
            .or_else(|offline| {
                cargo_metadata(&dir, false).map_err(|online| format!("{offline}\n{online}"))
            })
            .unwrap_or_else(|e| panic!("cargo could not fetch {SPIN_SDK} {SPIN_SDK_VERSION}: {e}"));
        let _ = std::fs::remove_dir_all(&dir);
        let manifest = metadata["packages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == SPIN_SDK && p["version"] == SPIN_SDK_VERSION)
            .and_then(|p| p["manifest_path"].as_str())
            .expect("spin-sdk in cargo metadata");
        let wit = Path::new(manifest).parent().unwrap().join("wit");
        assert!(
            wit.join("world.wit").is_file(),
            "no WIT in {}",
            wit.display()
        );
        wit
    })
}

fn cargo_metadata(dir: &Path, offline: bool) -> Result<serde_json::Value, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .args(["metadata", "--format-version", "1", "--manifest-path"])
        .arg(dir.join("Cargo.toml"))
        .current_dir(dir);
    if offline {
        command.arg("--offline");
    }
    let out = command.output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())
}

// ---------------------------------------------------------------------------
// Spin's worlds, relabelled to the component's WASI 0.2.x
// ---------------------------------------------------------------------------

fn component() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| std::fs::read(host_test::COMPONENT_PATH).unwrap())
}

/// Every package the component imports from or exports, e.g. `wasi:http@0.2.6`.
fn component_packages() -> Vec<PackageName> {
    let DecodedWasm::Component(resolve, world) = wit_parser::decoding::decode(component()).unwrap()
    else {
        panic!("{} is not a component", host_test::COMPONENT_PATH);
    };
    let world = &resolve.worlds[world];
    let mut names: Vec<PackageName> = world
        .imports
        .values()
        .chain(world.exports.values())
        .filter_map(|item| match item {
            WorldItem::Interface { id, .. } => resolve.interfaces[*id].package,
            _ => None,
        })
        .map(|package| resolve.packages[package].name.clone())
        .collect();
    names.sort_by_key(|n| n.to_string());
    names.dedup();
    names
}

/// The packages a world's imports come from.
fn imported_packages(resolve: &Resolve, world: WorldId) -> BTreeSet<PackageId> {
    resolve.worlds[world]
        .imports
        .values()
        .filter_map(|item| match item {
            WorldItem::Interface { id, .. } => resolve.interfaces[*id].package,
            _ => None,
        })
        .collect()
}

/// Spin's WIT, with `features` (unstable gates) enabled.
fn spin_wit(features: &[&str]) -> (Resolve, PackageId) {
    let mut resolve = Resolve::default();
    resolve
        .features
        .extend(features.iter().map(|f| f.to_string()));
    let (spin_up, _) = resolve.push_dir(spin_sdk_wit()).unwrap();
    (resolve, spin_up)
}

/// Spin's WIT, its WASI 0.2 packages relabelled to the component's versions.
///
/// `wit_component::targets` (like `wasm-tools component targets`) matches
/// import and export names exactly, but Spin does not: its wasmtime linker
/// matches `wasi:*@0.2.x` by semver, so a component importing
/// `wasi:http/types@0.2.6` (or `@0.2.12`) links to Spin's `@0.2.6` (or an older
/// 0.2.y), as long as every function the component uses exists there. So each
/// WASI package the component uses at `0.2.x` takes the place of the newest
/// `0.2.y` package of that name in Spin's world: relabelled, still with Spin's
/// own contents, and the structural check below then proves every function and
/// type the component imports exists in Spin's version. Only the same semver
/// track is relabelled: the drafts (`@0.2.0-draft2`, `@0.2.0-draft-2024-09-27`)
/// are prereleases, their track is the exact version, so they must match as is.
fn spin_wit_for_component(features: &[&str]) -> (Resolve, PackageId, Vec<String>) {
    let (mut resolve, spin_up) = spin_wit(features);
    let http_trigger = resolve
        .select_world(&[spin_up], Some(SPIN_HTTP_TRIGGER))
        .unwrap();
    let relabelled = relabel(&mut resolve, http_trigger, &component_packages());
    (resolve, spin_up, relabelled)
}

/// Relabels the packages `world` imports to the `wanted` versions on the same
/// semver track (see `spin_wit_for_component`); says what it relabelled.
fn relabel(resolve: &mut Resolve, world: WorldId, wanted: &[PackageName]) -> Vec<String> {
    let mut provided = imported_packages(resolve, world);
    let mut relabelled = Vec::new();
    for wanted in wanted {
        let Some(wanted_version) = &wanted.version else {
            continue;
        };
        let track = PackageName::version_compat_track(wanted_version);
        let same_track: Vec<PackageId> = provided
            .iter()
            .copied()
            .filter(|p| {
                let name = &resolve.packages[*p].name;
                name.namespace == wanted.namespace
                    && name.name == wanted.name
                    && name
                        .version
                        .as_ref()
                        .is_some_and(|v| PackageName::version_compat_track(v) == track)
            })
            .collect();
        if same_track
            .iter()
            .any(|p| resolve.packages[*p].name == *wanted)
        {
            continue; // provided at exactly this version
        }
        let Some(newest) = same_track.into_iter().max_by(|a, b| {
            resolve.packages[*a]
                .name
                .version
                .cmp(&resolve.packages[*b].name.version)
        }) else {
            continue; // not provided at all: the check reports it
        };
        // Relabel each of Spin's packages at most once (a component carrying two
        // versions on one track, which wit-component merges anyway).
        provided.remove(&newest);
        let old = resolve.packages[newest].name.clone();
        resolve.package_names.shift_remove(&old);
        resolve.packages[newest].name = wanted.clone();
        resolve.package_names.insert(wanted.clone(), newest);
        relabelled.push(format!("{old} as {wanted}"));
    }
    relabelled
}

/// The WASI 0.2 HTTP handler Spin's http trigger calls, as Spin's own world
/// declares it: the one export of `spin:up/http-trigger@3.4.0`.
fn spin_http_handler(resolve: &Resolve, spin_up: PackageId) -> (String, String) {
    let world = resolve
        .select_world(&[spin_up], Some(SPIN_WASI_0_2_HTTP_TRIGGER))
        .unwrap();
    let exports: Vec<&WorldItem> = resolve.worlds[world].exports.values().collect();
    let [WorldItem::Interface { id, .. }] = exports[..] else {
        panic!("{SPIN_WASI_0_2_HTTP_TRIGGER} should export one interface: {exports:?}");
    };
    let interface = &resolve.interfaces[*id];
    let package = &resolve.packages[interface.package.unwrap()].name;
    assert_eq!(
        (package.namespace.as_str(), package.name.as_str()),
        ("wasi", "http")
    );
    (
        format!("{}:{}", package.namespace, package.name),
        interface.name.clone().unwrap(),
    )
}

/// `<package>/<interface>@<version>` of `interface` in the version of
/// `package` that Spin 3.6's http-trigger world imports (after relabelling).
fn in_spin_3_6(resolve: &Resolve, spin_up: PackageId, package: &str, interface: &str) -> String {
    let http_trigger = resolve
        .select_world(&[spin_up], Some(SPIN_HTTP_TRIGGER))
        .unwrap();
    let ids: Vec<PackageId> = imported_packages(resolve, http_trigger)
        .into_iter()
        .filter(|p| {
            let name = &resolve.packages[*p].name;
            format!("{}:{}", name.namespace, name.name) == package
        })
        .collect();
    let newest = ids
        .into_iter()
        .max_by(|a, b| {
            resolve.packages[*a]
                .name
                .version
                .cmp(&resolve.packages[*b].name.version)
        })
        .unwrap_or_else(|| panic!("{SPIN_HTTP_TRIGGER} imports nothing from {package}"));
    let name = &resolve.packages[newest].name;
    assert!(
        resolve.packages[newest].interfaces.contains_key(interface),
        "{name} has no {interface}"
    );
    name.interface_id(interface)
}

/// Checks the built component against `world_body`, a world declared in a
/// package of its own on top of Spin's: every import of the component must be
/// one the world imports (same name, compatible type), every export the world
/// declares must be one the component exports. Extra exports are fine: Spin
/// ignores exports it does not call.
fn targets(resolve: &mut Resolve, world_body: &str) -> Result<(), String> {
    let check = resolve
        .push_str(
            "check.wit",
            &format!("package wecom:spin-check;\nworld check {{\n{world_body}\n}}\n"),
        )
        .map_err(|e| format!("{e:#}"))?;
    let world = resolve
        .select_world(&[check], Some("check"))
        .map_err(|e| format!("{e:#}"))?;
    wit_component::targets(resolve, world, component()).map_err(|e| format!("{e:#}"))
}

#[test]
fn spin_3_6_http_trigger_world_links_every_import() {
    let (mut resolve, _, relabelled) = spin_wit_for_component(&[]);
    eprintln!("relabelled: {relabelled:?}");
    targets(&mut resolve, &format!("include {SPIN_HTTP_TRIGGER};")).unwrap();
}

#[test]
fn spin_3_6_http_trigger_world_accepts_the_component_with_its_http_handler() {
    let (mut resolve, spin_up, relabelled) = spin_wit_for_component(&[]);
    let (package, interface) = spin_http_handler(&resolve, spin_up);
    let handler = in_spin_3_6(&resolve, spin_up, &package, &interface);
    eprintln!("relabelled: {relabelled:?}; expected export: {handler}");
    let exports = component_exports();
    assert!(
        exports.contains(&handler),
        "Spin's http trigger calls the export {handler}; the component exports {exports:?}"
    );
    targets(
        &mut resolve,
        &format!("include {SPIN_HTTP_TRIGGER};\nexport {handler};"),
    )
    .unwrap();
}

/// The names the component exports, e.g. `wecom:auth/login@0.1.0`.
fn component_exports() -> Vec<String> {
    component_names(|world| &world.exports)
}

/// The names the component imports, e.g. `wasi:random/random@0.2.6`.
fn component_imports() -> Vec<String> {
    component_names(|world| &world.imports)
}

fn component_names(
    items: impl Fn(&wit_parser::World) -> &wit_parser::IndexMap<WorldKey, WorldItem>,
) -> Vec<String> {
    let DecodedWasm::Component(resolve, world) = wit_parser::decoding::decode(component()).unwrap()
    else {
        panic!("not a component");
    };
    items(&resolve.worlds[world])
        .keys()
        .map(|key| resolve.name_world_key(key))
        .collect()
}

#[test]
fn the_check_refuses_spin_s_world_without_one_of_the_component_s_imports() {
    // The control: Spin's world minus one interface the component imports
    // (a Spin draft when it imports one) cannot host the component. Only an
    // interface no other import of the world uses can be taken out.
    let (resolve, spin_up, _) = spin_wit_for_component(&[]);
    let http_trigger = resolve
        .select_world(&[spin_up], Some(SPIN_HTTP_TRIGGER))
        .unwrap();
    let world_interfaces: Vec<wit_parser::InterfaceId> = resolve.worlds[http_trigger]
        .imports
        .values()
        .filter_map(|item| match item {
            WorldItem::Interface { id, .. } => Some(*id),
            _ => None,
        })
        .collect();
    let used_by_others = |name: &str| {
        world_interfaces.iter().any(|id| {
            resolve
                .interface_direct_deps(*id)
                .any(|dep| resolve.id_of(dep).as_deref() == Some(name))
        })
    };
    let imports = component_imports();
    let dropped = [
        "wasi:config/store@",
        "wasi:keyvalue/atomics@",
        "wasi:keyvalue/batch@",
        "wasi:http/outgoing-handler@",
        "wasi:random/random@",
    ]
    .iter()
    .find_map(|prefix| {
        imports
            .iter()
            .find(|i| i.starts_with(prefix) && !used_by_others(i))
    })
    .expect("the component imports one of these");
    let mut lacking = resolve.worlds[http_trigger].clone();
    let before = lacking.imports.len();
    lacking
        .imports
        .retain(|key, _| resolve.name_world_key(key) != *dropped);
    assert_eq!(
        lacking.imports.len(),
        before - 1,
        "{dropped} not in Spin's world"
    );
    lacking.name = "lacking-one-import".into();
    let mut resolve = resolve;
    let lacking = resolve.worlds.alloc(lacking);
    let refused = wit_component::targets(&resolve, lacking, component())
        .map_err(|e| format!("{e:#}"))
        .unwrap_err();
    assert!(refused.contains(dropped.as_str()), "{refused}");
    // And the unmodified world accepts it, in the same resolve.
    wit_component::targets(&resolve, http_trigger, component()).unwrap();
}

#[test]
fn the_check_refuses_a_world_whose_export_the_component_lacks() {
    // The control for exports: with its unstable gate on, Spin 3.6's
    // http-trigger world asks for the WASI 0.3 handler, which the component
    // (WASI 0.2) does not export.
    let (mut resolve, _, _) = spin_wit_for_component(&[SPIN_WASIP3_FEATURE]);
    let refused = targets(&mut resolve, &format!("include {SPIN_HTTP_TRIGGER};")).unwrap_err();
    assert!(refused.contains("wasi:http/handler@0.3"), "{refused}");
}

#[test]
fn spin_3_6_declares_its_wasi_0_2_handler_only_in_the_3_4_world() {
    // Why the handler is taken from `http-trigger@3.4.0`: 3.6's own world
    // exports nothing stable, only the WASI 0.3 rc handler behind a gate.
    let exports_of = |features: &[&str]| {
        let (resolve, spin_up) = spin_wit(features);
        let world = resolve
            .select_world(&[spin_up], Some(SPIN_HTTP_TRIGGER))
            .unwrap();
        resolve.worlds[world]
            .exports
            .keys()
            .map(|key| resolve.name_world_key(key))
            .collect::<Vec<_>>()
    };
    assert_eq!(exports_of(&[]), Vec::<String>::new());
    assert_eq!(
        exports_of(&[SPIN_WASIP3_FEATURE]),
        ["wasi:http/handler@0.3.0-rc-2026-01-06"]
    );
    let (resolve, spin_up) = spin_wit(&[]);
    assert_eq!(
        spin_http_handler(&resolve, spin_up),
        ("wasi:http".to_owned(), "incoming-handler".to_owned())
    );
}

#[test]
fn relabelling_follows_semver_tracks_only() {
    let (mut resolve, spin_up) = spin_wit(&[]);
    let http_trigger = resolve
        .select_world(&[spin_up], Some(SPIN_HTTP_TRIGGER))
        .unwrap();
    let package = |id: &str| match wit_parser::parse_use_path(id).unwrap() {
        wit_parser::ParsedUsePath::Package(name, _) => name,
        wit_parser::ParsedUsePath::Name(name) => panic!("{name}: no package"),
    };
    let relabelled = relabel(
        &mut resolve,
        http_trigger,
        &[
            package("wasi:random/random@0.2.12"), // newer patch: Spin's 0.2.6 serves it
            package("wasi:clocks/wall-clock@0.2.6"), // exact: nothing to do
            package("wasi:config/store@0.2.0-draft-2024-09-27"), // exact draft
            package("wasi:keyvalue/store@0.2.0-draft"), // another draft: never relabelled
            package("wasi:io/streams@0.3.0"),     // another track: never relabelled
        ],
    );
    assert_eq!(relabelled, ["wasi:random@0.2.6 as wasi:random@0.2.12"]);
    let imports: Vec<String> = resolve.worlds[http_trigger]
        .imports
        .keys()
        .map(|key| resolve.name_world_key(key))
        .collect();
    assert!(imports.contains(&"wasi:random/random@0.2.12".to_owned()));
    assert!(!imports.contains(&"wasi:random/random@0.2.6".to_owned()));
    assert!(imports.contains(&"wasi:random/random@0.2.0".to_owned()));
    // Names must match exactly in the check: the built component imports
    // `wasi:random/random@0.2.6`, which this relabelled world no longer has.
    if component_imports().contains(&"wasi:random/random@0.2.6".to_owned()) {
        let refused = wit_component::targets(&resolve, http_trigger, component())
            .map_err(|e| format!("{e:#}"))
            .unwrap_err();
        assert!(refused.contains("wasi:random/random@0.2.6"), "{refused}");
    }
}

// ---------------------------------------------------------------------------
// spin.toml
// ---------------------------------------------------------------------------

const SECRET_KEYS: &[&str] = &[
    "secret",
    "signing_keys",
    "admin_token",
    "callback_token",
    "callback_aes_key",
];
const REQUIRED_KEYS: &[&str] = &["corp_id", "agent_id", "secret", "origin", "signing_keys"];
const WECOM_API: &str = "https://qyapi.weixin.qq.com";

fn toml_file(path: &str) -> toml::Table {
    let path = Path::new(REPO).join(path);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.parse()
        .unwrap_or_else(|e| panic!("{} is not TOML: {e}", path.display()))
}

fn spin_manifest() -> toml::Table {
    toml_file("spin.toml")
}

fn table<'a>(value: &'a toml::Table, key: &str) -> &'a toml::Table {
    value[key]
        .as_table()
        .unwrap_or_else(|| panic!("{key} is not a table"))
}

fn strings(value: &toml::Value) -> Vec<&str> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect()
}

/// The names in `{{ name }}` expressions of a Spin template.
fn template_variables(template: &str) -> Vec<&str> {
    template
        .split("{{")
        .skip(1)
        .map(|rest| rest.split_once("}}").expect("unclosed {{").0.trim())
        .collect()
}

fn the_component(manifest: &toml::Table) -> &toml::Table {
    let components = table(manifest, "component");
    assert_eq!(components.len(), 1, "one component");
    table(components, "wecom-auth")
}

#[test]
fn spin_toml_is_a_version_2_manifest_with_one_http_route() {
    let manifest = spin_manifest();
    assert_eq!(manifest["spin_manifest_version"].as_integer(), Some(2));
    assert!(table(&manifest, "application")["name"].is_str());
    let http = table(&manifest, "trigger")["http"].as_array().unwrap();
    assert_eq!(http.len(), 1);
    assert_eq!(http[0]["route"].as_str(), Some("/..."));
    assert_eq!(http[0]["component"].as_str(), Some("wecom-auth"));
}

#[test]
fn spin_toml_serves_what_its_build_command_produces() {
    let manifest = spin_manifest();
    let component = the_component(&manifest);
    let command = table(component, "build")["command"].as_str().unwrap();
    let args: Vec<&str> = command.split_whitespace().collect();
    assert_eq!(args[..2], ["cargo", "run"]);
    assert!(
        args.windows(2)
            .any(|w| w == ["--package", "wecom-auth-dist"]),
        "{command}"
    );
    assert!(!args.contains(&"--target-dir"), "{command}");
    let built = format!("target/{SHIPPED}");
    assert_eq!(component["source"].as_str(), Some(built.as_str()));
    // The same artifact build.rs builds for the tests (in another target dir).
    assert!(
        host_test::COMPONENT_PATH.ends_with(SHIPPED),
        "{} vs {built}",
        host_test::COMPONENT_PATH
    );
}

#[test]
fn spin_toml_grants_the_default_store_and_the_wecom_api() {
    let manifest = spin_manifest();
    let component = the_component(&manifest);
    assert_eq!(strings(&component["key_value_stores"]), ["default"]);
    let hosts = strings(&component["allowed_outbound_hosts"]);
    assert!(hosts.contains(&WECOM_API), "{hosts:?}");
    // The override follows `api_base`, so pointing the component at the
    // simulator or an egress proxy also allows it.
    assert!(hosts.contains(&"{{ api_base }}"), "{hosts:?}");
    let variables = table(&manifest, "variables");
    assert_eq!(variables["api_base"]["default"].as_str(), Some(WECOM_API));
}

#[test]
fn spin_toml_declares_every_variable_the_component_reads() {
    let manifest = spin_manifest();
    let declared = table(&manifest, "variables");
    let mapped = table(the_component(&manifest), "variables");

    // Every key the component reads (plain names; the per-authenticator ones
    // may also be given as `<name>_<key>`), taken from the front's one list of
    // settings, is mapped to the application variable of the same name;
    // nothing else is mapped. A setting added to the list must be declared.
    let keys: BTreeSet<String> = wecom_auth::http::global_variables()
        .into_iter()
        .chain(wecom_auth::http::authenticator_variables())
        .collect();
    let mapped_keys: BTreeSet<String> = mapped.keys().cloned().collect();
    assert_eq!(mapped_keys, keys);
    for (key, value) in mapped {
        let template = value.as_str().unwrap();
        assert_eq!(
            template_variables(template),
            [key.as_str()],
            "{key} = {template:?}"
        );
    }

    // Every variable referenced anywhere is declared, and every declared one is used.
    let component = the_component(&manifest);
    let mut referenced: BTreeMap<&str, usize> = BTreeMap::new();
    for template in mapped
        .values()
        .map(|v| v.as_str().unwrap())
        .chain(strings(&component["allowed_outbound_hosts"]))
    {
        for name in template_variables(template) {
            *referenced.entry(name).or_default() += 1;
        }
    }
    let declared_names: BTreeSet<&str> = declared.keys().map(String::as_str).collect();
    let referenced_names: BTreeSet<&str> = referenced.keys().copied().collect();
    assert_eq!(referenced_names, declared_names);

    for (name, variable) in declared {
        let variable = variable.as_table().unwrap();
        let secret = variable.get("secret").and_then(|v| v.as_bool()) == Some(true);
        let required = variable.get("required").and_then(|v| v.as_bool()) == Some(true);
        let default = variable.get("default").and_then(|v| v.as_str());
        assert_eq!(
            secret,
            SECRET_KEYS.contains(&name.as_str()),
            "{name}: secret"
        );
        assert_eq!(
            required,
            REQUIRED_KEYS.contains(&name.as_str()),
            "{name}: required"
        );
        // Spin: a variable is either required or has a default, never both.
        assert!(
            required != default.is_some(),
            "{name}: required xor default"
        );
        // No secret ships a value.
        if secret {
            assert!(default.is_none_or(str::is_empty), "{name} has a default");
        }
        for field in variable.keys() {
            assert!(
                ["default", "required", "secret", "description"].contains(&field.as_str()),
                "{name}: unknown field {field}"
            );
        }
    }
    assert_eq!(
        declared["authenticators"]["default"].as_str(),
        Some("wecom")
    );
}

#[test]
fn the_redis_runtime_config_puts_the_default_store_on_redis() {
    let config = toml_file("deploy/runtime-config.redis.toml");
    let store = table(table(&config, "key_value_store"), "default");
    assert_eq!(store["type"].as_str(), Some("redis"));
    assert!(store["url"].as_str().unwrap().starts_with("redis://"));
}

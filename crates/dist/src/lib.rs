//! Builds the component that ships: cargo's `wasm32-wasip2` release build
//! (the workspace's release profile, `Cargo.toml`), then
//! Binaryen's `wasm-opt -Oz` over the component's main core module.
//!
//! `wasm-opt` reads core modules, not components, so the main core module (the
//! largest; the others are `wit-component`'s small shims) is taken out, optimised
//! and put back in place. Its imports and exports keep their names and types, so
//! the component's instantiations and canonical functions stay valid; the result
//! is validated before it is written. Measured on this component: about 16 %
//! smaller, and callbacks faster, not slower (docs/PERFORMANCE.md).
//!
//! Used by `host-test/build.rs` (so every test, bench and the demo drive the
//! shipped bytes) and by `cargo run -p wecom-auth-dist` (what `spin.toml` runs).

use std::env;
use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::Command;

use wasmparser::{Parser, Payload, Validator};

/// What cargo writes, relative to the target directory.
pub const CARGO_OUTPUT: &str = "wasm32-wasip2/release/wecom_auth.wasm";
/// The shipped component, relative to the target directory.
pub const SHIPPED: &str = "dist/wecom_auth.wasm";
/// Set to `1` to fail instead of shipping an unoptimised component when
/// `wasm-opt` is missing (`.ci/run` does).
pub const REQUIRE_ENV: &str = "WECOM_AUTH_REQUIRE_WASM_OPT";
/// The `wasm-opt` to run, when it is not the one on `PATH`.
pub const WASM_OPT_ENV: &str = "WASM_OPT";

/// The WebAssembly features rustc's `wasm32-wasip2` target emits (its default
/// target features since Rust 1.82/1.87). `wasm-opt` must be told: a stripped
/// release build has no `target_features` section for it to read, and
/// `--all-features` would let Binaryen 108 write GC type encodings.
const FEATURES: [&str; 6] = [
    "--enable-bulk-memory",
    "--enable-multivalue",
    "--enable-mutable-globals",
    "--enable-nontrapping-float-to-int",
    "--enable-reference-types",
    "--enable-sign-ext",
];

/// Flags and wrappers of an outer build (clippy, coverage, a host RUSTFLAGS)
/// are for the host, never for a wasm32 build (this one, the example Spin
/// app's in the tests).
pub const HOST_ONLY_ENV: [&str; 7] = [
    "RUSTFLAGS",
    "CARGO_ENCODED_RUSTFLAGS",
    "CARGO_BUILD_RUSTFLAGS",
    "CARGO_BUILD_TARGET",
    "CARGO_TARGET_DIR",
    "RUSTC_WRAPPER",
    "RUSTC_WORKSPACE_WRAPPER",
];

/// The shipped component and how it was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Built {
    /// `<target>/dist/wecom_auth.wasm`.
    pub component: PathBuf,
    pub optimized: Optimized,
}

/// Whether `wasm-opt` ran over the component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Optimized {
    /// Sizes in bytes of the whole component, before and after.
    WasmOpt { before: u64, after: u64 },
    /// The cargo output as is; the reason names what to install.
    Skipped(String),
    /// The shipped component was optimised from this very cargo output before.
    UpToDate,
}

/// Why the component could not be built.
#[derive(Debug)]
pub enum Error {
    /// `cargo build` failed or could not be started.
    Cargo(String),
    Io {
        path: PathBuf,
        source: io::Error,
    },
    /// `wasm-opt` failed, or is missing while required.
    WasmOpt(String),
    /// The component could not be read, or the optimised one did not validate.
    Component(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Cargo(why) => write!(f, "building the component with cargo: {why}"),
            Error::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Error::WasmOpt(why) => write!(f, "wasm-opt: {why}"),
            Error::Component(why) => write!(f, "the component: {why}"),
        }
    }
}

impl std::error::Error for Error {}

/// Builds the component of the workspace at `root` into `target_dir`, then
/// optimises it into `<target_dir>/dist/wecom_auth.wasm`.
///
/// Without `wasm-opt` the cargo output is shipped as is
/// ([`Optimized::Skipped`]), unless `require_wasm_opt`.
pub fn build(root: &Path, target_dir: &Path, require_wasm_opt: bool) -> Result<Built, Error> {
    ensure_wasm_target("wasm32-wasip2");
    cargo_build(root, target_dir)?;
    ship(&target_dir.join(CARGO_OUTPUT), target_dir, require_wasm_opt)
}

/// `cargo build --release --target wasm32-wasip2 -p wecom-auth`, from
/// `root`, with the outer build's host-only flags removed.
pub fn cargo_build(root: &Path, target_dir: &Path) -> Result<(), Error> {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .arg("build")
        .current_dir(root)
        .arg("--release")
        .args(["--target", "wasm32-wasip2", "--package", "wecom-auth"])
        .arg("--manifest-path")
        .arg(root.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir);
    for inherited in HOST_ONLY_ENV {
        build.env_remove(inherited);
    }
    let status = build
        .status()
        .map_err(|e| Error::Cargo(format!("could not run cargo: {e}")))?;
    if !status.success() {
        return Err(Error::Cargo(format!(
            "{status}; is the target installed? (rustup target add wasm32-wasip2)"
        )));
    }
    Ok(())
}

/// Optimises cargo's output `raw` into `<target_dir>/dist/wecom_auth.wasm`,
/// unless that is already newer.
pub fn ship(raw: &Path, target_dir: &Path, require_wasm_opt: bool) -> Result<Built, Error> {
    let shipped = target_dir.join(SHIPPED);
    let dist = shipped.parent().expect("SHIPPED has a directory");
    fs::create_dir_all(dist).map_err(|source| io_error(dist, source))?;
    let done = shipped.with_extension("optimized");
    let tool = find_wasm_opt();
    // The marker holds how the shipped bytes were made (wasm-opt's version and
    // flags): a new Binaryen or new flags redo them, and so does an
    // unoptimised copy (no marker).
    let made_with = tool.as_ref().map(|(_, version)| fingerprint(version));
    if is_newer(&shipped, raw)
        && is_newer(&done, raw)
        && made_with.is_some()
        && fs::read_to_string(&done).ok() == made_with
    {
        return Ok(Built {
            component: shipped,
            optimized: Optimized::UpToDate,
        });
    }
    let bytes = fs::read(raw).map_err(|source| io_error(raw, source))?;
    let (out, optimized) = match &tool {
        Some((tool, _)) => match optimize(&bytes, tool, dist) {
            Ok(out) => {
                let sizes = Optimized::WasmOpt {
                    before: bytes.len() as u64,
                    after: out.len() as u64,
                };
                (out, sizes)
            }
            Err(e) if require_wasm_opt => return Err(e),
            // An optional step that failed (an old or broken Binaryen) must
            // not stop the build: cargo's output still works.
            Err(e) => (
                bytes,
                Optimized::Skipped(format!("{e}: shipping the unoptimised component")),
            ),
        },
        None if require_wasm_opt => {
            return Err(Error::WasmOpt(format!(
                "{} does not run ({REQUIRE_ENV}=1): install Binaryen (Debian: apt install binaryen) or set {WASM_OPT_ENV}",
                wasm_opt_name().to_string_lossy()
            )));
        }
        None => (
            bytes,
            Optimized::Skipped(
                "wasm-opt not found: shipping the unoptimised component (install Binaryen: apt install binaryen, brew install binaryen)".into(),
            ),
        ),
    };
    let _ = fs::remove_file(&done);
    // Written aside, then renamed: a watcher or a gateway never loads half a file.
    let partial = shipped.with_extension("partial");
    fs::write(&partial, &out).map_err(|source| io_error(&partial, source))?;
    fs::rename(&partial, &shipped).map_err(|source| io_error(&shipped, source))?;
    if let (Optimized::WasmOpt { .. }, Some(made_with)) = (&optimized, &made_with) {
        fs::write(&done, made_with).map_err(|source| io_error(&done, source))?;
    }
    Ok(Built {
        component: shipped,
        optimized,
    })
}

/// Runs `wasm-opt -Oz` over the main core module of `component`, using
/// `scratch` for its input and output files. Returns the whole component with
/// that module replaced and its debug names left out, validated.
pub fn optimize(component: &[u8], wasm_opt: &Path, scratch: &Path) -> Result<Vec<u8>, Error> {
    let module = main_module(component)?;
    let input = scratch.join("core.wasm");
    let output = scratch.join("core.opt.wasm");
    fs::write(&input, &component[module.clone()]).map_err(|source| io_error(&input, source))?;
    let run = Command::new(wasm_opt)
        .arg("-Oz")
        .args(FEATURES)
        .arg(&input)
        .arg("-o")
        .arg(&output)
        .output()
        .map_err(|e| Error::WasmOpt(format!("could not run {}: {e}", wasm_opt.display())))?;
    if !run.status.success() {
        return Err(Error::WasmOpt(format!(
            "{}: {}",
            run.status,
            String::from_utf8_lossy(&run.stderr).trim()
        )));
    }
    let optimized = fs::read(&output).map_err(|source| io_error(&output, source))?;
    let _ = fs::remove_file(&input);
    let _ = fs::remove_file(&output);
    let spliced = strip_names(&replace_module(component, module, &optimized)?)?;
    // The features a host takes by default (wasmparser's defaults: the
    // stable proposals and the component model), not every proposal.
    Validator::new()
        .validate_all(&spliced)
        .map_err(|e| Error::Component(format!("the optimised component does not validate: {e}")))?;
    Ok(spliced)
}

/// The byte range of the outer component's largest core module (the module
/// `wasm-component-ld` linked; the others are small shims).
fn main_module(component: &[u8]) -> Result<Range<usize>, Error> {
    let mut largest: Option<Range<usize>> = None;
    for_outer_sections(component, |payload| {
        if let Payload::ModuleSection {
            unchecked_range, ..
        } = payload
            && largest
                .as_ref()
                .is_none_or(|l| unchecked_range.len() > l.len())
        {
            largest = Some(unchecked_range);
        }
        Ok(())
    })?;
    largest.ok_or_else(|| Error::Component("no core module in it".into()))
}

/// Calls `visit` with each section of the outer component (depth 1), not
/// those of its modules or nested components: only those can be replaced or
/// dropped without rewriting an enclosing section's size.
fn for_outer_sections<'a>(
    component: &'a [u8],
    mut visit: impl FnMut(Payload<'a>) -> Result<(), Error>,
) -> Result<(), Error> {
    // Every module and component opens with a version and closes with an end.
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(component) {
        match payload.map_err(|e| Error::Component(e.to_string()))? {
            Payload::Version { .. } => depth += 1,
            Payload::End(_) => depth -= 1,
            payload if depth == 1 => visit(payload)?,
            _ => {}
        }
    }
    Ok(())
}

/// `component` with the core module at `module` replaced by `replacement`, its
/// section header (id 1, then the size as LEB128) rewritten.
fn replace_module(
    component: &[u8],
    module: Range<usize>,
    replacement: &[u8],
) -> Result<Vec<u8>, Error> {
    let header_start = section_start(component, &module, 1)
        .ok_or_else(|| Error::Component("no section header before the core module".into()))?;
    let mut out = Vec::with_capacity(component.len());
    out.extend_from_slice(&component[..header_start]);
    out.push(1);
    write_leb(&mut out, replacement.len());
    out.extend_from_slice(replacement);
    out.extend_from_slice(&component[module.end..]);
    Ok(out)
}

/// Custom sections of the outer component that only name its parts for
/// debuggers: left out of the shipped component (13 KB).
const DROPPED_CUSTOM_SECTIONS: [&str; 1] = ["component-name"];

/// `component` without the outer component's [`DROPPED_CUSTOM_SECTIONS`].
fn strip_names(component: &[u8]) -> Result<Vec<u8>, Error> {
    let mut dropped = Vec::new();
    for_outer_sections(component, |payload| {
        if let Payload::CustomSection(section) = payload
            && DROPPED_CUSTOM_SECTIONS.contains(&section.name())
        {
            let content = section.range();
            let start = section_start(component, &content, 0).ok_or_else(|| {
                Error::Component("no section header before a custom section".into())
            })?;
            dropped.push(start..content.end);
        }
        Ok(())
    })?;
    let mut out = component.to_vec();
    for range in dropped.into_iter().rev() {
        out.drain(range);
    }
    Ok(out)
}

/// Where the section whose content is `content` starts: its id byte, then
/// its size as LEB128 (of 1 to 5 bytes) right before the content.
fn section_start(bytes: &[u8], content: &Range<usize>, id: u8) -> Option<usize> {
    (1..=5)
        .filter_map(|size_len| content.start.checked_sub(size_len + 1))
        .find(|&at| {
            bytes[at] == id && read_leb(&bytes[at + 1..content.start]) == Some(content.len())
        })
}

/// An unsigned LEB128 that spans exactly `bytes`.
fn read_leb(bytes: &[u8]) -> Option<usize> {
    let (last, init) = bytes.split_last()?;
    if last & 0x80 != 0 || init.iter().any(|b| b & 0x80 == 0) {
        return None;
    }
    Some(
        bytes
            .iter()
            .enumerate()
            .fold(0, |n, (i, b)| n | (usize::from(b & 0x7f) << (7 * i))),
    )
}

fn write_leb(out: &mut Vec<u8>, mut n: usize) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// `$WASM_OPT`, else `wasm-opt`, with what `--version` prints, when it runs.
fn find_wasm_opt() -> Option<(PathBuf, String)> {
    let tool = wasm_opt_name();
    let out = Command::new(&tool).arg("--version").output().ok()?;
    out.status.success().then(|| {
        let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        (PathBuf::from(tool), version)
    })
}

/// How a component is made: the tool's version, its flags, what is left out.
fn fingerprint(version: &str) -> String {
    format!(
        "{version}\n-Oz {}\nwithout {}\n",
        FEATURES.join(" "),
        DROPPED_CUSTOM_SECTIONS.join(" ")
    )
}

fn is_newer(path: &Path, than: &Path) -> bool {
    let modified = |p: &Path| fs::metadata(p).and_then(|m| m.modified()).ok();
    matches!((modified(path), modified(than)), (Some(a), Some(b)) if a > b)
}

fn io_error(path: &Path, source: io::Error) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// `$WASM_OPT`, else `wasm-opt`.
fn wasm_opt_name() -> OsString {
    env::var_os(WASM_OPT_ENV).unwrap_or_else(|| OsString::from("wasm-opt"))
}

/// A fresh machine has no `wasm32-wasip2` standard library: add it with rustup
/// (what `.ci/run` does too), so the README's commands work as they stand.
/// Adds the rustup target `target` (e.g. `wasm32-wasip2`) when the
/// toolchain lacks it, so a fresh machine builds without a manual step.
pub fn ensure_wasm_target(target: &str) {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let sysroot = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    let installed = sysroot.is_some_and(|root| root.join("lib/rustlib").join(target).is_dir());
    if !installed {
        eprintln!("installing the {target} target with rustup");
        let _ = Command::new("rustup")
            .args(["target", "add", target])
            .status();
    }
}

#[cfg(test)]
mod tests {
    use wasm_encoder::{Component, CustomSection, Module, ModuleSection, NestedComponentSection};

    use super::*;

    /// A valid core module of about `size` bytes (a custom section's padding).
    fn padded(size: usize) -> Module {
        let mut module = Module::new();
        module.section(&CustomSection {
            name: "padding".into(),
            data: vec![7; size].into(),
        });
        module
    }

    fn module(size: usize) -> Vec<u8> {
        padded(size).finish()
    }

    #[test]
    fn the_outer_components_largest_module_is_replaced_in_place() {
        let main = module(200);
        // A nested component's module is larger, but not the outer's to touch.
        let mut nested = Component::new();
        nested.section(&ModuleSection(&padded(1_000)));
        let mut outer = Component::new();
        outer.section(&ModuleSection(&padded(10)));
        outer.section(&NestedComponentSection(&nested));
        outer.section(&ModuleSection(&padded(200)));
        let component = outer.finish();
        let found = main_module(&component).unwrap();
        assert_eq!(component[found.clone()], main[..]);
        // 200 bytes take a 2-byte size; 20 000 take 3.
        let replacement = module(20_000);
        let spliced = replace_module(&component, found, &replacement).unwrap();
        Validator::new().validate_all(&spliced).unwrap();
        let again = main_module(&spliced).unwrap();
        assert_eq!(spliced[again], replacement[..]);
        assert_eq!(
            spliced.len(),
            component.len() - main.len() + replacement.len() + 1
        );
    }

    #[test]
    fn the_outer_components_debug_names_are_left_out() {
        let mut nested = Component::new();
        nested.section(&CustomSection {
            name: "component-name".into(),
            data: vec![0; 5].into(),
        });
        let mut outer = Component::new();
        outer.section(&ModuleSection(&padded(10)));
        outer.section(&NestedComponentSection(&nested));
        outer.section(&CustomSection {
            name: "component-name".into(),
            data: vec![0; 300].into(),
        });
        outer.section(&CustomSection {
            name: "producers-like".into(),
            data: vec![0; 3].into(),
        });
        let component = outer.finish();
        let stripped = strip_names(&component).unwrap();
        Validator::new().validate_all(&stripped).unwrap();
        let names: Vec<(usize, String)> = {
            let mut depth = 0;
            let mut names = Vec::new();
            for payload in Parser::new(0).parse_all(&stripped) {
                match payload.unwrap() {
                    Payload::Version { .. } => depth += 1,
                    Payload::End(_) => depth -= 1,
                    Payload::CustomSection(c) => names.push((depth, c.name().to_owned())),
                    _ => {}
                }
            }
            names
        };
        // The module's and the nested component's sections stay; the outer's name section goes.
        assert_eq!(
            names,
            [
                (2, "padding".to_owned()),
                (2, "component-name".to_owned()),
                (1, "producers-like".to_owned())
            ]
        );
        assert_eq!(stripped.len(), component.len() - (1 + 2 + 1 + 14 + 300));
    }

    #[test]
    fn leb128_round_trips_at_every_width() {
        for n in [0, 1, 127, 128, 16_383, 16_384, 874_390, 1 << 28] {
            let mut out = Vec::new();
            write_leb(&mut out, n);
            assert_eq!(read_leb(&out), Some(n), "{n}");
        }
        assert_eq!(read_leb(&[0x80]), None, "unterminated");
        assert_eq!(read_leb(&[0x01, 0x01]), None, "two numbers");
    }
}

//! Cross-builds the component from the current source before host-test compiles,
//! so every test and bench drives the `.wasm` of this very tree, never a stale one.
//! It has its own target dir (beside the host's), as wstd's test-programs do.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir
        .parent()
        .expect("host-test lives in the workspace");
    for watched in [
        "src",
        "wit",
        "Cargo.toml",
        "Cargo.lock",
        ".cargo/config.toml",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").unwrap());
    // One component target dir per checkout: worktrees sharing a target dir
    // must not overwrite each other's `.wasm`; profiles of one checkout share it.
    let checkout = root
        .to_string_lossy()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        });
    let target_dir = host_target_dir(&out_dir)
        .join("wasm-component")
        .join(format!("{checkout:016x}"));
    ensure_wasm_target();
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .arg("build")
        .arg("--release")
        .args(["--target", "wasm32-wasip2", "--package", "wecom-auth"])
        .arg("--manifest-path")
        .arg(root.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir);
    // The outer build's flags and wrappers (clippy, coverage) are for the host.
    for inherited in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
    ] {
        build.env_remove(inherited);
    }
    let status = build
        .status()
        .expect("could not run cargo to build the component");
    assert!(
        status.success(),
        "building the wecom-auth component failed; is the target installed? (rustup target add wasm32-wasip2)"
    );
    let wasm = target_dir.join("wasm32-wasip2/release/wecom_auth.wasm");
    assert!(wasm.exists(), "no component at {}", wasm.display());
    println!("cargo:rustc-env=WECOM_AUTH_COMPONENT={}", wasm.display());
}

/// A fresh machine has no `wasm32-wasip2` standard library: add it with rustup
/// (what `.ci/run` does too), so the README's commands work as they stand.
fn ensure_wasm_target() {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let sysroot = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    let installed = sysroot.is_some_and(|root| root.join("lib/rustlib/wasm32-wasip2").is_dir());
    if !installed {
        println!("cargo:warning=installing the wasm32-wasip2 target with rustup");
        let _ = Command::new("rustup")
            .args(["target", "add", "wasm32-wasip2"])
            .status();
    }
}

/// `<target>/<profile>/build/host-test-<hash>/out` → `<target>`.
fn host_target_dir(out_dir: &Path) -> PathBuf {
    out_dir
        .ancestors()
        .find(|dir| dir.file_name().is_some_and(|name| name == "build"))
        .and_then(|build| build.parent()?.parent())
        .unwrap_or(out_dir)
        .to_path_buf()
}

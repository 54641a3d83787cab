//! Cross-builds the component from the current source before host-test compiles,
//! so every test and bench drives the `.wasm` of this very tree, never a stale one,
//! and the shipped bytes: `wecom-auth-dist` runs `wasm-opt` over it as releases do.
//! It has its own target dir (beside the host's), as wstd's test-programs do.

use std::env;
use std::path::{Path, PathBuf};

use wecom_auth_dist::{Optimized, REQUIRE_ENV, WASM_OPT_ENV};

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir
        .parent()
        .expect("host-test lives in the workspace");
    for watched in ["src", "wit", "Cargo.toml", "Cargo.lock"] {
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
    let require_wasm_opt = env::var(REQUIRE_ENV).is_ok_and(|v| v == "1");
    println!("cargo:rerun-if-env-changed={REQUIRE_ENV}");
    println!("cargo:rerun-if-env-changed={WASM_OPT_ENV}");
    let built = wecom_auth_dist::build(root, &target_dir, require_wasm_opt)
        .unwrap_or_else(|e| panic!("{e}"));
    if let Optimized::Skipped(why) = &built.optimized {
        println!("cargo:warning={why}");
        // Installing Binaryen afterwards is picked up at the next build.
        println!("cargo:rerun-if-env-changed=PATH");
    }
    println!(
        "cargo:rustc-env=WECOM_AUTH_COMPONENT={}",
        built.component.display()
    );
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

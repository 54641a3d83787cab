//! `cargo run -p wecom-auth-dist`: builds the shipped component,
//! `target/dist/wecom_auth.wasm` (what `spin.toml` serves), and prints its path.

use std::path::PathBuf;
use std::process::ExitCode;

use wecom_auth_dist::{Optimized, REQUIRE_ENV, build};

fn main() -> ExitCode {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let root = root.canonicalize().unwrap_or(root);
    // Always the workspace's own `target/`, whatever CARGO_TARGET_DIR says:
    // spin.toml and the gateway look for the component there.
    let target_dir = root.join("target");
    let require = std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1");
    match build(&root, &target_dir, require) {
        Ok(built) => {
            match built.optimized {
                Optimized::WasmOpt { before, after } => {
                    eprintln!("wasm-opt -Oz: {before} → {after} bytes")
                }
                Optimized::Skipped(why) => eprintln!("warning: {why}"),
                Optimized::UpToDate => {}
            }
            println!("{}", built.component.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

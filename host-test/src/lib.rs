//! host-test: the harness that loads the built wecom-auth component exactly
//! as a gateway would (wasmtime 48, the reference gateway's linker and host
//! state), with outgoing requests recorded and routed to the WeCom simulator.
//! It holds the integration tests, the benches, the browser test and the demo.
//!
//! | module | what |
//! |---|---|
//! | [`bindings`] | the component's typed exports, host side |
//! | [`host`] | [`host::ComponentHost`]: one `InstancePre`, a fresh instance per call |
//! | [`outgoing`] | outgoing HTTP recorded, then routed (simulator, loopback) |
//! | [`example`] | the sample authenticator as the typed API takes it |
//! | [`client`] | one HTTP request for the benches: status, `Location`, cookies |
//! | [`demo`] | simulator + gateway + seeded directory |
//! | [`proxy`] | the `deploy/` proxy recipes for real Nginx and Caddy, an echo app |

pub mod bindings;
pub mod client;
pub mod demo;
pub mod example;
pub mod host;
pub mod outgoing;
pub mod proxy;

/// The component built from this tree's source by `build.rs` (release profile).
pub const COMPONENT_PATH: &str = env!("WECOM_AUTH_COMPONENT");

/// Whether a bench row is asked for: `cargo bench -p host-test --bench X --
/// word...` runs only the rows whose label contains one of the words (none
/// given: every row).
pub fn bench_row_selected(label: &str) -> bool {
    let words: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    words.is_empty() || words.iter().any(|w| label.contains(w.as_str()))
}

/// Says that a real part a test drives is missing, so the test skips: a
/// failure when `require_env` is `1` (`.ci/run` sets it), else a note
/// written straight to the stderr handle. libtest captures `eprintln!` of
/// passing tests, and a person running `cargo test` must see what was not
/// tested (`.ci/install-parts` installs every part).
pub fn missing_part(require_env: &str, untested: &str, missing: &str) {
    use std::io::Write as _;
    let required = std::env::var(require_env).is_ok_and(|v| v == "1");
    assert!(
        !required,
        "{untested}: missing {missing}, and {require_env}=1"
    );
    let _ = writeln!(
        std::io::stderr(),
        "\n*** SKIPPED: {untested}. Missing: {missing} (see .ci/install-parts). \
         Set {require_env}=1 to make this a failure. ***\n"
    );
}

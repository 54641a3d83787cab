//! The component's output: audit and error lines on `wasi:cli/stderr`, which
//! hosts put in their log (Spin: the component's log; the gateway: its own).

use super::bindings::wasi::cli::stderr::get_stderr;
use super::streams::write_all;
use crate::prelude::*;

/// Writes `line` and a newline. A host that refuses the write loses the line:
/// there is nowhere else to tell.
pub fn line(line: &str) {
    let mut bytes = Vec::with_capacity(line.len() + 1);
    bytes.extend_from_slice(line.as_bytes());
    bytes.push(b'\n');
    let _ = write_all(&get_stderr(), &bytes);
}

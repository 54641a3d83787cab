//! Writing to a `wasi:io/streams` output stream.

use super::bindings::wasi::io::streams::{OutputStream, StreamError};

/// `blocking-write-and-flush` takes at most 4096 bytes per call
/// (`wasi:io/streams@0.2`).
const WRITE_CHUNK: usize = 4096;

/// Writes all of `bytes`, 4096 at a time, flushing each; stops at the first
/// error.
pub fn write_all(stream: &OutputStream, bytes: &[u8]) -> Result<(), StreamError> {
    for chunk in bytes.chunks(WRITE_CHUNK) {
        stream.blocking_write_and_flush(chunk)?;
    }
    Ok(())
}

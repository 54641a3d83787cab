//! The WASI glue, the guest side of the WIT (wasm32 only): exports
//! `wecom:auth/login` and `wasi:http/incoming-handler`, implements the core's
//! ports over WASI (key-value, outgoing HTTP), and reads the clock and
//! randomness. Nothing here decides anything. The crate is `no_std` on
//! wasm32: the heap, the panic handler and stderr are here.

mod bindings;
mod convert;
mod environment;
mod http_client;
mod incoming;
mod keyvalue;
mod login;
mod stderr;
mod streams;

use ::core::alloc::{GlobalAlloc, Layout};
use ::core::panic::PanicInfo;
use ::core::sync::atomic::{AtomicBool, Ordering};

use crate::prelude::*;
use bindings::Component;

bindings::export!(Component with_types_in bindings);

/// The heap is wasi-libc's `malloc`, as with std (which calls the same
/// functions on WASI): it starts at `__heap_base`, in the memory the module
/// already has, where the dlmalloc crate would grow memory on each fresh
/// instance's first allocation (17 % slower per call, measured).
#[global_allocator]
static HEAP: LibcHeap = LibcHeap;

struct LibcHeap;

// The target's own wasi-libc: rustc links no libc for a `no_std` crate.
#[link(name = "c")]
unsafe extern "C" {
    fn malloc(size: usize) -> *mut u8;
    fn aligned_alloc(align: usize, size: usize) -> *mut u8;
    fn realloc(ptr: *mut u8, size: usize) -> *mut u8;
    fn free(ptr: *mut u8);
    /// The canonical ABI's allocator export, over `realloc`: the memory the
    /// host hands in (strings, lists) comes from the heap Rust frees with.
    fn cabi_realloc(old_ptr: *mut u8, old_len: usize, align: usize, new_len: usize) -> *mut u8;
}

/// Makes the linker take wasi-libc's `cabi_realloc`, which exports itself
/// (what wit-bindgen leaves to libc on `wasm32-wasip2`).
#[used]
static EXPORT_CABI_REALLOC: unsafe extern "C" fn(*mut u8, usize, usize, usize) -> *mut u8 =
    cabi_realloc;

/// An alignment `malloc` always meets on wasm32: std's minimum (wasi-libc's
/// dlmalloc gives 16).
const MALLOC_ALIGN: usize = 8;

// SAFETY: each method forwards to the libc function with that contract;
// `aligned_alloc` serves the alignments `malloc` does not promise.
unsafe impl GlobalAlloc for LibcHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= MALLOC_ALIGN && layout.align() <= layout.size() {
            unsafe { malloc(layout.size()) }
        } else {
            unsafe { aligned_alloc(layout.align(), layout.size()) }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, _: Layout) {
        unsafe { free(ptr) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, size: usize) -> *mut u8 {
        if layout.align() <= MALLOC_ALIGN && layout.align() <= size {
            return unsafe { realloc(ptr, size) };
        }
        // Over-aligned: a new block, the bytes copied, the old one freed.
        let Ok(new_layout) = Layout::from_size_align(size, layout.align()) else {
            return ::core::ptr::null_mut();
        };
        unsafe {
            let new = self.alloc(new_layout);
            if !new.is_null() {
                ::core::ptr::copy_nonoverlapping(ptr, new, layout.size().min(size));
                free(ptr);
            }
            new
        }
    }
}

/// A panic is a bug: say where, on one stderr line (hosts read a line per
/// record), then trap. A panic while saying so (out of memory) only traps.
#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    static PANICKING: AtomicBool = AtomicBool::new(false);
    if !PANICKING.swap(true, Ordering::Relaxed) {
        let message = info.message();
        stderr::line(&match info.location() {
            Some(at) => format!(
                "wecom-auth: panic at {}:{}: {message}",
                at.file(),
                at.line()
            ),
            None => format!("wecom-auth: panic: {message}"),
        });
    }
    ::core::arch::wasm32::unreachable()
}

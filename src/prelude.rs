//! What std's prelude holds and `no_std` leaves out: every module of the
//! crate imports it, so the code reads the same natively and on wasm32.

pub use alloc::borrow::ToOwned;
pub use alloc::boxed::Box;
pub use alloc::format;
pub use alloc::string::{String, ToString};
pub use alloc::vec;
pub use alloc::vec::Vec;

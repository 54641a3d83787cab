//! The resources a component holds: an open bucket and a compare-and-swap
//! handle with what it saw.

/// What a CAS saw: the value and, for the memory backend, its version (the
/// other backends compare values and leave it 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Seen {
    pub(crate) value: Vec<u8>,
    pub(crate) version: u64,
}

impl Seen {
    #[cfg_attr(not(any(feature = "sqlite", feature = "redis")), allow(dead_code))]
    pub(crate) fn value(value: Vec<u8>) -> Self {
        Seen { value, version: 0 }
    }
}

/// An open bucket: the name of the store it reads.
#[derive(Debug)]
pub struct Bucket {
    pub(crate) name: String,
}

/// A compare-and-swap handle: what the key held when it was taken.
#[derive(Debug)]
pub struct Cas {
    pub(crate) bucket: String,
    pub(crate) key: String,
    /// `None`: the key was absent.
    pub(crate) seen: Option<Seen>,
}

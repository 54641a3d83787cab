//! JSON, through miniserde: one parser and one printer that every record type
//! shares through trait objects. serde_json's deserializer is built anew for
//! each record type (some 6.7 KB of wasm each against about 1 KB here, and its
//! error messages pulled in float formatting); this is what keeps the
//! component small (docs/PERFORMANCE.md).
//!
//! The derives know `#[serde(rename = "...")]` only. A missing or `null`
//! `Option` field reads as `None`; any other missing field refuses the record,
//! so a field that may be absent is an `Option`. Unknown fields are ignored.
//! A field that is left out when empty is written with [`Object`].

use crate::prelude::*;
use alloc::borrow::Cow;

pub use miniserde::ser::Fragment;
pub use miniserde::{Deserialize, Serialize};

/// Parses `bytes` as a `T`. None when they are not UTF-8, not JSON, or not a
/// `T` (miniserde tells no more: callers name what they were reading).
pub fn from_slice<T: Deserialize>(bytes: &[u8]) -> Option<T> {
    miniserde::json::from_str(::core::str::from_utf8(bytes).ok()?).ok()
}

/// `value` as compact JSON.
pub fn to_string<T: Serialize + ?Sized>(value: &T) -> String {
    miniserde::json::to_string(value)
}

/// `value` as compact JSON bytes.
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    to_string(value).into_bytes()
}

/// A JSON object written field by field, in order: for the types whose empty
/// fields are left out (`{"status":"ok"}`, not `{"status":"ok","reason":null}`)
/// or which add their fields to another's.
///
/// ```
/// use wecom_auth::core::json::{Fragment, Object, Serialize, to_string};
/// struct Probe { status: &'static str, reason: Option<String> }
/// impl Serialize for Probe {
///     fn begin(&self) -> Fragment<'_> {
///         Object::new().field("status", &self.status).optional("reason", &self.reason).begin()
///     }
/// }
/// let probe = Probe { status: "ok", reason: None };
/// assert_eq!(to_string(&probe), r#"{"status":"ok"}"#);
/// ```
#[derive(Default)]
pub struct Object<'a> {
    fields: Vec<(&'static str, &'a dyn Serialize)>,
}

impl<'a> Object<'a> {
    pub fn new() -> Self {
        Object::default()
    }

    pub fn field(mut self, name: &'static str, value: &'a dyn Serialize) -> Self {
        self.fields.push((name, value));
        self
    }

    /// The field when `value` is `Some`; nothing when `None`.
    pub fn optional<T: Serialize>(self, name: &'static str, value: &'a Option<T>) -> Self {
        match value {
            Some(value) => self.field(name, value),
            None => self,
        }
    }

    /// The field when `keep` (e.g. a list unless it is empty).
    pub fn field_if(self, name: &'static str, keep: bool, value: &'a dyn Serialize) -> Self {
        if keep { self.field(name, value) } else { self }
    }

    /// The object, as a [`Serialize::begin`] answers it.
    pub fn begin(self) -> Fragment<'a> {
        Fragment::Map(Box::new(Fields(self.fields.into_iter())))
    }
}

struct Fields<'a>(alloc::vec::IntoIter<(&'static str, &'a dyn Serialize)>);

impl miniserde::ser::Map for Fields<'_> {
    fn next(&mut self) -> Option<(Cow<'_, str>, &dyn Serialize)> {
        self.0
            .next()
            .map(|(name, value)| (Cow::Borrowed(name), value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Record {
        #[serde(rename = "a")]
        name: String,
        note: Option<String>,
        pairs: Vec<(u32, u32)>,
    }

    #[test]
    fn records_round_trip_and_absent_options_read_as_none() {
        let record = Record {
            name: "张三 \"q\"".into(),
            note: None,
            pairs: vec![(1, 0), (2, 1)],
        };
        let json = to_string(&record);
        assert_eq!(
            json,
            r#"{"a":"张三 \"q\"","note":null,"pairs":[[1,0],[2,1]]}"#
        );
        assert_eq!(from_slice::<Record>(json.as_bytes()), Some(record));
        let without_note: Record =
            from_slice(br#"{"a":"x","pairs":[],"more":{"y":[1.5]}}"#).unwrap();
        assert_eq!(without_note.note, None, "unknown fields are ignored");
    }

    #[test]
    fn signed_and_unsigned_numbers_round_trip() {
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        struct Point {
            window: u64,
            slot: i64,
        }
        for point in [
            Point {
                window: u64::MAX,
                slot: -1,
            },
            Point {
                window: 0,
                slot: i64::MAX,
            },
            Point {
                window: 5_966_666,
                slot: 1,
            },
        ] {
            let json = to_string(&point);
            assert_eq!(from_slice::<Point>(json.as_bytes()), Some(point), "{json}");
        }
    }

    #[test]
    fn a_missing_required_field_or_bad_bytes_refuse_the_record() {
        assert_eq!(from_slice::<Record>(br#"{"a":"x"}"#), None);
        assert_eq!(from_slice::<Record>(b"{\"a\":\"\xff\",\"pairs\":[]}"), None);
        assert_eq!(from_slice::<Record>(br#"{"a":1,"pairs":[]}"#), None);
        assert_eq!(from_slice::<Record>(b""), None);
    }

    #[test]
    fn objects_leave_out_empty_fields() {
        struct Row {
            ok: bool,
            line: Option<usize>,
            problems: Vec<String>,
        }
        impl Serialize for Row {
            fn begin(&self) -> Fragment<'_> {
                Object::new()
                    .field("ok", &self.ok)
                    .optional("line", &self.line)
                    .field_if("problems", !self.problems.is_empty(), &self.problems)
                    .begin()
            }
        }
        let row = |line, problems: &[&str]| Row {
            ok: true,
            line,
            problems: problems.iter().map(|p| p.to_string()).collect(),
        };
        assert_eq!(to_string(&row(None, &[])), r#"{"ok":true}"#);
        assert_eq!(
            to_string(&row(Some(3), &["x"])),
            r#"{"ok":true,"line":3,"problems":["x"]}"#
        );
    }
}

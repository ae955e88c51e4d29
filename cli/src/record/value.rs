//! Scalar values of the command line's rows: keys and numbers.

use std::cmp::Ordering;
use std::hash::{Hash, Hasher};

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

use super::non_finite::non_finite_text;

/// A grouping key: any JSON scalar (CSV keys are strings).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Key {
    /// No key (no `--key-field`, or the field is null or missing).
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A floating-point number.
    Float(f64),
    /// A string, inline up to 24 bytes (no heap allocation for the usual key).
    Str(CompactString),
}

impl Key {
    fn rank(&self) -> u8 {
        match self {
            Key::Null => 0,
            Key::Bool(_) => 1,
            Key::Int(_) => 2,
            Key::Float(_) => 3,
            Key::Str(_) => 4,
        }
    }

    /// Writes the key as a JSON value.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        match self {
            Key::Null => out.extend_from_slice(b"null"),
            Key::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
            Key::Int(i) => write_int(*i, out),
            Key::Float(f) => write_json_f64(*f, out),
            Key::Str(s) => write_json_str(s, out),
        }
    }

    /// The key as CSV text (empty for null).
    pub fn csv_text(&self) -> String {
        match self {
            Key::Null => String::new(),
            Key::Bool(b) => b.to_string(),
            Key::Int(i) => i.to_string(),
            Key::Float(f) => csv_f64(*f),
            Key::Str(s) => s.to_string(),
        }
    }
}

// Keys compare and hash floats by their bits (with -0.0 folded into 0.0), so that every key,
// NaN included, equals itself and groups with itself.
fn float_bits(f: f64) -> u64 {
    if f == 0.0 {
        0
    } else {
        f.to_bits()
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            // The hash tables' probe: equal keys are the usual case, settled by the bytes.
            (Key::Str(a), Key::Str(b)) => a.as_bytes() == b.as_bytes(),
            _ => self.cmp(other) == Ordering::Equal,
        }
    }
}

impl Eq for Key {}

impl Ord for Key {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Key::Bool(a), Key::Bool(b)) => a.cmp(b),
            (Key::Int(a), Key::Int(b)) => a.cmp(b),
            (Key::Float(a), Key::Float(b)) => {
                if float_bits(*a) == float_bits(*b) {
                    Ordering::Equal
                } else {
                    a.total_cmp(b)
                }
            }
            (Key::Str(a), Key::Str(b)) => cmp_text(a.as_bytes(), b.as_bytes()),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

/// Orders two strings as their bytes do. Result rows are sorted by key, and `memcmp` behind
/// `CompactString`'s `cmp` was 5% of a window job's CPU: most pairs of keys are decided on
/// their first eight bytes read as one big-endian number (zero-padded, so a tie there is
/// settled by the bytes: `"k1"` and `"k1\0"`), built without a data-dependent branch per
/// byte (a byte-by-byte loop mispredicts where the keys first differ).
#[inline]
fn cmp_text(a: &[u8], b: &[u8]) -> Ordering {
    match head(a).cmp(&head(b)) {
        Ordering::Equal => a.cmp(b),
        unequal => unequal,
    }
}

impl Key {
    /// A number that never disagrees with the keys' order (`a < b` implies
    /// `a.sort_prefix() <= b.sort_prefix()`) and tells most keys apart: the kind, then an
    /// integer's value or a string's first seven bytes. Sorting result rows by it first
    /// (`OrderedSink::with_prefix`) compares whole rows only on ties.
    pub fn sort_prefix(&self) -> u64 {
        let rank = u64::from(self.rank()) << 61;
        let within = match self {
            Key::Null | Key::Float(_) => 0,
            Key::Bool(b) => u64::from(*b),
            // Order-preserving from i64 to u64, then the top 61 bits.
            Key::Int(i) => ((*i as u64) ^ (1 << 63)) >> 3,
            Key::Str(s) => head(s.as_bytes()) >> 8,
        };
        rank | within
    }
}

/// The first eight bytes of `bytes` as one big-endian number, zero-padded.
#[inline]
fn head(bytes: &[u8]) -> u64 {
    if let Some(first) = bytes.first_chunk::<8>() {
        return u64::from_be_bytes(*first);
    }
    let mut head = 0u64;
    for (i, &byte) in bytes.iter().enumerate() {
        head |= u64::from(byte) << (56 - 8 * i);
    }
    head
}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.rank().hash(state);
        match self {
            Key::Null => {}
            Key::Bool(b) => b.hash(state),
            Key::Int(i) => i.hash(state),
            Key::Float(f) => float_bits(*f).hash(state),
            Key::Str(s) => s.hash(state),
        }
    }
}

/// A number read from an aggregated field.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Num {
    /// An integer.
    Int(i64),
    /// A floating-point number.
    Float(f64),
}

impl Num {
    /// The number as `f64`.
    pub fn as_f64(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
    }

    /// Orders numbers by value, exactly (an integer against a float too), as Spark orders
    /// them: NaN above every other number (so `max` over a NaN is NaN and `min` skips it), NaN
    /// equal to NaN. A total order, so `min` and `max` do not depend on arrival order: of equal
    /// values an integer comes before a float, and `-0.0` before `0.0`.
    pub fn compare(self, other: Num) -> Ordering {
        match (self, other) {
            (Num::Int(a), Num::Int(b)) => a.cmp(&b),
            (Num::Float(a), Num::Float(b)) => match (a.is_nan(), b.is_nan()) {
                (true, true) => Ordering::Equal,
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                (false, false) => a.total_cmp(&b),
            },
            (Num::Int(a), Num::Float(b)) => int_float_order(a, b),
            (Num::Float(a), Num::Int(b)) => int_float_order(b, a).reverse(),
        }
    }
}

/// Orders integer `int` against float `float` exactly; an integer before an equal float.
fn int_float_order(int: i64, float: f64) -> Ordering {
    match (int as f64).partial_cmp(&float) {
        // NaN is above every number.
        None => Ordering::Less,
        // Rounding `int` to f64 keeps its order against any other float; an equal float is
        // integral and below 2^64, so i128 compares them exactly.
        Some(Ordering::Equal) => i128::from(int).cmp(&(float as i128)).then(Ordering::Less),
        Some(order) => order,
    }
}

/// Writes a float as JSON: shortest round-trip form; NaN and the infinities, which JSON has no
/// numbers for, as the strings `"NaN"`, `"Infinity"` and `"-Infinity"`, as Spark writes them.
pub(crate) fn write_json_f64(f: f64, out: &mut Vec<u8>) {
    match non_finite_text(f) {
        None => {
            // Serialising a finite f64 to a Vec cannot fail.
            let _ = serde_json::to_writer(&mut *out, &f);
        }
        Some(text) => {
            out.push(b'"');
            out.extend_from_slice(text.as_bytes());
            out.push(b'"');
        }
    }
}

/// An integer in decimal, without going through `fmt`.
#[inline]
pub(crate) fn write_int(i: impl itoa::Integer, out: &mut Vec<u8>) {
    out.extend_from_slice(itoa::Buffer::new().format(i).as_bytes());
}

/// A string as a JSON string: copied between quotes when nothing in it needs escaping (the
/// usual key), else escaped by serde_json.
#[inline]
pub(crate) fn write_json_str(s: &str, out: &mut Vec<u8>) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        // Serialising a string to a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, s);
    }
}

/// A float as CSV text: Rust's shortest form, `NaN`, `Infinity` or `-Infinity`.
pub(crate) fn csv_f64(f: f64) -> String {
    non_finite_text(f).map_or_else(|| f.to_string(), str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn any_key() -> impl Strategy<Value = Key> {
        prop_oneof![
            Just(Key::Null),
            any::<bool>().prop_map(Key::Bool),
            any::<i64>().prop_map(Key::Int),
            prop_oneof![
                Just(i64::MIN),
                Just(-1i64),
                Just(0),
                Just(1),
                Just(i64::MAX)
            ]
            .prop_map(Key::Int),
            any::<f64>().prop_map(Key::Float),
            "[a-c\u{e9}\u{0}]{0,10}".prop_map(|s| Key::Str(s.as_str().into())),
        ]
    }

    proptest! {
        /// String keys order as their texts do (as `CompactString` and `str` order them).
        #[test]
        fn string_keys_order_as_their_texts(a in "[a-c\u{e9}\u{0}]{0,10}", b in "[a-c\u{e9}\u{0}]{0,10}") {
            let (ka, kb) = (Key::Str(a.as_str().into()), Key::Str(b.as_str().into()));
            prop_assert_eq!(ka.cmp(&kb), a.cmp(&b));
            prop_assert_eq!(ka == kb, a == b);
        }

        /// A key's sort prefix never disagrees with the keys' order, across kinds.
        #[test]
        fn sort_prefixes_follow_the_keys_order(a in any_key(), b in any_key()) {
            if a < b {
                prop_assert!(a.sort_prefix() <= b.sort_prefix(), "{:?} {:?}", a, b);
            }
        }
    }

    #[test]
    fn numbers_order_exactly_with_nan_above_all() {
        let nan = Num::Float(f64::NAN);
        assert_eq!(nan.compare(Num::Float(f64::INFINITY)), Ordering::Greater);
        assert_eq!(nan.compare(Num::Int(i64::MAX)), Ordering::Greater);
        assert_eq!(Num::Int(1).compare(nan), Ordering::Less);
        assert_eq!(nan.compare(Num::Float(-f64::NAN)), Ordering::Equal);
        // 2^53 + 1 is above the float 2^53 although it rounds to it.
        let big = 1i64 << 53;
        assert_eq!(
            Num::Int(big + 1).compare(Num::Float(big as f64)),
            Ordering::Greater
        );
        assert_eq!(
            Num::Float(big as f64).compare(Num::Int(big + 1)),
            Ordering::Less
        );
        // Equal values: the integer first, -0.0 before 0.0, whatever the order of arrival.
        assert_eq!(Num::Int(1).compare(Num::Float(1.0)), Ordering::Less);
        assert_eq!(Num::Float(1.0).compare(Num::Int(1)), Ordering::Greater);
        assert_eq!(Num::Float(-0.0).compare(Num::Float(0.0)), Ordering::Less);
        let mut out = Vec::new();
        write_json_f64(f64::NEG_INFINITY, &mut out);
        assert_eq!(out, b"\"-Infinity\"");
        assert_eq!(csv_f64(f64::NAN), "NaN");
    }

    #[test]
    fn keys_of_different_kinds_are_distinct_and_ordered() {
        let mut keys = vec![
            Key::Str("1".into()),
            Key::Int(1),
            Key::Float(1.0),
            Key::Null,
            Key::Bool(true),
        ];
        keys.sort();
        assert_eq!(
            keys,
            vec![
                Key::Null,
                Key::Bool(true),
                Key::Int(1),
                Key::Float(1.0),
                Key::Str("1".into())
            ]
        );
        assert_eq!(Key::Float(-0.0), Key::Float(0.0));
        assert_eq!(Key::Float(f64::NAN), Key::Float(f64::NAN));
        let mut json = Vec::new();
        Key::Str("a\"b".into()).write_json(&mut json);
        assert_eq!(json, br#""a\"b""#);
    }
}

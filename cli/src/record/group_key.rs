//! Grouping keys of mixed JSON types: one rule for grouping, the static join and the output.
//!
//! Spark infers one type per column: a column of `1` and `"1"` is a string column (one group),
//! one of `1` and `1.0` a double column (one group), `true` and `"true"` a string column. A
//! stream cannot see the whole column first, so Tideflow groups keys by their canonical text:
//! a number as its shortest form (an integral value as an integer: `1`, `1.0` and `-0` are
//! `1`, `1`, `0`; others as the shortest round-trip decimal, `NaN`, `Infinity`, `-Infinity`),
//! a boolean as `true`/`false`, a string as itself. A string that is exactly a canonical text
//! (`"1"`, `"true"`, `"2.5"`, not `"01"` or `"1.0"`) is that number or boolean. The static
//! join matches the same texts, so a join and the grouping after it agree.
//!
//! Each key group remembers the widest way its key was written ([`KeyKind`]), as Spark's
//! inference widens a column, and the output writes the key that way: a JSON string if any
//! record wrote it as a string (CSV keys are strings), else a float if any wrote a fraction
//! (`1.0`), else an integer or boolean.

use std::io::Write;

use serde::{Deserialize, Serialize};

use super::decode::Scalar;
use super::non_finite::non_finite_text;
use super::value::write_json_f64;
use super::Key;

/// How a record wrote its key, narrowest first: the output writes a group's key as the widest
/// kind among its records.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub enum KeyKind {
    /// As a JSON integer or boolean (or no key at all).
    #[default]
    Native,
    /// As a JSON number with a fraction or exponent.
    Float,
    /// As a string (a JSON string, or any CSV cell).
    Text,
}

impl KeyKind {
    /// Every kind, narrowest first.
    pub const ALL: [KeyKind; 3] = [KeyKind::Native, KeyKind::Float, KeyKind::Text];
}

/// The canonical key of a number: an integer when it is integral and fits `i64` (so `-0.0`
/// is `0`), else the float.
fn number_key(value: f64) -> Key {
    // i64's range is [-2^63, 2^63): `as` saturates, so check the bounds first.
    if value.fract() == 0.0
        && (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&value)
    {
        Key::Int(value as i64)
    } else {
        Key::Float(value)
    }
}

impl Key {
    /// The key in canonical form: a string as [`from_text`](Self::from_text) reads it, a float
    /// as an integer when it is one.
    pub fn canonical(&self) -> Key {
        match self {
            Key::Str(text) => Key::from_text(text),
            Key::Float(value) => number_key(*value),
            other => other.clone(),
        }
    }

    /// The canonical key a string names: a number or boolean if the string is exactly its
    /// canonical text, else the string.
    ///
    /// # Examples
    /// ```
    /// use tideflow_cli::record::Key;
    /// assert_eq!(Key::from_text("12"), Key::Int(12));
    /// assert_eq!(Key::from_text("true"), Key::Bool(true));
    /// assert_eq!(Key::from_text("2.5"), Key::Float(2.5));
    /// assert_eq!(Key::from_text("012"), Key::Str("012".into()));
    /// assert_eq!(Key::from_text("1.0"), Key::Str("1.0".into()));
    /// ```
    pub fn from_text(text: &str) -> Key {
        // A canonical number or boolean starts with a digit, '-', 't', 'f', 'N' or 'I': any
        // other text is a string, without trying to parse it.
        match text.as_bytes().first() {
            Some(b'0'..=b'9' | b'-' | b't' | b'f' | b'N' | b'I') => {}
            _ => return Key::Str(text.into()),
        }
        match text {
            "true" => return Key::Bool(true),
            "false" => return Key::Bool(false),
            "NaN" => return Key::Float(f64::NAN),
            "Infinity" => return Key::Float(f64::INFINITY),
            "-Infinity" => return Key::Float(f64::NEG_INFINITY),
            _ => {}
        }
        let digits = text.strip_prefix('-').unwrap_or(text);
        let canonical_integer = digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.is_empty()
            && (!digits.starts_with('0') || text == "0");
        if canonical_integer {
            if let Ok(int) = text.parse::<i64>() {
                return Key::Int(int);
            }
        } else if let Ok(float) = text.parse::<f64>() {
            if let key @ Key::Float(value) = number_key(float) {
                if value.is_finite() && ryu::Buffer::new().format_finite(value) == text {
                    return key;
                }
            }
        }
        Key::Str(text.into())
    }

    /// The canonical text of the key (empty for null): what groups and joins compare.
    pub fn text(&self) -> String {
        match self {
            Key::Null => String::new(),
            Key::Bool(b) => b.to_string(),
            Key::Int(i) => i.to_string(),
            Key::Float(f) => float_text(*f),
            Key::Str(s) => s.to_string(),
        }
    }

    /// Writes a group's key as JSON, the `kind` way ([`KeyKind`]).
    pub fn write_json_as(&self, kind: KeyKind, out: &mut Vec<u8>) {
        match (self, kind) {
            (Key::Null | Key::Str(_), _) | (Key::Bool(_) | Key::Int(_), KeyKind::Native) => {
                self.write_json(out)
            }
            (Key::Int(i), KeyKind::Float) => {
                let _ = write!(out, "{i}.0");
            }
            (Key::Float(f), KeyKind::Native | KeyKind::Float) => write_json_f64(*f, out),
            (Key::Bool(_) | Key::Int(_) | Key::Float(_), _) => {
                // Serialising a string to a Vec cannot fail.
                let _ = serde_json::to_writer(&mut *out, &self.text());
            }
        }
    }

    /// A group's key as CSV text, the `kind` way (empty for null).
    pub fn csv_text_as(&self, kind: KeyKind) -> String {
        match (self, kind) {
            (Key::Int(i), KeyKind::Float) => format!("{i}.0"),
            _ => self.text(),
        }
    }
}

/// The canonical text of a float: shortest round-trip decimal, `NaN`, `Infinity`, `-Infinity`.
fn float_text(value: f64) -> String {
    match non_finite_text(value) {
        Some(text) => text.to_string(),
        None => ryu::Buffer::new().format_finite(value).to_string(),
    }
}

/// The canonical grouping key of a JSON key field and how it was written.
pub(super) fn group_key(value: &Scalar<'_>, field: &str) -> Result<(Key, KeyKind), String> {
    Ok(match value {
        // `-0` (which JSON parsers read as -0.0) is the integer 0, as Spark reads it.
        Scalar::Float(f) if *f == 0.0 && f.is_sign_negative() => (Key::Int(0), KeyKind::Native),
        Scalar::Float(f) => (number_key(*f), KeyKind::Float),
        Scalar::Str(text) => (Key::from_text(text), KeyKind::Text),
        other => (other.to_key(field, "key field")?, KeyKind::Native),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_canonical_and_name_their_key() {
        for (text, key) in [
            ("-12", Key::Int(-12)),
            ("0", Key::Int(0)),
            ("1e300", Key::Float(1e300)),
            ("0.1", Key::Float(0.1)),
            ("-Infinity", Key::Float(f64::NEG_INFINITY)),
            ("false", Key::Bool(false)),
        ] {
            assert_eq!(Key::from_text(text), key, "{text}");
            assert_eq!(key.text(), text);
        }
        for text in [
            "-0",
            "+1",
            "1.50",
            "1E3",
            "True",
            "nan",
            "9223372036854775808",
            " 1",
            "x",
        ] {
            assert_eq!(Key::from_text(text), Key::Str(text.into()), "{text}");
        }
        assert_eq!(number_key(-0.0), Key::Int(0));
        assert_eq!(number_key(2f64.powi(63)), Key::Float(2f64.powi(63)));
        assert_eq!(number_key(-(2f64.powi(63))), Key::Int(i64::MIN));
    }

    #[test]
    fn keys_are_written_the_widest_way_seen() {
        let json = |key: Key, kind| {
            let mut out = Vec::new();
            key.write_json_as(kind, &mut out);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(json(Key::Int(1), KeyKind::Native), "1");
        assert_eq!(json(Key::Int(1), KeyKind::Float), "1.0");
        assert_eq!(json(Key::Int(1), KeyKind::Text), "\"1\"");
        assert_eq!(json(Key::Bool(true), KeyKind::Text), "\"true\"");
        assert_eq!(json(Key::Float(f64::NAN), KeyKind::Float), "\"NaN\"");
        assert_eq!(json(Key::Float(2.5), KeyKind::Text), "\"2.5\"");
        assert_eq!(json(Key::Str("a".into()), KeyKind::Native), "\"a\"");
        assert_eq!(json(Key::Null, KeyKind::Native), "null");
        assert_eq!(Key::Int(-3).csv_text_as(KeyKind::Float), "-3.0");
        assert_eq!(Key::Float(1e300).csv_text_as(KeyKind::Text), "1e300");
    }
}

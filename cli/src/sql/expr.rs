//! Compiled SQL expressions and their evaluation with SQL's null rules (Spark's, without ANSI
//! mode): a null operand makes a null result, except in AND/OR (three-valued logic), IS
//! [NOT] NULL, COALESCE and CASE; integer arithmetic wraps; `/` is a DOUBLE division and,
//! like `%`, null on a zero divisor; a CAST that cannot convert gives null.

use std::cmp::Ordering;

use super::catalog::SqlType;
use crate::record::Key;

/// A value: [`Key`] holds SQL's scalars (NULL, BOOLEAN, BIGINT, DOUBLE, STRING; a TIMESTAMP is
/// its milliseconds as an integer).
pub(super) type Value = Key;

/// A binary operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
    And,
    Or,
    Concat,
}

/// A scalar function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Func {
    Lower,
    Upper,
    Length,
    Substring,
    Concat,
    Coalesce,
    Abs,
    /// A part of a TIMESTAMP (UTC): YEAR, MONTH, DAY, HOUR, MINUTE, SECOND.
    Part(TimePart),
    /// DATE_FORMAT(ts, pattern): the second argument is the pattern as chrono's format.
    DateFormat,
}

/// A Spark (Java) date pattern as chrono's format: `yyyy`, `yy`, `MM`, `M`, `dd`, `d`, `HH`,
/// `H`, `mm`, `ss`, `SSS` and quoted or non-letter text.
pub(super) fn chrono_pattern(pattern: &str) -> Result<String, String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let run = chars[i..].iter().take_while(|&&d| d == c).count();
        if c == '\'' {
            let end = chars[i + 1..]
                .iter()
                .position(|&d| d == '\'')
                .ok_or("an unclosed quote")?;
            out.push_str(
                &chars[i + 1..i + 1 + end]
                    .iter()
                    .collect::<String>()
                    .replace('%', "%%"),
            );
            i += end + 2;
            continue;
        }
        let spec = match (c, run) {
            ('y', 4) => "%Y",
            ('y', 2) => "%y",
            ('M', 2) => "%m",
            ('M', 1) => "%-m",
            ('d', 2) => "%d",
            ('d', 1) => "%-d",
            ('H', 2) => "%H",
            ('H', 1) => "%-H",
            ('m', 2) => "%M",
            ('s', 2) => "%S",
            ('S', 3) => "%3f",
            (c, _) if c.is_ascii_alphabetic() => {
                return Err(format!("pattern letters {} are not supported; yyyy, yy, MM, M, dd, d, HH, H, mm, ss, SSS and 'quoted text'", c.to_string().repeat(run)))
            }
            ('%', _) => "%%",
            _ => {
                out.push(c);
                i += 1;
                continue;
            }
        };
        out.push_str(spec);
        i += run;
    }
    Ok(out)
}

/// A part of a timestamp.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum TimePart {
    Year,
    Month,
    Day,
    Hour,
    Minute,
    Second,
}

impl TimePart {
    /// The part of the time `ms` milliseconds after the epoch, in UTC.
    fn of(self, ms: i64) -> Option<i64> {
        use chrono::{Datelike, Timelike};
        let time = chrono::DateTime::from_timestamp_millis(ms)?;
        Some(i64::from(match self {
            TimePart::Year => return Some(i64::from(time.year())),
            TimePart::Month => time.month(),
            TimePart::Day => time.day(),
            TimePart::Hour => time.hour(),
            TimePart::Minute => time.minute(),
            TimePart::Second => time.second(),
        }))
    }
}

/// A compiled expression over a row of slots (the columns a stage reads).
#[derive(Clone, Debug)]
pub(super) enum Expr {
    Slot(usize),
    Literal(Value),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Neg(Box<Expr>),
    IsNull(Box<Expr>, bool),
    InList(Box<Expr>, Vec<Expr>, bool),
    Like(Box<Expr>, Vec<char>, bool),
    Case(Vec<(Expr, Expr)>, Option<Box<Expr>>),
    Cast(Box<Expr>, SqlType),
    Call(Func, Vec<Expr>),
}

fn truth(value: &Value) -> Option<bool> {
    match value {
        Key::Bool(b) => Some(*b),
        _ => None,
    }
}

fn float(value: &Value) -> Option<f64> {
    match value {
        Key::Int(i) => Some(*i as f64),
        Key::Float(f) => Some(*f),
        _ => None,
    }
}

/// Compares two non-null values of comparable types (numbers exactly, as the record model
/// orders them).
fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Key::Int(x), Key::Int(y)) => Some(x.cmp(y)),
        (Key::Str(x), Key::Str(y)) => Some(x.as_bytes().cmp(y.as_bytes())),
        (Key::Bool(x), Key::Bool(y)) => Some(x.cmp(y)),
        _ => float(a)?.partial_cmp(&float(b)?),
    }
}

fn arithmetic(op: BinOp, a: &Value, b: &Value) -> Value {
    if let (Key::Int(x), Key::Int(y)) = (a, b) {
        return match op {
            BinOp::Add => Key::Int(x.wrapping_add(*y)),
            BinOp::Sub => Key::Int(x.wrapping_sub(*y)),
            BinOp::Mul => Key::Int(x.wrapping_mul(*y)),
            BinOp::Mod if *y == 0 => Key::Null,
            BinOp::Mod => Key::Int(x.wrapping_rem(*y)),
            BinOp::Div if *y == 0 => Key::Null,
            _ => Key::Float(*x as f64 / *y as f64),
        };
    }
    let (Some(x), Some(y)) = (float(a), float(b)) else {
        return Key::Null;
    };
    match op {
        BinOp::Add => Key::Float(x + y),
        BinOp::Sub => Key::Float(x - y),
        BinOp::Mul => Key::Float(x * y),
        BinOp::Div | BinOp::Mod if y == 0.0 => Key::Null,
        BinOp::Div => Key::Float(x / y),
        _ => Key::Float(x % y),
    }
}

/// Whether `text` matches the LIKE `pattern` (`%` any run of characters, `_` one, `\` escapes).
fn like(text: &[char], pattern: &[char]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some(('%', rest)) => (0..=text.len()).any(|skip| like(&text[skip..], rest)),
        Some(('_', rest)) => !text.is_empty() && like(&text[1..], rest),
        Some(('\\', rest)) if !rest.is_empty() => {
            text.first() == rest.first() && like(&text[1..], &rest[1..])
        }
        Some((c, rest)) => text.first() == Some(c) && like(&text[1..], rest),
    }
}

/// A DOUBLE as Spark (Java) writes it as text: `1.0`, `0.001`, `1.0E7`.
pub(super) fn double_text(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    let magnitude = f.abs();
    if magnitude == 0.0 || (1e-3..1e7).contains(&magnitude) {
        let text = format!("{f}");
        return if text.contains('.') {
            text
        } else {
            format!("{text}.0")
        };
    }
    let text = format!("{f:e}");
    let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
    let mantissa = if mantissa.contains('.') {
        mantissa.to_string()
    } else {
        format!("{mantissa}.0")
    };
    format!("{mantissa}E{exponent}")
}

/// The value as text, as CAST(... AS STRING) writes it.
fn text(value: &Value) -> Option<String> {
    Some(match value {
        Key::Null => return None,
        Key::Bool(b) => b.to_string(),
        Key::Int(i) => i.to_string(),
        Key::Float(f) => double_text(*f),
        Key::Str(s) => s.to_string(),
    })
}

/// `value` converted to `ty`, null where it does not convert (as Spark's CAST without ANSI
/// mode).
pub(super) fn cast(value: Value, ty: SqlType) -> Value {
    match (ty, value) {
        (_, Key::Null) | (SqlType::Null, _) => Key::Null,
        (SqlType::Int | SqlType::Timestamp, Key::Int(i)) => Key::Int(i),
        (SqlType::Timestamp, Key::Str(s)) => {
            crate::record::parse_time(s.trim()).map_or(Key::Null, |ms| Key::Int(ms as i64))
        }
        (SqlType::Int | SqlType::Timestamp, Key::Float(f)) if f.is_finite() => Key::Int(f as i64),
        (SqlType::Int, Key::Bool(b)) => Key::Int(i64::from(b)),
        (SqlType::Int, Key::Str(s)) => {
            let s = s.trim();
            match s.parse::<i64>() {
                Ok(i) => Key::Int(i),
                Err(_) => match s.parse::<f64>() {
                    Ok(f) if f.is_finite() => Key::Int(f as i64),
                    _ => Key::Null,
                },
            }
        }
        (SqlType::Double, Key::Int(i)) => Key::Float(i as f64),
        (SqlType::Double, Key::Float(f)) => Key::Float(f),
        (SqlType::Double, Key::Bool(b)) => Key::Float(f64::from(u8::from(b))),
        (SqlType::Double, Key::Str(s)) => match s.trim().parse::<f64>() {
            Ok(f) => Key::Float(f),
            Err(_) => Key::Null,
        },
        (SqlType::Str, value) => text(&value).map_or(Key::Null, |t| Key::Str(t.into())),
        (SqlType::Bool, Key::Bool(b)) => Key::Bool(b),
        (SqlType::Bool, Key::Int(i)) => Key::Bool(i != 0),
        (SqlType::Bool, Key::Float(f)) => Key::Bool(f != 0.0),
        (SqlType::Bool, Key::Str(s)) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "t" | "yes" | "y" | "1" => Key::Bool(true),
            "false" | "f" | "no" | "n" | "0" => Key::Bool(false),
            _ => Key::Null,
        },
        _ => Key::Null,
    }
}

/// SUBSTRING(s, pos[, len]) as Spark: `pos` from 1 (0 is 1; negative counts from the end).
fn substring(s: &str, pos: i64, len: Option<i64>) -> String {
    let chars: Vec<char> = s.chars().collect();
    let n = chars.len() as i64;
    let start = match pos {
        p if p > 0 => p - 1,
        0 => 0,
        p => n + p,
    };
    let end = match len {
        Some(len) if len <= 0 => return String::new(),
        Some(len) => start.saturating_add(len),
        None => n,
    };
    let (start, end) = (start.clamp(0, n) as usize, end.clamp(0, n) as usize);
    chars[start..end.max(start)].iter().collect()
}

impl Expr {
    /// The expression's value on a row of `slots`.
    pub(super) fn eval(&self, slots: &[Value]) -> Value {
        match self {
            Expr::Slot(i) => slots[*i].clone(),
            Expr::Literal(value) => value.clone(),
            Expr::Binary(BinOp::And, a, b) => {
                match (truth(&a.eval(slots)), truth(&b.eval(slots))) {
                    (Some(false), _) | (_, Some(false)) => Key::Bool(false),
                    (Some(true), Some(true)) => Key::Bool(true),
                    _ => Key::Null,
                }
            }
            Expr::Binary(BinOp::Or, a, b) => match (truth(&a.eval(slots)), truth(&b.eval(slots))) {
                (Some(true), _) | (_, Some(true)) => Key::Bool(true),
                (Some(false), Some(false)) => Key::Bool(false),
                _ => Key::Null,
            },
            Expr::Binary(op, a, b) => {
                let (a, b) = (a.eval(slots), b.eval(slots));
                if a == Key::Null || b == Key::Null {
                    return Key::Null;
                }
                let ordered = |test: fn(Ordering) -> bool| {
                    compare(&a, &b).map_or(Key::Null, |order| Key::Bool(test(order)))
                };
                match op {
                    BinOp::Eq => ordered(Ordering::is_eq),
                    BinOp::NotEq => ordered(Ordering::is_ne),
                    BinOp::Lt => ordered(Ordering::is_lt),
                    BinOp::LtEq => ordered(Ordering::is_le),
                    BinOp::Gt => ordered(Ordering::is_gt),
                    BinOp::GtEq => ordered(Ordering::is_ge),
                    BinOp::Concat => match (text(&a), text(&b)) {
                        (Some(a), Some(b)) => Key::Str((a + &b).into()),
                        _ => Key::Null,
                    },
                    _ => arithmetic(*op, &a, &b),
                }
            }
            Expr::Not(a) => match truth(&a.eval(slots)) {
                Some(b) => Key::Bool(!b),
                None => Key::Null,
            },
            Expr::Neg(a) => match a.eval(slots) {
                Key::Int(i) => Key::Int(i.wrapping_neg()),
                Key::Float(f) => Key::Float(-f),
                _ => Key::Null,
            },
            Expr::IsNull(a, negated) => Key::Bool((a.eval(slots) == Key::Null) != *negated),
            Expr::InList(a, list, negated) => {
                let a = a.eval(slots);
                if a == Key::Null {
                    return Key::Null;
                }
                let mut unknown = false;
                for item in list {
                    let item = item.eval(slots);
                    match compare(&a, &item) {
                        Some(Ordering::Equal) => return Key::Bool(!negated),
                        None => unknown = true,
                        Some(_) => {}
                    }
                }
                match unknown {
                    true => Key::Null,
                    false => Key::Bool(*negated),
                }
            }
            Expr::Like(a, pattern, negated) => match a.eval(slots) {
                Key::Str(s) => {
                    let chars: Vec<char> = s.chars().collect();
                    Key::Bool(like(&chars, pattern) != *negated)
                }
                _ => Key::Null,
            },
            Expr::Case(branches, otherwise) => {
                for (condition, result) in branches {
                    if truth(&condition.eval(slots)) == Some(true) {
                        return result.eval(slots);
                    }
                }
                otherwise.as_ref().map_or(Key::Null, |e| e.eval(slots))
            }
            Expr::Cast(a, ty) => cast(a.eval(slots), *ty),
            Expr::Call(func, args) => call(*func, args, slots),
        }
    }
}

fn call(func: Func, args: &[Expr], slots: &[Value]) -> Value {
    if func == Func::Coalesce {
        return (args.iter().map(|a| a.eval(slots)))
            .find(|v| *v != Key::Null)
            .unwrap_or(Key::Null);
    }
    let values: Vec<Value> = args.iter().map(|a| a.eval(slots)).collect();
    if values.contains(&Key::Null) {
        return Key::Null;
    }
    let string = |v: &Value| text(v).unwrap_or_default();
    match func {
        Func::Lower => Key::Str(string(&values[0]).to_lowercase().into()),
        Func::Upper => Key::Str(string(&values[0]).to_uppercase().into()),
        Func::Length => Key::Int(string(&values[0]).chars().count() as i64),
        Func::Substring => {
            let number = |v: Option<&Value>| match v {
                Some(Key::Int(i)) => Some(*i),
                Some(Key::Float(f)) => Some(*f as i64),
                _ => None,
            };
            let pos = number(values.get(1)).unwrap_or(1);
            Key::Str(substring(&string(&values[0]), pos, number(values.get(2))).into())
        }
        Func::Concat => Key::Str(values.iter().map(string).collect::<String>().into()),
        Func::Abs => match &values[0] {
            Key::Int(i) => Key::Int(i.wrapping_abs()),
            Key::Float(f) => Key::Float(f.abs()),
            _ => Key::Null,
        },
        Func::Part(part) => match &values[0] {
            Key::Int(ms) => part.of(*ms).map_or(Key::Null, Key::Int),
            _ => Key::Null,
        },
        Func::DateFormat => match (&values[0], &values[1]) {
            (Key::Int(ms), Key::Str(format)) => chrono::DateTime::from_timestamp_millis(*ms)
                .map_or(Key::Null, |time| {
                    Key::Str(time.format(format).to_string().into())
                }),
            _ => Key::Null,
        },
        Func::Coalesce => Key::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_matches_as_sql() {
        let chars = |s: &str| s.chars().collect::<Vec<_>>();
        assert!(like(&chars("alice"), &chars("a%")));
        assert!(like(&chars("alice"), &chars("_li%e")));
        assert!(!like(&chars("alice"), &chars("b%")));
        assert!(like(&chars("50%"), &chars("50\\%")));
        assert!(!like(&chars("500"), &chars("50\\%")));
    }

    #[test]
    fn spark_date_patterns_become_chrono_formats() {
        assert_eq!(
            chrono_pattern("yyyy-MM-dd HH:mm:ss.SSS").ok().as_deref(),
            Some("%Y-%m-%d %H:%M:%S.%3f")
        );
        assert_eq!(
            chrono_pattern("yyyy'T'HH'h'").ok().as_deref(),
            Some("%YT%Hh")
        );
        assert!(chrono_pattern("EEE").is_err());
    }

    #[test]
    fn substring_counts_from_one_and_from_the_end() {
        assert_eq!(substring("tideflow", 1, Some(4)), "tide");
        assert_eq!(substring("tideflow", 0, Some(4)), "tide");
        assert_eq!(substring("tideflow", -4, None), "flow");
        assert_eq!(substring("tideflow", 5, Some(-1)), "");
    }

    #[test]
    fn casts_and_division_follow_spark_without_ansi_mode() {
        assert_eq!(cast(Key::Str("12".into()), SqlType::Int), Key::Int(12));
        assert_eq!(cast(Key::Str("x".into()), SqlType::Int), Key::Null);
        assert_eq!(cast(Key::Float(2.0), SqlType::Str), Key::Str("2.0".into()));
        assert_eq!(double_text(1e20), "1.0E20");
        assert_eq!(
            arithmetic(BinOp::Div, &Key::Int(1), &Key::Int(0)),
            Key::Null
        );
        assert_eq!(
            arithmetic(BinOp::Div, &Key::Int(3), &Key::Int(2)),
            Key::Float(1.5)
        );
    }
}

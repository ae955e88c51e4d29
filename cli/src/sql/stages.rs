//! A query's [`Stages`] around the aggregation of its [`Plan`](crate::run::Plan): the row
//! stage (WHERE, computed GROUP BY keys and aggregate arguments) and the group stage (HAVING
//! and the SELECT list, written as JSON lines named by the SELECT's aliases).

use std::io::Write as _;

use super::catalog::SqlType;
use super::expr::{cast, Expr, Value};
use crate::output::{Extra, RowView};
use crate::record::{parse_time, write_json_str, AggValue, Key, KeyKind, Num, Row};
use crate::run::stages::Stages;

/// How the group key comes back out of a result row's key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum KeyShape {
    /// No GROUP BY key.
    None,
    /// One column, decoded as `tideflow run` decodes --key-field.
    Field,
    /// One computed key.
    Single,
    /// Several keys, as a JSON array of them.
    Composite,
}

/// What the row stage computes from each decoded row.
pub(super) struct Before {
    /// The source columns the row's scalars hold, with their declared types.
    pub(super) reads: Vec<(String, SqlType)>,
    pub(super) filter: Option<Expr>,
    pub(super) keys: Vec<Expr>,
    /// The numeric aggregate inputs, in the order of the plan's value fields.
    pub(super) values: Vec<Expr>,
    /// The other aggregate inputs, in the order of the plan's scalar fields.
    pub(super) scalars: Vec<Expr>,
}

/// One column of the SELECT list.
pub(super) struct Output {
    /// `,"name":` (the first without the comma).
    pub(super) member: Vec<u8>,
    pub(super) expr: Expr,
    pub(super) ty: SqlType,
}

/// The SQL text of each stage, for `explain` and the job's fingerprint.
#[derive(Default)]
pub(super) struct Texts {
    pub(super) filter: Option<String>,
    pub(super) keys: Vec<String>,
    pub(super) inputs: Vec<String>,
    pub(super) having: Option<String>,
    pub(super) select: Vec<String>,
}

/// The stages of one query.
pub(super) struct SqlStages {
    pub(super) before: Option<Before>,
    pub(super) key: KeyShape,
    pub(super) key_types: Vec<SqlType>,
    pub(super) windowed: bool,
    /// Whether the query has no aggregation: its rows are written as the row stage makes
    /// them, their scalars the SELECT list.
    pub(super) stateless: bool,
    pub(super) having: Option<Expr>,
    pub(super) outputs: Vec<Output>,
    pub(super) texts: Texts,
}

/// A decoded value as a column of type `ty` reads it: a value that does not fit is null (as
/// Spark's readers without a corrupt-record column).
fn coerce(value: Key, ty: SqlType) -> Value {
    match (ty, value) {
        (_, Key::Null) => Key::Null,
        (SqlType::Int, Key::Int(i)) => Key::Int(i),
        (SqlType::Int, _) => Key::Null,
        (SqlType::Double, Key::Int(i)) => Key::Float(i as f64),
        (SqlType::Double, Key::Float(f)) => Key::Float(f),
        (SqlType::Double, _) => Key::Null,
        (SqlType::Bool, Key::Bool(b)) => Key::Bool(b),
        (SqlType::Bool, _) => Key::Null,
        (SqlType::Timestamp, Key::Int(ms)) => Key::Int(ms),
        (SqlType::Timestamp, Key::Str(text)) => {
            parse_time(&text).map_or(Key::Null, |ms| Key::Int(ms as i64))
        }
        (SqlType::Timestamp, _) => Key::Null,
        (SqlType::Str, value) => cast(value, SqlType::Str),
        (SqlType::Null, _) => Key::Null,
    }
}

fn key_kind(value: &Key) -> KeyKind {
    match value {
        Key::Str(_) => KeyKind::Text,
        Key::Float(_) => KeyKind::Float,
        _ => KeyKind::Native,
    }
}

fn num(value: Value) -> Option<Num> {
    match value {
        Key::Int(i) => Some(Num::Int(i)),
        Key::Float(f) => Some(Num::Float(f)),
        _ => None,
    }
}

/// An aggregate's value as SQL sees it.
fn agg_value(value: &AggValue) -> Value {
    match value {
        AggValue::Null => Key::Null,
        AggValue::Int(i) => i64::try_from(*i).map_or(Key::Float(*i as f64), Key::Int),
        AggValue::Float(f) => Key::Float(*f),
        AggValue::Scalar(key) => key.clone(),
    }
}

/// Writes `value` of type `ty` as JSON: a TIMESTAMP as RFC 3339 UTC text with milliseconds, a
/// DOUBLE with a fraction (`2.0`), NaN and the infinities as strings (as Spark writes them).
fn write_value(value: Value, ty: SqlType, out: &mut Vec<u8>) {
    let value = match ty {
        SqlType::Double | SqlType::Int | SqlType::Bool | SqlType::Str => cast(value, ty),
        _ => value,
    };
    match (ty, value) {
        (_, Key::Null) => out.extend_from_slice(b"null"),
        (SqlType::Timestamp, Key::Int(ms)) => match chrono::DateTime::from_timestamp_millis(ms) {
            Some(time) => {
                let _ = write!(out, "\"{}\"", time.format("%Y-%m-%dT%H:%M:%S%.3fZ"));
            }
            None => out.extend_from_slice(b"null"),
        },
        (_, Key::Bool(b)) => out.extend_from_slice(if b { b"true" } else { b"false" }),
        (_, Key::Int(i)) => out.extend_from_slice(itoa::Buffer::new().format(i).as_bytes()),
        (_, Key::Float(f)) if f.is_finite() => {
            out.extend_from_slice(ryu::Buffer::new().format_finite(f).as_bytes())
        }
        (_, Key::Float(f)) => write_json_str(&super::expr::double_text(f), out),
        (_, Key::Str(s)) => write_json_str(&s, out),
    }
}

impl SqlStages {
    /// The slots of a result row: its keys, its window bounds, its aggregates.
    fn group_slots(&self, row: &RowView<'_>) -> Vec<Value> {
        let mut slots = match self.key {
            KeyShape::None => Vec::new(),
            KeyShape::Field => vec![match (row.key_kind, row.key) {
                (KeyKind::Text, key) if *key != Key::Null => Key::Str(key.text().into()),
                (KeyKind::Float, Key::Int(i)) => Key::Float(*i as f64),
                (_, key) => key.clone(),
            }],
            KeyShape::Single => vec![row.key.clone()],
            KeyShape::Composite => match row.key {
                Key::Str(text) => serde_json::from_str(text).unwrap_or_default(),
                _ => Vec::new(),
            },
        };
        slots.resize(self.key_types.len(), Key::Null);
        if self.windowed {
            let (start, end) = row.window.unwrap_or((0, 0));
            slots.push(Key::Int(start as i64));
            slots.push(Key::Int(end as i64));
        }
        slots.extend(row.values.iter().map(agg_value));
        slots
    }
}

impl Stages for SqlStages {
    fn rewrites_rows(&self) -> bool {
        self.before.is_some()
    }

    fn before(&self, row: Row) -> Option<Row> {
        let Some(before) = &self.before else {
            return Some(row);
        };
        let slots: Vec<Value> = (row.scalars.into_iter().zip(&before.reads))
            .map(|(value, (_, ty))| coerce(value, *ty))
            .collect();
        if let Some(filter) = &before.filter {
            if filter.eval(&slots) != Key::Bool(true) {
                return None;
            }
        }
        let (key, key_kind) = match before.keys.as_slice() {
            [] => (Key::Null, KeyKind::Native),
            [one] => {
                let key = one.eval(&slots);
                (key.clone(), key_kind(&key))
            }
            keys => {
                let values: Vec<Value> = keys.iter().map(|k| k.eval(&slots)).collect();
                let text = serde_json::to_string(&values).unwrap_or_default();
                (Key::Str(text.into()), KeyKind::Text)
            }
        };
        Some(Row {
            key,
            key_kind,
            time: row.time,
            values: before.values.iter().map(|e| num(e.eval(&slots))).collect(),
            scalars: before.scalars.iter().map(|e| e.eval(&slots)).collect(),
            original: row.original,
        })
    }

    fn stateless(&self) -> bool {
        self.stateless
    }

    fn write_row(&self, row: &Row, out: &mut Vec<u8>) {
        out.push(b'{');
        for (output, value) in self.outputs.iter().zip(&row.scalars) {
            out.extend_from_slice(&output.member);
            write_value(value.clone(), output.ty, out);
        }
        out.extend_from_slice(b"}\n");
    }

    fn key(&self) -> Option<String> {
        match (self.key, &self.texts.keys) {
            (KeyShape::Single | KeyShape::Composite, keys) => Some(keys.join(", ")),
            _ => None,
        }
    }

    fn keep(&self, row: RowView<'_>) -> bool {
        match &self.having {
            None => true,
            Some(having) => having.eval(&self.group_slots(&row)) == Key::Bool(true),
        }
    }

    fn write(&self, row: RowView<'_>, extra: Extra, out: &mut Vec<u8>) {
        let slots = self.group_slots(&row);
        out.push(b'{');
        if let Some(batch) = extra.batch {
            let _ = write!(out, "\"batch\":{batch},");
        }
        for output in &self.outputs {
            out.extend_from_slice(&output.member);
            write_value(output.expr.eval(&slots), output.ty, out);
        }
        if let Some(is_final) = extra.is_final {
            let _ = write!(out, ",\"final\":{is_final}");
        }
        if extra.retract == Some(true) {
            out.extend_from_slice(b",\"retract\":true");
        }
        out.extend_from_slice(b"}\n");
    }

    fn explain_before(&self) -> Vec<(&'static str, String)> {
        let mut lines = Vec::new();
        let Some(before) = &self.before else {
            return lines;
        };
        let reads: Vec<String> = (before.reads.iter())
            .map(|(name, ty)| format!("{name} {}", ty.name()))
            .collect();
        if self.stateless {
            if let Some(filter) = &self.texts.filter {
                lines.push((
                    "filter",
                    format!("WHERE {filter} (rows where it is not true are dropped)"),
                ));
            }
            lines.push((
                "project",
                format!(
                    "SELECT {} per row, as it is read (no state); reads {}",
                    self.texts.select.join(", "),
                    reads.join(", ")
                ),
            ));
            return lines;
        }
        if let Some(filter) = &self.texts.filter {
            lines.push((
                "filter",
                format!(
                    "WHERE {filter} (rows where it is not true are dropped); reads {}",
                    reads.join(", ")
                ),
            ));
        }
        let keys = match self.texts.keys.as_slice() {
            [] => "none (one group)".to_string(),
            keys => keys.join(", "),
        };
        lines.push((
            "map",
            format!(
                "per record: group key ({keys}); aggregate inputs [{}]",
                self.texts.inputs.join(", ")
            ),
        ));
        lines
    }

    fn explain_after(&self) -> Vec<(&'static str, String)> {
        let mut lines = Vec::new();
        if let Some(having) = &self.texts.having {
            lines.push((
                "filter",
                format!("HAVING {having} (result rows where it is not true are not written)"),
            ));
        }
        lines.push((
            "project",
            format!("SELECT {} as JSON lines", self.texts.select.join(", ")),
        ));
        lines
    }

    fn fingerprint(&self) -> String {
        let texts = &self.texts;
        format!(
            "WHERE {} GROUP BY {} INPUTS {} HAVING {} SELECT {}",
            texts.filter.as_deref().unwrap_or("-"),
            texts.keys.join(", "),
            texts.inputs.join(", "),
            texts.having.as_deref().unwrap_or("-"),
            texts.select.join(", ")
        )
    }
}

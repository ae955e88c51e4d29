//! The command line's aggregates over [`Row`]s: `count`, `sum:F`, `avg:F`, `min:F`, `max:F`,
//! several at once, with SQL null semantics (nulls are skipped; an aggregate over nulls only is
//! null; `count` counts rows).

use std::cmp::Ordering;
use std::io::Write;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use tideflow_operators::Aggregator;

use super::value::write_json_f64;
use super::{Num, Row};
use crate::error::Error;

/// An aggregate function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AggKind {
    /// Number of rows.
    Count,
    /// Sum of a field: an integer while every value is one, else a float.
    Sum,
    /// Mean of a field, a float.
    Avg,
    /// Smallest value of a field.
    Min,
    /// Largest value of a field.
    Max,
}

/// One `--agg` flag: a function and the field it reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AggSpec {
    /// The function.
    pub kind: AggKind,
    /// The field (`None` for `count`).
    pub field: Option<String>,
}

impl AggSpec {
    /// The output column: `count`, `sum_F`, `avg_F`, `min_F`, `max_F`.
    pub fn column(&self) -> String {
        let prefix = match self.kind {
            AggKind::Count => return "count".to_string(),
            AggKind::Sum => "sum",
            AggKind::Avg => "avg",
            AggKind::Min => "min",
            AggKind::Max => "max",
        };
        format!("{prefix}_{}", self.field.as_deref().unwrap_or_default())
    }
}

impl FromStr for AggSpec {
    type Err = Error;

    /// Parses `count`, `sum:F`, `avg:F`, `min:F` or `max:F`.
    fn from_str(text: &str) -> Result<Self, Error> {
        let usage = "expected count, sum:FIELD, avg:FIELD, min:FIELD or max:FIELD";
        let (name, field) = match text.split_once(':') {
            Some((name, field)) => (name, Some(field)),
            None => (text, None),
        };
        let kind = match name {
            "count" => AggKind::Count,
            "sum" => AggKind::Sum,
            "avg" => AggKind::Avg,
            "min" => AggKind::Min,
            "max" => AggKind::Max,
            _ => {
                return Err(Error::Config(format!(
                    "invalid aggregate '{text}': {usage}"
                )))
            }
        };
        match (kind, field) {
            (AggKind::Count, None) => Ok(AggSpec { kind, field: None }),
            (AggKind::Count, Some(_)) => Err(Error::Config(format!(
                "invalid aggregate '{text}': count takes no field"
            ))),
            (_, Some(field)) if !field.is_empty() => Ok(AggSpec {
                kind,
                field: Some(field.to_string()),
            }),
            _ => Err(Error::Config(format!(
                "invalid aggregate '{text}': {name} needs a field, like {name}:amount"
            ))),
        }
    }
}

/// The value of one aggregate for one window.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub enum AggValue {
    /// No non-null input.
    Null,
    /// An integer (sums of integers may exceed 64 bits).
    Int(i128),
    /// A float.
    Float(f64),
}

impl AggValue {
    /// Writes the value as JSON.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        match self {
            AggValue::Null => out.extend_from_slice(b"null"),
            AggValue::Int(i) => {
                let _ = write!(out, "{i}");
            }
            AggValue::Float(f) => write_json_f64(*f, out),
        }
    }

    /// The value as CSV text (empty for null).
    pub fn csv_text(&self) -> String {
        match self {
            AggValue::Null => String::new(),
            AggValue::Int(i) => i.to_string(),
            AggValue::Float(f) => f.to_string(),
        }
    }

    fn rank(&self) -> u8 {
        match self {
            AggValue::Null => 0,
            AggValue::Int(_) => 1,
            AggValue::Float(_) => 2,
        }
    }
}

impl From<Num> for AggValue {
    fn from(num: Num) -> Self {
        match num {
            Num::Int(i) => AggValue::Int(i.into()),
            Num::Float(f) => AggValue::Float(f),
        }
    }
}

// A total order, so result rows can be sorted for deterministic output.
impl Ord for AggValue {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (AggValue::Int(a), AggValue::Int(b)) => a.cmp(b),
            (AggValue::Float(a), AggValue::Float(b)) => a.total_cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

impl PartialOrd for AggValue {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for AggValue {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for AggValue {}

/// Accumulator of one aggregate.
#[derive(Clone, Debug)]
pub enum AccSlot {
    /// Rows counted.
    Count(u64),
    /// Integer part, float part, whether any float was seen, whether any value was seen.
    Sum {
        int: i128,
        float: f64,
        any_float: bool,
        seen: bool,
    },
    /// Sum and count of non-null values.
    Avg { sum: f64, count: u64 },
    /// The extreme so far.
    Extreme(Option<Num>),
}

/// Runs a list of [`AggSpec`]s over rows at once.
#[derive(Clone, Debug)]
pub struct RowAggregator {
    /// Per aggregate: its function and the index of its field in [`Row::values`].
    slots: Vec<(AggKind, usize)>,
}

impl RowAggregator {
    /// Aggregates reading `Row::values` laid out as `value_fields`.
    pub fn new(specs: &[AggSpec], value_fields: &[String]) -> Self {
        let slots = specs
            .iter()
            .map(|spec| {
                let index = spec
                    .field
                    .as_ref()
                    .and_then(|f| value_fields.iter().position(|v| v == f))
                    .unwrap_or(0);
                (spec.kind, index)
            })
            .collect();
        RowAggregator { slots }
    }
}

fn keep(acc: &mut Option<Num>, value: Num, wanted: Ordering) {
    match acc {
        None => *acc = Some(value),
        Some(current) => {
            if value.compare(*current) == Some(wanted) {
                *current = value;
            }
        }
    }
}

impl Aggregator<Row> for RowAggregator {
    type Acc = Vec<AccSlot>;
    type Output = Vec<AggValue>;

    fn init(&self) -> Vec<AccSlot> {
        self.slots
            .iter()
            .map(|(kind, _)| match kind {
                AggKind::Count => AccSlot::Count(0),
                AggKind::Sum => AccSlot::Sum {
                    int: 0,
                    float: 0.0,
                    any_float: false,
                    seen: false,
                },
                AggKind::Avg => AccSlot::Avg { sum: 0.0, count: 0 },
                AggKind::Min | AggKind::Max => AccSlot::Extreme(None),
            })
            .collect()
    }

    fn add(&self, acc: &mut Vec<AccSlot>, row: &Row) {
        for ((kind, index), slot) in self.slots.iter().zip(acc.iter_mut()) {
            if let AccSlot::Count(n) = slot {
                *n += 1;
                continue;
            }
            let Some(value) = row.values.get(*index).copied().flatten() else {
                continue;
            };
            match slot {
                AccSlot::Sum {
                    int,
                    float,
                    any_float,
                    seen,
                } => {
                    *seen = true;
                    match value {
                        Num::Int(i) => *int += i128::from(i),
                        Num::Float(f) => {
                            *float += f;
                            *any_float = true;
                        }
                    }
                }
                AccSlot::Avg { sum, count } => {
                    *sum += value.as_f64();
                    *count += 1;
                }
                AccSlot::Extreme(extreme) => {
                    let wanted = if *kind == AggKind::Min {
                        Ordering::Less
                    } else {
                        Ordering::Greater
                    };
                    keep(extreme, value, wanted);
                }
                AccSlot::Count(_) => {}
            }
        }
    }

    fn merge(&self, acc: &mut Vec<AccSlot>, other: Vec<AccSlot>) {
        for ((kind, _), (slot, other)) in self.slots.iter().zip(acc.iter_mut().zip(other)) {
            match (slot, other) {
                (AccSlot::Count(a), AccSlot::Count(b)) => *a += b,
                (
                    AccSlot::Sum {
                        int,
                        float,
                        any_float,
                        seen,
                    },
                    AccSlot::Sum {
                        int: i2,
                        float: f2,
                        any_float: a2,
                        seen: s2,
                    },
                ) => {
                    *int += i2;
                    *float += f2;
                    *any_float |= a2;
                    *seen |= s2;
                }
                (AccSlot::Avg { sum, count }, AccSlot::Avg { sum: s2, count: c2 }) => {
                    *sum += s2;
                    *count += c2;
                }
                (AccSlot::Extreme(extreme), AccSlot::Extreme(Some(value))) => {
                    let wanted = if *kind == AggKind::Min {
                        Ordering::Less
                    } else {
                        Ordering::Greater
                    };
                    keep(extreme, value, wanted);
                }
                _ => {}
            }
        }
    }

    fn finish(&self, acc: &Vec<AccSlot>) -> Vec<AggValue> {
        acc.iter()
            .map(|slot| match *slot {
                AccSlot::Count(n) => AggValue::Int(n.into()),
                AccSlot::Sum { seen: false, .. } => AggValue::Null,
                AccSlot::Sum {
                    int,
                    float,
                    any_float: false,
                    ..
                } => {
                    debug_assert_eq!(float, 0.0);
                    AggValue::Int(int)
                }
                AccSlot::Sum { int, float, .. } => AggValue::Float(int as f64 + float),
                AccSlot::Avg { count: 0, .. } => AggValue::Null,
                AccSlot::Avg { sum, count } => AggValue::Float(sum / count as f64),
                AccSlot::Extreme(value) => value.map_or(AggValue::Null, AggValue::from),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Key;

    fn row(values: Vec<Option<Num>>) -> Row {
        Row {
            key: Key::Null,
            time: 0,
            values,
        }
    }

    #[test]
    fn sql_null_semantics_and_integer_sums() {
        let specs: Vec<AggSpec> = ["count", "sum:a", "avg:a", "min:a", "max:b", "sum:b"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let fields = vec!["a".to_string(), "b".to_string()];
        let agg = RowAggregator::new(&specs, &fields);
        let mut acc = agg.init();
        agg.add(&mut acc, &row(vec![Some(Num::Int(i64::MAX)), None]));
        let mut other = agg.init();
        agg.add(&mut other, &row(vec![Some(Num::Int(3)), None]));
        agg.merge(&mut acc, other);
        let out = agg.finish(&acc);
        let max = i128::from(i64::MAX);
        assert_eq!(
            out,
            vec![
                AggValue::Int(2),
                AggValue::Int(max + 3),
                AggValue::Float((i64::MAX as f64 + 3.0) / 2.0),
                AggValue::Int(3),
                AggValue::Null,
                AggValue::Null,
            ]
        );
        assert_eq!(
            specs.iter().map(AggSpec::column).collect::<Vec<_>>(),
            ["count", "sum_a", "avg_a", "min_a", "max_b", "sum_b"]
        );
    }

    #[test]
    fn bad_specs_are_rejected_with_the_spec() {
        for bad in ["total", "sum", "sum:", "count:x", "median:x"] {
            let err = bad.parse::<AggSpec>().unwrap_err().to_string();
            assert!(err.contains(bad), "{err}");
        }
    }
}

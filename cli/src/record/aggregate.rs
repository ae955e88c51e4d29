//! The command line's aggregates over [`Row`]s: `count`, `sum:F`, `avg:F`, `min:F`, `max:F`,
//! `first:F`, `last:F` and `count_distinct:F`, several at once, with SQL null semantics (nulls
//! are skipped; an aggregate over nulls only is null; `count` counts rows).
//!
//! `sum`, `avg`, `min` and `max` read numbers. `first`, `last` and `count_distinct` read any
//! scalar (strings too): `first` is the value of the record with the earliest event time (ties:
//! the smaller value), `last` of the latest (ties: the larger), `count_distinct` counts distinct
//! non-null values exactly. When every aggregate is `count`, `sum` or `avg`, the aggregator is
//! invertible, so sliding windows update in O(1) per slide.

use std::cmp::Ordering;
use std::str::FromStr;

use rustc_hash::FxHashSet;
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;
use tideflow::aggregate::{Aggregator, ExactSum};

use super::value::{csv_f64, write_int, write_json_f64};
use super::{Key, KeyKind, Num, Row};
use tideflow::Error;

/// An aggregate function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AggKind {
    /// Number of rows.
    Count,
    /// Sum of a numeric field: an integer while every value is one, else a float.
    Sum,
    /// Mean of a numeric field, a float.
    Avg,
    /// Smallest value of a numeric field.
    Min,
    /// Largest value of a numeric field.
    Max,
    /// The value of the record with the earliest event time.
    First,
    /// The value of the record with the latest event time.
    Last,
    /// The number of distinct non-null values.
    CountDistinct,
}

impl AggKind {
    /// The name used in `--agg` and as the column prefix.
    pub(crate) fn name(self) -> &'static str {
        match self {
            AggKind::Count => "count",
            AggKind::Sum => "sum",
            AggKind::Avg => "avg",
            AggKind::Min => "min",
            AggKind::Max => "max",
            AggKind::First => "first",
            AggKind::Last => "last",
            AggKind::CountDistinct => "count_distinct",
        }
    }

    /// Whether the aggregate reads its field as any scalar (else as a number).
    pub fn reads_scalars(self) -> bool {
        matches!(
            self,
            AggKind::First | AggKind::Last | AggKind::CountDistinct
        )
    }

    /// Whether its accumulator can retract what it added, so that sliding windows retract
    /// what leaves them instead of merging their contributions.
    pub fn invertible(self) -> bool {
        matches!(self, AggKind::Count | AggKind::Sum | AggKind::Avg)
    }

    /// What its accumulator ([`AccSlot`]) holds when that is more than one value: ` (sum and
    /// count)`, ` (value and event time)`, ` (every distinct value)`, else empty.
    fn holds(self) -> &'static str {
        match self {
            AggKind::Avg => " (sum and count)",
            AggKind::First | AggKind::Last => " (value and event time)",
            AggKind::CountDistinct => " (every distinct value)",
            AggKind::Count | AggKind::Sum | AggKind::Min | AggKind::Max => "",
        }
    }
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
    /// The output column: `count`, or the function and field, like `sum_F`, `count_distinct_F`.
    pub fn column(&self) -> String {
        match &self.field {
            None => self.kind.name().to_string(),
            Some(field) => format!("{}_{field}", self.kind.name()),
        }
    }

    /// Its accumulator as `tideflow explain` shows it: `count`, or the function and field
    /// with what the accumulator holds, like `avg(amount) (sum and count)`.
    pub fn accumulator(&self) -> String {
        match &self.field {
            None => self.kind.name().to_string(),
            Some(field) => format!("{}({field}){}", self.kind.name(), self.kind.holds()),
        }
    }
}

impl FromStr for AggSpec {
    type Err = Error;

    /// Parses `count`, or `sum`, `avg`, `min`, `max`, `first`, `last` or `count_distinct`
    /// followed by `:FIELD`.
    fn from_str(text: &str) -> Result<Self, Error> {
        let usage =
            "expected count, or sum, avg, min, max, first, last or count_distinct with :FIELD";
        let (name, field) = match text.split_once(':') {
            Some((name, field)) => (name, Some(field)),
            None => (text, None),
        };
        let kinds = [
            AggKind::Count,
            AggKind::Sum,
            AggKind::Avg,
            AggKind::Min,
            AggKind::Max,
            AggKind::First,
            AggKind::Last,
            AggKind::CountDistinct,
        ];
        let Some(kind) = kinds.into_iter().find(|kind| kind.name() == name) else {
            return Err(Error::Config(format!(
                "invalid aggregate '{text}': {usage}"
            )));
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
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum AggValue {
    /// No non-null input.
    Null,
    /// An integer (sums of integers may exceed 64 bits).
    Int(i128),
    /// A float.
    Float(f64),
    /// A value as read (`first`, `last`).
    Scalar(Key),
}

impl AggValue {
    /// Writes the value as JSON.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        match self {
            AggValue::Null => out.extend_from_slice(b"null"),
            AggValue::Int(i) => write_int(*i, out),
            AggValue::Float(f) => write_json_f64(*f, out),
            AggValue::Scalar(key) => key.write_json(out),
        }
    }

    /// The value as CSV text (empty for null).
    pub fn csv_text(&self) -> String {
        match self {
            AggValue::Null => String::new(),
            AggValue::Int(i) => i.to_string(),
            AggValue::Float(f) => csv_f64(*f),
            AggValue::Scalar(key) => key.csv_text(),
        }
    }

    fn rank(&self) -> u8 {
        match self {
            AggValue::Null => 0,
            AggValue::Int(_) => 1,
            AggValue::Float(_) => 2,
            AggValue::Scalar(_) => 3,
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
            (AggValue::Scalar(a), AggValue::Scalar(b)) => a.cmp(b),
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

/// Accumulator of one aggregate: 32 bytes (what is rarely needed is boxed), so that the
/// accumulators of one or two aggregates sit inline in a [`RowAcc`].
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub enum AccSlot {
    /// Rows counted.
    Count(u64),
    /// A sum (`sum`, and `avg`, which divides it by its count).
    Sum(SumAcc),
    /// The extreme so far (`min`, `max`).
    Extreme(Option<Num>),
    /// The value with its event time (`first`, `last`).
    Timed(Option<Box<(u64, Key)>>),
    /// The distinct values seen.
    Distinct(Box<FxHashSet<Key>>),
}

/// A sum kept exactly: integers in an `i64` while their sum fits, and beyond that, with floats
/// (in an [`ExactSum`]), in a [`WideSum`] allocated when first needed; with how many values
/// went in. Values add, merge and retract without rounding, in any order, so the result is
/// the same bits for any `--workers` and arrival order; it is rounded once, when read. A sum
/// of integers stays an integer. Without floats or an `i64` overflow it is 24 bytes and
/// allocates nothing.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct SumAcc {
    /// Integers, while their sum fits; the rest of the sum is in `wide`.
    int: i64,
    values: u64,
    wide: Option<Box<WideSum>>,
}

/// The part of a [`SumAcc`] that plain integer sums never need.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
struct WideSum {
    /// Integers that did not fit beside `SumAcc::int`.
    int: i128,
    float: ExactSum,
    floats: u64,
}

impl SumAcc {
    fn wide(&mut self) -> &mut WideSum {
        self.wide.get_or_insert_with(Box::default)
    }

    /// Adds the integer `value` (`sign` 1) or removes it (`sign` -1).
    fn add_int(&mut self, value: i64, sign: i64) {
        let sum = match sign {
            1 => self.int.checked_add(value),
            _ => self.int.checked_sub(value),
        };
        match sum {
            Some(sum) => self.int = sum,
            None => self.wide().int += i128::from(sign) * i128::from(value),
        }
    }

    fn add(&mut self, value: Num) {
        self.values += 1;
        match value {
            Num::Int(i) => self.add_int(i, 1),
            Num::Float(f) => {
                let wide = self.wide();
                wide.float.add(f);
                wide.floats += 1;
            }
        }
    }

    fn merge(&mut self, other: &SumAcc) {
        self.add_int(other.int, 1);
        self.values += other.values;
        if let Some(other) = &other.wide {
            let wide = self.wide();
            wide.int += other.int;
            wide.float.merge(&other.float);
            wide.floats += other.floats;
        }
    }

    fn retract(&mut self, other: &SumAcc) {
        self.add_int(other.int, -1);
        self.values -= other.values;
        if let Some(other) = &other.wide {
            let wide = self.wide();
            wide.int -= other.int;
            wide.float.retract(&other.float);
            wide.floats -= other.floats;
        }
    }

    /// The integers' sum.
    fn int(&self) -> i128 {
        i128::from(self.int) + self.wide.as_ref().map_or(0, |wide| wide.int)
    }

    /// The floats added.
    fn floats(&self) -> u64 {
        self.wide.as_ref().map_or(0, |wide| wide.floats)
    }

    /// The exact sum of integers and floats.
    fn exact(&self) -> ExactSum {
        let mut sum = match &self.wide {
            Some(wide) => wide.float.clone(),
            None => ExactSum::default(),
        };
        sum.add_integer(self.int());
        sum
    }

    /// The sum: null without values, an integer while every value was one.
    fn total(&self) -> AggValue {
        match (self.values, self.floats()) {
            (0, _) => AggValue::Null,
            (_, 0) => AggValue::Int(self.int()),
            _ => AggValue::Float(self.exact().to_f64()),
        }
    }

    /// The mean, rounded once: null without values.
    fn mean(&self) -> AggValue {
        match self.values {
            0 => AggValue::Null,
            n => AggValue::Float(self.exact().mean(n)),
        }
    }
}

/// The accumulators of one key group: one per aggregate (inline for up to two), and how many
/// records wrote the key each [`KeyKind`] way (counts, so that sliding windows can retract
/// them). 96 bytes with up to two aggregates of 32 bytes ([`AccSlot`]).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct RowAcc {
    slots: SmallVec<[AccSlot; 2]>,
    key_kinds: [u64; 3],
}

/// One key group's results: the widest way its records wrote the key (the output writes the
/// key that way) and one value per aggregate.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Aggregates {
    /// How the output writes the key.
    pub key_kind: KeyKind,
    /// One value per `--agg`, in order.
    pub values: Vec<AggValue>,
}

/// Runs a list of [`AggSpec`]s over rows at once.
#[derive(Clone, Debug)]
pub struct RowAggregator {
    /// Per aggregate: its function and the index of its field in [`Row::values`] (numeric
    /// functions) or [`Row::scalars`] (the others).
    slots: Vec<(AggKind, usize)>,
}

impl RowAggregator {
    /// Aggregates reading `Row::values` laid out as `value_fields` and `Row::scalars` laid out
    /// as `scalar_fields`.
    pub fn new(specs: &[AggSpec], value_fields: &[String], scalar_fields: &[String]) -> Self {
        let slots = specs
            .iter()
            .map(|spec| {
                let fields = if spec.kind.reads_scalars() {
                    scalar_fields
                } else {
                    value_fields
                };
                let index = spec
                    .field
                    .as_ref()
                    .and_then(|f| fields.iter().position(|v| v == f))
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
            if value.compare(*current) == wanted {
                *current = value;
            }
        }
    }
}

/// Keeps `(time, value)` in `acc` when it comes before (`first`) or after (`last`) the current.
fn keep_timed(acc: &mut Option<Box<(u64, Key)>>, candidate: (u64, Key), first: bool) {
    let replace = match acc {
        None => true,
        Some(current) => {
            let order = candidate
                .0
                .cmp(&current.0)
                .then_with(|| candidate.1.cmp(&current.1));
            order
                == if first {
                    Ordering::Less
                } else {
                    Ordering::Greater
                }
        }
    };
    if replace {
        match acc {
            Some(current) => **current = candidate,
            None => *acc = Some(Box::new(candidate)),
        }
    }
}

impl Aggregator<Row> for RowAggregator {
    type Acc = RowAcc;
    type Output = Aggregates;

    fn init(&self) -> RowAcc {
        let slots = self
            .slots
            .iter()
            .map(|(kind, _)| match kind {
                AggKind::Count => AccSlot::Count(0),
                AggKind::Sum | AggKind::Avg => AccSlot::Sum(SumAcc::default()),
                AggKind::Min | AggKind::Max => AccSlot::Extreme(None),
                AggKind::First | AggKind::Last => AccSlot::Timed(None),
                AggKind::CountDistinct => AccSlot::Distinct(Box::default()),
            })
            .collect();
        RowAcc {
            slots,
            key_kinds: [0; 3],
        }
    }

    fn add(&self, acc: &mut RowAcc, row: &Row) {
        acc.key_kinds[row.key_kind as usize] += 1;
        for ((kind, index), slot) in self.slots.iter().zip(acc.slots.iter_mut()) {
            match slot {
                AccSlot::Count(n) => *n += 1,
                AccSlot::Timed(timed) => {
                    if let Some(value) = row.scalars.get(*index).filter(|v| **v != Key::Null) {
                        keep_timed(timed, (row.time, value.clone()), *kind == AggKind::First);
                    }
                }
                AccSlot::Distinct(seen) => {
                    if let Some(value) = row.scalars.get(*index).filter(|v| **v != Key::Null) {
                        if !seen.contains(value) {
                            seen.insert(value.clone());
                        }
                    }
                }
                AccSlot::Sum(sum) => {
                    if let Some(value) = row.values.get(*index).copied().flatten() {
                        sum.add(value);
                    }
                }
                AccSlot::Extreme(extreme) => {
                    let Some(value) = row.values.get(*index).copied().flatten() else {
                        continue;
                    };
                    let wanted = if *kind == AggKind::Min {
                        Ordering::Less
                    } else {
                        Ordering::Greater
                    };
                    keep(extreme, value, wanted);
                }
            }
        }
    }

    fn merge(&self, acc: &mut RowAcc, other: RowAcc) {
        for (count, other) in acc.key_kinds.iter_mut().zip(other.key_kinds) {
            *count += other;
        }
        for ((kind, _), (slot, other)) in
            self.slots.iter().zip(acc.slots.iter_mut().zip(other.slots))
        {
            match (slot, other) {
                (AccSlot::Count(a), AccSlot::Count(b)) => *a += b,
                (AccSlot::Sum(sum), AccSlot::Sum(other)) => sum.merge(&other),
                (AccSlot::Extreme(extreme), AccSlot::Extreme(Some(value))) => {
                    let wanted = if *kind == AggKind::Min {
                        Ordering::Less
                    } else {
                        Ordering::Greater
                    };
                    keep(extreme, value, wanted);
                }
                (AccSlot::Timed(timed), AccSlot::Timed(Some(candidate))) => {
                    keep_timed(timed, *candidate, *kind == AggKind::First);
                }
                (AccSlot::Distinct(seen), AccSlot::Distinct(other)) => seen.extend(*other),
                _ => {}
            }
        }
    }

    fn finish(&self, acc: &RowAcc) -> Aggregates {
        let key_kind = KeyKind::ALL
            .into_iter()
            .rev()
            .find(|kind| acc.key_kinds[*kind as usize] > 0)
            .unwrap_or_default();
        let values = self
            .slots
            .iter()
            .zip(&acc.slots)
            .map(|((kind, _), slot)| match slot {
                AccSlot::Count(n) => AggValue::Int((*n).into()),
                AccSlot::Sum(sum) if *kind == AggKind::Avg => sum.mean(),
                AccSlot::Sum(sum) => sum.total(),
                AccSlot::Extreme(value) => value.map_or(AggValue::Null, AggValue::from),
                AccSlot::Timed(timed) => timed
                    .as_ref()
                    .map_or(AggValue::Null, |timed| AggValue::Scalar(timed.1.clone())),
                AccSlot::Distinct(seen) => AggValue::Int(seen.len() as i128),
            })
            .collect();
        Aggregates { key_kind, values }
    }

    fn invertible(&self) -> bool {
        self.slots.iter().all(|(kind, _)| kind.invertible())
    }

    fn retract(&self, acc: &mut RowAcc, other: &RowAcc) {
        for (count, other) in acc.key_kinds.iter_mut().zip(other.key_kinds) {
            *count -= other;
        }
        for (slot, other) in acc.slots.iter_mut().zip(&other.slots) {
            match (slot, other) {
                (AccSlot::Count(a), AccSlot::Count(b)) => *a -= b,
                (AccSlot::Sum(sum), AccSlot::Sum(other)) => sum.retract(other),
                _ => panic!("RowAggregator::retract on an aggregate that is not invertible"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(time: u64, values: Vec<Option<Num>>, scalars: Vec<Key>) -> Row {
        Row {
            key: Key::Null,
            key_kind: KeyKind::Native,
            time,
            values,
            scalars,
            original: None,
        }
    }

    fn specs(texts: &[&str]) -> Vec<AggSpec> {
        texts.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn sql_null_semantics_and_integer_sums() {
        let specs = specs(&["count", "sum:a", "avg:a", "min:a", "max:b", "sum:b"]);
        let fields = vec!["a".to_string(), "b".to_string()];
        let agg = RowAggregator::new(&specs, &fields, &[]);
        let mut acc = agg.init();
        agg.add(
            &mut acc,
            &row(0, vec![Some(Num::Int(i64::MAX)), None], vec![]),
        );
        let mut other = agg.init();
        agg.add(&mut other, &row(0, vec![Some(Num::Int(3)), None], vec![]));
        agg.merge(&mut acc, other);
        let out = agg.finish(&acc).values;
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
        assert!(!agg.invertible());
    }

    #[test]
    fn first_last_and_count_distinct_read_any_scalar() {
        let specs = specs(&["first:u", "last:u", "count_distinct:u"]);
        let agg = RowAggregator::new(&specs, &[], &["u".to_string()]);
        let mut acc = agg.init();
        for (time, user) in [(20, "bo"), (10, "al"), (30, "al"), (10, "ab")] {
            agg.add(&mut acc, &row(time, vec![], vec![Key::Str(user.into())]));
        }
        agg.add(&mut acc, &row(5, vec![], vec![Key::Null]));
        let out = agg.finish(&acc).values;
        assert_eq!(
            out,
            vec![
                AggValue::Scalar(Key::Str("ab".into())),
                AggValue::Scalar(Key::Str("al".into())),
                AggValue::Int(3)
            ]
        );
        assert_eq!(specs[2].column(), "count_distinct_u");
    }

    #[test]
    fn count_sum_avg_retract_exactly() {
        let specs = specs(&["count", "sum:a", "avg:a"]);
        let agg = RowAggregator::new(&specs, &["a".to_string()], &[]);
        assert!(agg.invertible());
        let (mut total, mut part) = (agg.init(), agg.init());
        agg.add(&mut total, &row(0, vec![Some(Num::Int(4))], vec![]));
        agg.add(&mut part, &row(0, vec![Some(Num::Float(0.1))], vec![]));
        agg.add(&mut part, &row(0, vec![None], vec![]));
        agg.merge(&mut total, part.clone());
        agg.retract(&mut total, &part);
        assert_eq!(
            agg.finish(&total).values,
            vec![AggValue::Int(1), AggValue::Int(4), AggValue::Float(4.0)]
        );
    }

    #[test]
    fn accumulators_are_small_and_integer_sums_past_i64_stay_exact() {
        assert_eq!(std::mem::size_of::<AccSlot>(), 32);
        assert_eq!(std::mem::size_of::<RowAcc>(), 96);
        let agg = RowAggregator::new(&specs(&["sum:a"]), &["a".to_string()], &[]);
        let int = |v: i64| row(0, vec![Some(Num::Int(v))], vec![]);
        let (mut total, mut part) = (agg.init(), agg.init());
        for v in [i64::MAX, i64::MAX, -5] {
            agg.add(&mut total, &int(v));
        }
        agg.add(&mut part, &int(i64::MAX));
        agg.merge(&mut total, part.clone());
        let max = i128::from(i64::MAX);
        assert_eq!(agg.finish(&total).values, vec![AggValue::Int(3 * max - 5)]);
        agg.retract(&mut total, &part);
        agg.retract(&mut total, &part);
        assert_eq!(agg.finish(&total).values, vec![AggValue::Int(max - 5)]);
        agg.add(&mut total, &int(i64::MIN));
        agg.add(&mut total, &int(i64::MIN));
        assert_eq!(agg.finish(&total).values, vec![AggValue::Int(-max - 7)]);
    }

    #[test]
    fn bad_specs_are_rejected_with_the_spec() {
        for bad in ["total", "sum", "sum:", "count:x", "median:x", "first"] {
            let err = bad.parse::<AggSpec>().unwrap_err().to_string();
            assert!(err.contains(bad), "{err}");
        }
    }
}

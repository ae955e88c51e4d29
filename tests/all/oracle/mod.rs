//! Randomised tests of the engine against a from-scratch batch oracle.
//!
//! A seeded generator (splitmix64) makes event streams with bounded disorder and occasional
//! pauses; a plain batch computation, written here without any engine code, derives every
//! record's stamp from the partition rule, decides lateness, assigns windows, merges sessions and
//! aggregates. The engine must produce the same rows (as a multiset) and the same late count on
//! 1, 2 and 4 workers.
//!
//! The rules the oracle follows (DESIGN.md "Time" and "Windows and aggregation"):
//! - record `i` belongs to partition `i % P`; its stamp is `max(t, max_seen_before - delay)` over
//!   the earlier records of its partition (just `t` for the first one);
//! - tumbling windows `[k*size, (k+1)*size)`, sliding windows `[k*slide, k*slide + size)` with
//!   `k >= 0`; a record is late for a window iff `stamp >= end`, is added to every window it is
//!   not late for, and is counted late iff it is late for all of them;
//! - sessions `[first, last + gap)` per key, merging when they touch; a record is late iff
//!   `stamp >= t + gap`; records are applied in stamp order, and before the records stamped `s`
//!   every open session with `end < s` closes; at the end of input every session closes.
//!
//! Under these rules a record never bridges two open sessions (see
//! `user_defined_aggregator_on_sessions_matches_the_oracle`), so `Aggregator::merge` is reached
//! through the session operator's allowed lateness, which the oracle also models.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tideflow::aggregate::{Aggregator, Avg, Count, Max, Min, Sum};
use tideflow::sink::MemorySink;
use tideflow::source::{MemorySource, WatermarkStrategy};
use tideflow::{Config, JobReport, Window, WindowResult};

use crate::support::SplitMix64;

const WORKERS: [usize; 3] = [1, 2, 4];
const SEEDS: [u64; 3] = [0x7fde_0001, 0x5eed_cafe, 0x0bad_f00d_1234];
const BASE: u64 = 1_700_000_000_000;
const FLOAT_REL_TOL: f64 = 1e-9;

// ---------------------------------------------------------------------------------------------
// Records and the generator
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
struct Ev {
    key: u64,
    ts: u64,
    value: i64,
}

/// The shape of a generated stream.
#[derive(Clone, Copy, Debug)]
struct Shape {
    events: usize,
    keys: u64,
    /// Event times advance by `0..=step_max` ms per record.
    step_max: u64,
    /// Half of the records are moved back by a uniform `0..=disorder` ms.
    disorder: u64,
    /// About one record in `pause_every` follows a pause of `pause_min..pause_max` ms.
    pause_every: u64,
    pause_min: u64,
    pause_max: u64,
}

const SHAPE: Shape = Shape {
    events: 3_000,
    keys: 10,
    step_max: 30,
    disorder: 600,
    pause_every: 100,
    pause_min: 2_000,
    pause_max: 6_000,
};

/// More disorder, so that with a small delay some records miss even the latest sliding window
/// that contains them (which ends at least `size - slide` after the record).
const LATE_SHAPE: Shape = Shape {
    disorder: 1_500,
    ..SHAPE
};

/// `shape.events` records, keys `0..keys`, values in `-100..1000`, times from about [`BASE`] on.
/// Every record is at most `shape.disorder` ms behind the largest time before it.
fn generate(seed: u64, shape: &Shape) -> Vec<Ev> {
    let mut rng = SplitMix64(seed);
    let mut cursor = BASE + rng.below(1_000);
    (0..shape.events)
        .map(|_| {
            cursor += rng.below(shape.step_max + 1);
            if rng.below(shape.pause_every) == 0 {
                cursor += shape.pause_min + rng.below(shape.pause_max - shape.pause_min);
            }
            let jitter = if rng.below(2) == 0 {
                rng.below(shape.disorder + 1)
            } else {
                0
            };
            let key = rng.below(shape.keys);
            let value = rng.below(1_100) as i64 - 100;
            Ev {
                key,
                ts: cursor - jitter,
                value,
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The batch oracle
// ---------------------------------------------------------------------------------------------

/// A window kind, independent of the engine's types.
#[derive(Clone, Copy, Debug)]
enum Spec {
    Tumbling { size: u64 },
    Sliding { size: u64, slide: u64 },
    Session { gap: u64 },
}

impl Spec {
    fn window(self) -> Window {
        let ms = Duration::from_millis;
        match self {
            Spec::Tumbling { size } => Window::tumbling(ms(size)),
            Spec::Sliding { size, slide } => Window::sliding(ms(size), ms(slide)),
            Spec::Session { gap } => Window::session(ms(gap)),
        }
        .expect("valid window spec")
    }
}

/// The window kinds every randomised test covers: tumbling, sliding with a slide that divides
/// the size and one that does not, and sessions.
const SPECS: [Spec; 4] = [
    Spec::Tumbling { size: 1_000 },
    Spec::Sliding {
        size: 1_000,
        slide: 250,
    },
    Spec::Sliding {
        size: 1_000,
        slide: 300,
    },
    Spec::Session { gap: 300 },
];

/// A record as the oracle sees it: key, event time, stamp, and the record itself.
#[derive(Clone, Debug)]
struct Stamped {
    key: u64,
    time: u64,
    stamp: u64,
    record: Ev,
}

/// Stamps `records` as a source with `partitions` partitions and watermark `delay` would.
fn stamp_all(records: &[Ev], partitions: usize, delay: u64) -> Vec<Stamped> {
    let mut max_seen: Vec<Option<u64>> = vec![None; partitions];
    records
        .iter()
        .enumerate()
        .map(|(i, record)| {
            let seen = &mut max_seen[i % partitions];
            let watermark = seen.map_or(0, |m| m.saturating_sub(delay));
            let stamp = record.ts.max(watermark);
            *seen = Some(seen.map_or(record.ts, |m| m.max(record.ts)));
            Stamped {
                key: record.key,
                time: record.ts,
                stamp,
                record: record.clone(),
            }
        })
        .collect()
}

/// One key's window and the records in it.
#[derive(Clone, Debug)]
struct OracleWindow {
    key: u64,
    start: u64,
    end: u64,
    records: Vec<Ev>,
}

/// What the oracle predicts: the windows and the number of late records. For sessions, also
/// how many times a record joined two or more open sessions (each such join calls
/// `Aggregator::merge`), and how many on-time records touched a session of their key that had
/// already closed (so they started a new one).
#[derive(Debug)]
struct Expected {
    windows: Vec<OracleWindow>,
    late: u64,
    /// The late records themselves, in input order.
    late_records: Vec<Ev>,
    session_merges: u64,
    reopened: u64,
}

/// The windows `[k*slide, k*slide + size)`, `k >= 0`, that contain `t`.
fn aligned_windows_of(t: u64, size: u64, slide: u64) -> Vec<(u64, u64)> {
    // k*slide + size > t  <=>  k > (t - size) / slide
    let first = if t >= size { (t - size) / slide + 1 } else { 0 };
    let last = t / slide;
    (first..=last)
        .map(|k| (k * slide, k * slide + size))
        .collect()
}

fn oracle(records: &[Stamped], spec: Spec) -> Expected {
    oracle_with_lateness(records, spec, 0)
}

/// The oracle with `lateness` ms of allowed lateness: a record is late for an aligned window
/// iff `stamp >= end + lateness`.
fn oracle_with_lateness(records: &[Stamped], spec: Spec, lateness: u64) -> Expected {
    match spec {
        Spec::Tumbling { size } => oracle_aligned(records, size, size, lateness),
        Spec::Sliding { size, slide } => oracle_aligned(records, size, slide, lateness),
        Spec::Session { gap } => oracle_sessions(records, gap, lateness),
    }
}

fn oracle_aligned(records: &[Stamped], size: u64, slide: u64, lateness: u64) -> Expected {
    let mut windows: BTreeMap<(u64, u64, u64), Vec<Ev>> = BTreeMap::new();
    let mut late = 0;
    let mut late_records = Vec::new();
    for r in records {
        let mut assigned = false;
        for (start, end) in aligned_windows_of(r.time, size, slide) {
            if r.stamp < end + lateness {
                windows
                    .entry((r.key, start, end))
                    .or_default()
                    .push(r.record.clone());
                assigned = true;
            }
        }
        if !assigned {
            late += 1;
            late_records.push(r.record.clone());
        }
    }
    let windows = windows
        .into_iter()
        .map(|((key, start, end), records)| OracleWindow {
            key,
            start,
            end,
            records,
        })
        .collect();
    Expected {
        windows,
        late,
        late_records,
        session_merges: 0,
        reopened: 0,
    }
}

/// Sessions with `lateness` ms of allowed lateness (the public API has none): a record is late
/// iff `stamp >= t + gap + lateness`, and a session closes before the records stamped `s` iff
/// `end + lateness < s`.
fn oracle_sessions(records: &[Stamped], gap: u64, lateness: u64) -> Expected {
    let mut late = 0;
    let mut late_records = Vec::new();
    let mut session_merges = 0;
    let mut reopened = 0;
    let mut per_key: BTreeMap<u64, Vec<&Stamped>> = BTreeMap::new();
    for r in records {
        if r.stamp >= r.time + gap + lateness {
            late += 1;
            late_records.push(r.record.clone());
        } else {
            per_key.entry(r.key).or_default().push(r);
        }
    }
    let mut windows = Vec::new();
    for (key, mut list) in per_key {
        // Stable: records with equal stamps keep their input order (which does not matter).
        list.sort_by_key(|r| r.stamp);
        let mut open: Vec<OracleWindow> = Vec::new();
        let mut closed: Vec<(u64, u64)> = Vec::new();
        for r in list {
            // Close every session that ended before this stamp.
            let (done, still_open): (Vec<_>, Vec<_>) =
                open.into_iter().partition(|s| s.end + lateness < r.stamp);
            closed.extend(done.iter().map(|s| (s.start, s.end)));
            windows.extend(done);
            open = still_open;
            if closed
                .iter()
                .any(|&(start, end)| start <= r.time + gap && r.time <= end)
            {
                reopened += 1;
            }
            // Absorb every open session that touches the new one, until none does.
            let mut session = OracleWindow {
                key,
                start: r.time,
                end: r.time + gap,
                records: vec![r.record.clone()],
            };
            let mut absorbed = 0;
            while let Some(i) = open
                .iter()
                .position(|s| s.start <= session.end && session.start <= s.end)
            {
                let other = open.swap_remove(i);
                session.start = session.start.min(other.start);
                session.end = session.end.max(other.end);
                session.records.extend(other.records);
                absorbed += 1;
            }
            if absorbed >= 2 {
                session_merges += 1;
            }
            open.push(session);
        }
        windows.extend(open);
    }
    Expected {
        windows,
        late,
        late_records,
        session_merges,
        reopened,
    }
}

// ---------------------------------------------------------------------------------------------
// Running the engine and comparing
// ---------------------------------------------------------------------------------------------

/// Count, sum, min, max and average of `value`.
type Stats = (u64, i64, Option<i64>, Option<i64>, f64);

fn stats_aggregator() -> impl Aggregator<Ev, Output = Stats> {
    (
        Count,
        Sum::of(|e: &Ev| e.value),
        Min::of(|e: &Ev| e.value),
        Max::of(|e: &Ev| e.value),
        Avg::of(|e: &Ev| e.value as f64),
    )
}

fn expected_stats(records: &[Ev]) -> Stats {
    let values: Vec<i64> = records.iter().map(|e| e.value).collect();
    let sum: i64 = values.iter().sum();
    let count = values.len() as u64;
    (
        count,
        sum,
        values.iter().min().copied(),
        values.iter().max().copied(),
        sum as f64 / count as f64,
    )
}

/// Runs `events` through `source -> event time -> watermark -> key_by -> window -> aggregate`.
fn run_windowed<A, F>(
    events: &Arc<Vec<Ev>>,
    partitions: usize,
    delay: u64,
    spec: Spec,
    workers: usize,
    make_aggregator: F,
) -> (Vec<WindowResult<u64, A::Output>>, JobReport)
where
    A: Aggregator<Ev>,
    A::Output: timely::ExchangeData,
    F: Fn() -> A + Send + Sync + 'static,
{
    let sink = MemorySink::new();
    let output = sink.clone();
    let events = Arc::clone(events);
    let window = spec.window();
    let report = tideflow::execute(Config::workers(workers), move |flow| {
        flow.source(MemorySource::partitioned(Arc::clone(&events), partitions))
            .with_event_time(|e: &Ev| e.ts)
            .with_watermark(Duration::from_millis(delay))
            .key_by(|e| e.key)
            .window(window)
            .aggregate(make_aggregator())
            .sink(output.clone());
        Ok(())
    })
    .expect("the job runs");
    (sink.take(), report)
}

/// Panics with `context` and a bounded diff unless the two multisets are equal.
fn assert_same_multiset<T: Ord + Clone + Debug>(context: &str, expected: &[T], actual: &[T]) {
    let mut counts: BTreeMap<&T, i64> = BTreeMap::new();
    for row in expected {
        *counts.entry(row).or_default() += 1;
    }
    for row in actual {
        *counts.entry(row).or_default() -= 1;
    }
    let missing: Vec<_> = counts
        .iter()
        .filter(|(_, &n)| n > 0)
        .map(|(row, n)| (*row, *n))
        .collect();
    let extra: Vec<_> = counts
        .iter()
        .filter(|(_, &n)| n < 0)
        .map(|(row, n)| (*row, -*n))
        .collect();
    if !missing.is_empty() || !extra.is_empty() {
        panic!(
            "{context}: output differs from the oracle: {} expected rows, {} produced; \
             {} missing (first: {:?}), {} unexpected (first: {:?})",
            expected.len(),
            actual.len(),
            missing.len(),
            &missing[..missing.len().min(6)],
            extra.len(),
            &extra[..extra.len().min(6)],
        );
    }
}

/// The exact part of a stats row (for ordering and the multiset check) and its average.
type ExactStatsRow = (u64, u64, u64, u64, i64, Option<i64>, Option<i64>);

fn split_stats(key: u64, start: u64, end: u64, v: &Stats) -> (ExactStatsRow, f64) {
    ((key, start, end, v.0, v.1, v.2, v.3), v.4)
}

/// Compares engine stats rows with the oracle: integers exactly, averages within 1e-9.
fn assert_stats_match(context: &str, expected: &Expected, actual: &[WindowResult<u64, Stats>]) {
    let mut want: Vec<(ExactStatsRow, f64)> = expected
        .windows
        .iter()
        .map(|w| split_stats(w.key, w.start, w.end, &expected_stats(&w.records)))
        .collect();
    let mut got: Vec<(ExactStatsRow, f64)> = actual
        .iter()
        .map(|r| split_stats(r.key, r.start, r.end, &r.value))
        .collect();
    want.sort_by_key(|row| row.0);
    got.sort_by_key(|row| row.0);
    let want_exact: Vec<_> = want.iter().map(|r| r.0).collect();
    let got_exact: Vec<_> = got.iter().map(|r| r.0).collect();
    assert_same_multiset(context, &want_exact, &got_exact);
    for ((row, want_avg), (_, got_avg)) in want.iter().zip(&got) {
        let scale = want_avg.abs().max(got_avg.abs()).max(f64::MIN_POSITIVE);
        assert!(
            (want_avg - got_avg).abs() <= FLOAT_REL_TOL * scale,
            "{context}: average of {row:?} is {got_avg}, the oracle says {want_avg}"
        );
    }
}

fn context(seed: u64, spec: Spec, workers: usize, partitions: usize, delay: u64) -> String {
    format!(
        "seed={seed:#x} window={spec:?} workers={workers} partitions={partitions} delay={delay}ms"
    )
}

/// Runs one randomised case of the built-in aggregates on every worker count and checks rows
/// and the late count against the oracle. Returns the oracle's late count.
fn check_builtin_case(
    seed: u64,
    events: &Arc<Vec<Ev>>,
    spec: Spec,
    partitions: usize,
    delay: u64,
) -> u64 {
    let expected = oracle(&stamp_all(events, partitions, delay), spec);
    for workers in WORKERS {
        let context = context(seed, spec, workers, partitions, delay);
        let (rows, report) =
            run_windowed(events, partitions, delay, spec, workers, stats_aggregator);
        assert_stats_match(&context, &expected, &rows);
        assert_eq!(
            report.late_dropped, expected.late,
            "{context}: late_dropped"
        );
        assert_eq!(
            report.records_in,
            events.len() as u64,
            "{context}: records_in"
        );
        assert_eq!(
            report.records_out,
            rows.len() as u64,
            "{context}: records_out"
        );
    }
    expected.late
}

/// A record of `key` at `ts` with `value`.
fn ev(key: u64, ts: u64, value: i64) -> Ev {
    Ev { key, ts, value }
}

mod hand_computed;
mod modes;
mod random;
mod running;
mod sessions;
mod stateless;
mod triggers;

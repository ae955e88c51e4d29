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
use tideflow::source::MemorySource;
use tideflow::{Config, JobReport, Window, WindowResult};

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

/// splitmix64: tiny, seedable, good enough to shake the engine.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (the modulo bias is irrelevant here).
    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
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

// ---------------------------------------------------------------------------------------------
// The oracle checked by hand
// ---------------------------------------------------------------------------------------------

fn ev(key: u64, ts: u64, value: i64) -> Ev {
    Ev { key, ts, value }
}

fn spans(expected: &Expected) -> Vec<(u64, u64, u64, usize)> {
    let mut spans: Vec<_> = expected
        .windows
        .iter()
        .map(|w| (w.key, w.start, w.end, w.records.len()))
        .collect();
    spans.sort_unstable();
    spans
}

/// The oracle itself on inputs small enough to work out by hand.
#[test]
fn oracle_agrees_with_hand_computed_cases() {
    assert_eq!(
        aligned_windows_of(700, 1_000, 300),
        vec![(0, 1_000), (300, 1_300), (600, 1_600)]
    );
    assert_eq!(aligned_windows_of(5, 1_000, 300), vec![(0, 1_000)]);
    assert_eq!(
        aligned_windows_of(12_500, 10_000, 5_000),
        vec![(5_000, 15_000), (10_000, 20_000)]
    );
    assert_eq!(
        aligned_windows_of(1_999, 1_000, 1_000),
        vec![(1_000, 2_000)]
    );

    // Partition rule: records 0 and 2 are partition 0, record 1 is partition 1.
    let stamps: Vec<u64> = stamp_all(&[ev(0, 1_000, 0), ev(0, 10, 0), ev(0, 850, 0)], 2, 100)
        .iter()
        .map(|r| r.stamp)
        .collect();
    assert_eq!(stamps, vec![1_000, 10, 900]);

    // Sessions merge when they touch.
    let events: Vec<Ev> = [0, 4_000, 9_000, 20_000]
        .into_iter()
        .map(|t| ev(1, t, 1))
        .collect();
    let expected = oracle(
        &stamp_all(&events, 1, 100_000),
        Spec::Session { gap: 5_000 },
    );
    assert_eq!(
        spans(&expected),
        vec![(1, 0, 14_000, 3), (1, 20_000, 25_000, 1)]
    );

    // Tumbling lateness: 950 arrives stamped 1_900 >= 1_000: late.
    let events = [ev(0, 1_000, 1), ev(0, 2_000, 2), ev(0, 950, 3)];
    let expected = oracle(&stamp_all(&events, 1, 100), Spec::Tumbling { size: 1_000 });
    assert_eq!(
        spans(&expected),
        vec![(0, 1_000, 2_000, 1), (0, 2_000, 3_000, 1)]
    );
    assert_eq!(expected.late, 1);
}

/// Hand-computed cases at the edges of the rules, through the oracle and the engine.
#[test]
fn engine_and_oracle_agree_with_hand_computed_boundaries() {
    let tumbling = Spec::Tumbling { size: 1_000 };
    let sliding = Spec::Sliding {
        size: 1_000,
        slide: 300,
    };
    let session = Spec::Session { gap: 300 };
    // (window, delay, event times of key 0 in partition order, (start, end, count) rows, late)
    type Case = (Spec, u64, Vec<u64>, Vec<(u64, u64, u64)>, u64);
    let cases: Vec<Case> = vec![
        // 999 stamped 1_000 (1_100 - 100): exactly at the end of [0, 1_000), late.
        (tumbling, 100, vec![1_100, 999], vec![(1_000, 2_000, 1)], 1),
        // 999 stamped 999: on time.
        (
            tumbling,
            100,
            vec![1_099, 999],
            vec![(0, 1_000, 1), (1_000, 2_000, 1)],
            0,
        ),
        // 950 is in [0, 1_000), [300, 1_300), [600, 1_600), [900, 1_900); stamped 1_900 it is
        // late for all of them.
        (
            sliding,
            100,
            vec![2_000, 950],
            vec![(1_200, 2_200, 1), (1_500, 2_500, 1), (1_800, 2_800, 1)],
            1,
        ),
        // Stamped 1_899 it still makes [900, 1_900), and only that one.
        (
            sliding,
            100,
            vec![1_999, 950],
            vec![
                (900, 1_900, 1),
                (1_200, 2_200, 1),
                (1_500, 2_500, 1),
                (1_800, 2_800, 1),
            ],
            0,
        ),
        // Near the epoch, windows that would start before 0 are left out.
        (
            sliding,
            0,
            vec![5, 700],
            vec![(0, 1_000, 2), (300, 1_300, 1), (600, 1_600, 1)],
            0,
        ),
        // 1_000 stamped 1_300 = 1_000 + gap: late.
        (session, 100, vec![1_400, 1_000], vec![(1_400, 1_700, 1)], 1),
        // 1_000 stamped 1_299: on time; applied first, [1_000, 1_300) closes before stamp 1_399.
        (
            session,
            100,
            vec![1_399, 1_000],
            vec![(1_000, 1_300, 1), (1_399, 1_699, 1)],
            0,
        ),
        // A session ending exactly where the next one starts is extended (they touch).
        (session, 0, vec![1_000, 1_300], vec![(1_000, 1_600, 2)], 0),
        // 1_250 is stamped 1_400, not late (< 1_550), but [1_000, 1_300) closed before 1_400: it
        // starts a new session, which 1_500 joins.
        (
            session,
            100,
            vec![1_000, 1_500, 1_250],
            vec![(1_000, 1_300, 1), (1_250, 1_800, 2)],
            0,
        ),
        // A session ending exactly at the next stamp is still open: 1_700 (stamped 1_900) opens
        // [1_700, 2_000), which 2_000 (stamped 2_000) extends; 1_250 (stamped 1_900) is late.
        (
            session,
            100,
            vec![1_000, 2_000, 1_700, 1_250],
            vec![(1_000, 1_300, 1), (1_700, 2_300, 2)],
            1,
        ),
    ];
    for (case, (spec, delay, times, want, want_late)) in cases.into_iter().enumerate() {
        let events: Vec<Ev> = times.iter().map(|&t| ev(0, t, 1)).collect();
        let expected = oracle(&stamp_all(&events, 1, delay), spec);
        let oracle_rows: Vec<(u64, u64, u64)> = spans(&expected)
            .into_iter()
            .map(|(_, s, e, n)| (s, e, n as u64))
            .collect();
        assert_eq!(
            oracle_rows, want,
            "oracle, hand case {case} window={spec:?} delay={delay}ms times={times:?}"
        );
        assert_eq!(
            expected.late, want_late,
            "oracle late, hand case {case} window={spec:?} delay={delay}ms"
        );
        let events = Arc::new(events);
        for workers in WORKERS {
            let context = format!("hand case {case} window={spec:?} workers={workers} partitions=1 delay={delay}ms times={times:?}");
            let (rows, report) = run_windowed(&events, 1, delay, spec, workers, || Count);
            let mut got: Vec<(u64, u64, u64)> =
                rows.iter().map(|r| (r.start, r.end, r.value)).collect();
            got.sort_unstable();
            assert_eq!(got, want, "{context}");
            assert_eq!(report.late_dropped, want_late, "{context}: late_dropped");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Randomised window tests
// ---------------------------------------------------------------------------------------------

/// Watermark delay equal to the disorder: no record is late, and every window kind with all
/// five built-in aggregates equals the batch result, on one and on three partitions.
#[test]
fn windows_equal_batch_result_without_late_records() {
    let delay = SHAPE.disorder;
    for seed in SEEDS {
        let events = Arc::new(generate(seed, &SHAPE));
        for spec in SPECS {
            for partitions in [1, 3] {
                let late = check_builtin_case(seed, &events, spec, partitions, delay);
                assert_eq!(late, 0, "seed={seed:#x} window={spec:?} partitions={partitions}: the generator made late records");
            }
        }
    }
}

/// Watermark delay well below the disorder: some records are late (the oracle says how many,
/// by the partition rule) and the rest land in the windows the oracle predicts.
#[test]
fn windows_and_late_counts_match_oracle_with_late_records() {
    let delay = 100;
    for seed in SEEDS {
        let events = Arc::new(generate(seed, &LATE_SHAPE));
        for spec in SPECS {
            for partitions in [1, 3] {
                let late = check_builtin_case(seed, &events, spec, partitions, delay);
                assert!(late > 0, "seed={seed:#x} window={spec:?} partitions={partitions}: the oracle predicts no late records");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A user-defined aggregator on sessions
// ---------------------------------------------------------------------------------------------

/// Calls of `DistinctResidues::merge` through the public API and through the operator.
static API_MERGES: AtomicU64 = AtomicU64::new(0);
static OPERATOR_MERGES: AtomicU64 = AtomicU64::new(0);

const MODULUS: i64 = 16;

/// The number of distinct `value mod MODULUS` in a window: a set, which sessions must merge.
struct DistinctResidues {
    merges: &'static AtomicU64,
}

impl Aggregator<Ev> for DistinctResidues {
    type Acc = BTreeSet<i64>;
    type Output = u64;

    fn init(&self) -> BTreeSet<i64> {
        BTreeSet::new()
    }

    fn add(&self, acc: &mut BTreeSet<i64>, input: &Ev) {
        acc.insert(input.value.rem_euclid(MODULUS));
    }

    fn merge(&self, acc: &mut BTreeSet<i64>, other: BTreeSet<i64>) {
        self.merges.fetch_add(1, Ordering::Relaxed);
        acc.extend(other);
    }

    fn finish(&self, acc: &BTreeSet<i64>) -> u64 {
        acc.len() as u64
    }
}

/// (key, start, end, distinct residues, count, sum) for the user-defined aggregator tests.
type DistinctRow = (u64, u64, u64, u64, u64, i64);
/// What the engine emits for `distinct_aggregator`.
type DistinctResult = WindowResult<u64, (u64, u64, i64)>;

fn expected_distinct_rows(expected: &Expected) -> Vec<DistinctRow> {
    let mut rows: Vec<DistinctRow> = expected
        .windows
        .iter()
        .map(|w| {
            let distinct: BTreeSet<i64> = w
                .records
                .iter()
                .map(|e| e.value.rem_euclid(MODULUS))
                .collect();
            let sum = w.records.iter().map(|e| e.value).sum();
            (
                w.key,
                w.start,
                w.end,
                distinct.len() as u64,
                w.records.len() as u64,
                sum,
            )
        })
        .collect();
    rows.sort_unstable();
    rows
}

fn distinct_rows(rows: &[DistinctResult]) -> Vec<DistinctRow> {
    let mut rows: Vec<DistinctRow> = rows
        .iter()
        .map(|r| (r.key, r.start, r.end, r.value.0, r.value.1, r.value.2))
        .collect();
    rows.sort_unstable();
    rows
}

type DistinctAggregator = (DistinctResidues, Count, Sum<fn(&Ev) -> i64, i64>);

fn distinct_aggregator(merges: &'static AtomicU64) -> DistinctAggregator {
    (
        DistinctResidues { merges },
        Count,
        Sum::of(|e: &Ev| e.value),
    )
}

/// A user-defined aggregator (with a count and a sum) on sessions through the public API, with
/// late and reordered records.
///
/// With no allowed lateness `Aggregator::merge` cannot run here: when a record stamped `s` is
/// applied, every open session of its key has `end >= s` and only holds records with
/// `time <= stamp <= s`, so it contains `s`; all of them touch and were merged already, and a
/// record never finds two open sessions to bridge. The oracle checks that claim; the next test
/// reaches `merge` through the operator's allowed lateness.
#[test]
fn user_defined_aggregator_on_sessions_matches_the_oracle() {
    let delay = 50;
    let spec = Spec::Session { gap: 300 };
    for seed in SEEDS {
        let events = Arc::new(generate(seed, &SHAPE));
        for partitions in [1, 3] {
            let expected = oracle(&stamp_all(&events, partitions, delay), spec);
            assert_eq!(
                expected.session_merges, 0,
                "seed={seed:#x} partitions={partitions}: a record bridged two sessions"
            );
            assert!(
                expected.late > 0,
                "seed={seed:#x} partitions={partitions}: the oracle predicts no late records"
            );
            assert!(
                expected.reopened > 0,
                "seed={seed:#x} partitions={partitions}: no on-time record came after its session closed"
            );
            let want = expected_distinct_rows(&expected);
            for workers in WORKERS {
                let context = context(seed, spec, workers, partitions, delay);
                let (rows, report) =
                    run_windowed(&events, partitions, delay, spec, workers, || {
                        distinct_aggregator(&API_MERGES)
                    });
                assert_same_multiset(&context, &want, &distinct_rows(&rows));
                assert_eq!(
                    report.late_dropped, expected.late,
                    "{context}: late_dropped"
                );
            }
        }
    }
}

/// Runs the session operator of `tideflow-operators` with `lateness` ms of allowed lateness on
/// records fed at the oracle's stamps: record `i` by worker `(i % partitions) % workers`, each
/// worker's records in stamp order. Returns the results and the number of late records.
fn run_session_operator_with_lateness(
    stamped: &[Stamped],
    partitions: usize,
    gap: u64,
    lateness: u64,
    workers: usize,
) -> (Vec<DistinctResult>, u64) {
    use std::sync::Mutex;
    use tideflow_operators::window::SessionWindow;
    use tideflow_operators::Event;
    use timely::dataflow::operators::vec::Input;
    use timely::dataflow::operators::Inspect;

    // Per worker, (stamp, keyed event) in stamp order.
    type Feed = Vec<(u64, Event<(u64, Ev)>)>;
    let mut feeds: Vec<Feed> = vec![Vec::new(); workers];
    for (i, r) in stamped.iter().enumerate() {
        feeds[(i % partitions) % workers]
            .push((r.stamp, Event::new(r.time, (r.key, r.record.clone()))));
    }
    for feed in &mut feeds {
        feed.sort_by_key(|(stamp, _)| *stamp);
    }
    let feeds = Arc::new(feeds);
    let results = Arc::new(Mutex::new(Vec::new()));
    let late = Arc::new(AtomicU64::new(0));
    let (results_out, late_out) = (Arc::clone(&results), Arc::clone(&late));
    let config = if workers == 1 {
        timely::Config::thread()
    } else {
        timely::Config::process(workers)
    };
    timely::execute(config, move |worker| {
        let (results_out, late_out) = (Arc::clone(&results_out), Arc::clone(&late_out));
        let mut input = worker.dataflow::<u64, _, _>(|scope| {
            let (input, stream) = scope.new_input::<Event<(u64, Ev)>>();
            let streams =
                stream.session_window_core(gap, lateness, distinct_aggregator(&OPERATOR_MERGES));
            streams.results.inspect(move |event| {
                results_out
                    .lock()
                    .expect("results lock")
                    .push(event.data.clone())
            });
            streams.late.inspect(move |_| {
                late_out.fetch_add(1, Ordering::Relaxed);
            });
            input
        });
        for (stamp, event) in &feeds[worker.index()] {
            input.advance_to(*stamp);
            input.send(event.clone());
        }
        // Dropping the input ends it; timely steps the dataflow to completion.
    })
    .expect("timely starts")
    .join()
    .into_iter()
    .for_each(|result| result.expect("a worker panicked"));
    let rows = std::mem::take(&mut *results.lock().expect("results lock"));
    (rows, late.load(Ordering::Relaxed))
}

/// The same user-defined aggregator on the session operator with allowed lateness, where a
/// reordered record does bridge two open sessions: `merge` runs, and the merged sets must equal
/// the oracle's.
#[test]
fn user_defined_aggregator_merges_sessions_with_allowed_lateness() {
    let (delay, gap, lateness) = (50, 300, 200);
    let mut oracle_merges = 0;
    for seed in SEEDS {
        let events = generate(seed, &SHAPE);
        for partitions in [1, 3] {
            let stamped = stamp_all(&events, partitions, delay);
            let expected = oracle_sessions(&stamped, gap, lateness);
            oracle_merges += expected.session_merges;
            let want = expected_distinct_rows(&expected);
            for workers in WORKERS {
                let context = format!(
                    "seed={seed:#x} session operator gap={gap}ms lateness={lateness}ms workers={workers} \
                     partitions={partitions} delay={delay}ms"
                );
                let (rows, late) = run_session_operator_with_lateness(
                    &stamped, partitions, gap, lateness, workers,
                );
                assert_same_multiset(&context, &want, &distinct_rows(&rows));
                assert_eq!(late, expected.late, "{context}: late records");
            }
        }
    }
    assert!(
        oracle_merges > 0,
        "no record bridged two open sessions: the test does not exercise merge"
    );
    assert!(
        OPERATOR_MERGES.load(Ordering::Relaxed) > 0,
        "the operator never called Aggregator::merge"
    );
}

// ---------------------------------------------------------------------------------------------
// Stateless operators
// ---------------------------------------------------------------------------------------------

fn stateless_map(e: Ev) -> Ev {
    Ev {
        value: e.value * 3 - 7,
        ..e
    }
}

fn stateless_filter(e: &Ev) -> bool {
    e.value.rem_euclid(4) != 0
}

/// Children of one record: `value mod 3` of them, with new keys and a data time moved far
/// away; their *event time* must stay the parent's.
fn stateless_flat_map(e: Ev) -> Vec<Ev> {
    (0..e.value.rem_euclid(3) as u64)
        .map(|j| Ev {
            key: e.key + 100 * (j + 1),
            ts: e.ts + 1_000_000_000 * (j + 1),
            value: e.value + j as i64,
        })
        .collect()
}

/// `map`, `filter`, `inspect` on one source (three partitions), `flat_map` on another, `union`
/// of the two: the records equal the same transformation of the vectors, and a tumbling count
/// over the union shows that `flat_map` outputs keep the event time of their input (their data
/// carries a different time) and its stamp (with a small delay, the same records are late).
#[test]
fn stateless_operators_equal_the_same_transformation_on_vectors() {
    let spec = Spec::Tumbling { size: 1_000 };
    for (seed, delay) in SEEDS
        .into_iter()
        .flat_map(|seed| [(seed, SHAPE.disorder), (seed, 50)])
    {
        let left = Arc::new(generate(seed, &SHAPE));
        let right = Arc::new(generate(
            seed ^ 0x5555_aaaa,
            &Shape {
                events: 1_500,
                ..SHAPE
            },
        ));

        // The vectors, transformed; each output keeps its input's stamp and event time.
        let mut stamped: Vec<Stamped> = stamp_all(&left, 3, delay)
            .into_iter()
            .map(|r| Stamped {
                record: stateless_map(r.record),
                ..r
            })
            .filter(|r| stateless_filter(&r.record))
            .collect();
        let passed_filter = stamped.len() as u64;
        for parent in stamp_all(&right, 1, delay) {
            for child in stateless_flat_map(parent.record.clone()) {
                stamped.push(Stamped {
                    key: child.key,
                    record: child,
                    ..parent.clone()
                });
            }
        }
        let mut want_records: Vec<Ev> = stamped.iter().map(|r| r.record.clone()).collect();
        want_records.sort_unstable();
        let expected = oracle(&stamped, spec);
        assert_eq!(
            expected.late > 0,
            delay < SHAPE.disorder,
            "seed={seed:#x} delay={delay}ms: oracle late count {}",
            expected.late
        );
        let mut want_counts: Vec<(u64, u64, u64, u64)> = expected
            .windows
            .iter()
            .map(|w| (w.key, w.start, w.end, w.records.len() as u64))
            .collect();
        want_counts.sort_unstable();

        for workers in WORKERS {
            let context = format!(
                "seed={seed:#x} stateless window={spec:?} workers={workers} delay={delay}ms"
            );
            let records = MemorySink::new();
            let counts = MemorySink::new();
            let inspected = Arc::new(AtomicU64::new(0));
            let (left_input, right_input) = (Arc::clone(&left), Arc::clone(&right));
            let (records_out, counts_out, seen) =
                (records.clone(), counts.clone(), Arc::clone(&inspected));
            let report = tideflow::execute(Config::workers(workers), move |flow| {
                let seen = Arc::clone(&seen);
                let mapped = flow
                    .source(MemorySource::partitioned(Arc::clone(&left_input), 3))
                    .with_event_time(|e: &Ev| e.ts)
                    .with_watermark(Duration::from_millis(delay))
                    .map(stateless_map)
                    .filter(stateless_filter)
                    .inspect(move |_| {
                        seen.fetch_add(1, Ordering::Relaxed);
                    });
                let children = flow
                    .source(MemorySource::new(Arc::clone(&right_input)))
                    .with_event_time(|e: &Ev| e.ts)
                    .with_watermark(Duration::from_millis(delay))
                    .flat_map(stateless_flat_map);
                let all = mapped.union(children);
                all.clone().sink(records_out.clone());
                all.key_by(|e| e.key)
                    .window(spec.window())
                    .aggregate(Count)
                    .sink(counts_out.clone());
                Ok(())
            })
            .expect("the job runs");

            let mut got_records = records.take();
            got_records.sort_unstable();
            assert_same_multiset(&format!("{context} (records)"), &want_records, &got_records);
            let mut got_counts: Vec<(u64, u64, u64, u64)> = counts
                .take()
                .into_iter()
                .map(|r| (r.key, r.start, r.end, r.value))
                .collect();
            got_counts.sort_unstable();
            assert_same_multiset(
                &format!("{context} (window counts)"),
                &want_counts,
                &got_counts,
            );
            assert_eq!(
                inspected.load(Ordering::Relaxed),
                passed_filter,
                "{context}: inspect calls"
            );
            assert_eq!(
                report.late_dropped, expected.late,
                "{context}: late_dropped"
            );
            assert_eq!(
                report.records_in,
                (left.len() + right.len()) as u64,
                "{context}: records_in"
            );
            assert_eq!(
                report.records_out,
                (want_records.len() + want_counts.len()) as u64,
                "{context}: records_out"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// End of input
// ---------------------------------------------------------------------------------------------

/// Events hours to years apart (and a few near the epoch, where sliding windows that would
/// start before 0 are left out): every window is emitted when the bounded input ends, whether
/// the watermark passed it on the way (delay 0, ascending times) or never moved past anything
/// (a delay longer than all of time so far, times in descending order). A single event and an
/// empty input end cleanly too.
#[test]
fn bounded_input_flushes_every_window_at_end() {
    const DAY: u64 = 86_400_000;
    let ascending: Vec<u64> = vec![
        0,
        5,
        700,
        999,
        1_000,
        3_600_000,
        3 * DAY,
        BASE,
        BASE + 1,
        BASE + 299,
        BASE + DAY,
        BASE + 365 * DAY,
        BASE + 3_650 * DAY,
    ];
    let events_of = |times: &[u64]| -> Arc<Vec<Ev>> {
        Arc::new(
            times
                .iter()
                .enumerate()
                .map(|(i, &t)| ev(i as u64 % 3, t, i as i64 * 10 - 50))
                .collect(),
        )
    };
    let mut descending = ascending.clone();
    descending.reverse();
    let cases = [
        ("ascending", events_of(&ascending), 0),
        ("descending", events_of(&descending), 200 * 365 * DAY),
        ("single", events_of(&[BASE + 123]), 0),
        ("empty", events_of(&[]), 0),
    ];
    for (name, events, delay) in cases {
        for spec in SPECS {
            for partitions in [1, 3] {
                let expected = oracle(&stamp_all(&events, partitions, delay), spec);
                assert_eq!(expected.late, 0, "{name}: the oracle predicts late records");
                let counted: usize = expected.windows.iter().map(|w| w.records.len()).sum();
                assert!(
                    counted >= events.len(),
                    "{name}: some event is in no window"
                );
                for workers in WORKERS {
                    let context = format!("{name} times, window={spec:?} workers={workers} partitions={partitions} delay={delay}ms");
                    let (rows, report) =
                        run_windowed(&events, partitions, delay, spec, workers, stats_aggregator);
                    assert_stats_match(&context, &expected, &rows);
                    assert_eq!(report.late_dropped, 0, "{context}: late_dropped");
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Allowed lateness and the late-data stream
// ---------------------------------------------------------------------------------------------

/// Window rows, routed late records and the report of one run.
type LateRun = (
    Vec<WindowResult<u64, Stats>>,
    Vec<tideflow::LateRecord<u64, Ev>>,
    JobReport,
);

/// Runs the windowed job with `lateness` and the late records routed to their own stream.
fn run_with_late_stream(
    events: &Arc<Vec<Ev>>,
    partitions: usize,
    delay: u64,
    spec: Spec,
    lateness: u64,
    workers: usize,
) -> LateRun {
    let (rows, late) = (MemorySink::new(), MemorySink::new());
    let (rows_out, late_out) = (rows.clone(), late.clone());
    let events = Arc::clone(events);
    let window = spec.window();
    let report = tideflow::execute(Config::workers(workers), move |flow| {
        let (results, too_late) = flow
            .source(MemorySource::partitioned(Arc::clone(&events), partitions))
            .with_event_time(|e: &Ev| e.ts)
            .with_watermark(Duration::from_millis(delay))
            .key_by(|e| e.key)
            .window(window)
            .allowed_lateness(Duration::from_millis(lateness))
            .aggregate_with_late(stats_aggregator());
        results.sink(rows_out.clone());
        too_late.sink(late_out.clone());
        Ok(())
    })
    .expect("the job runs");
    (rows.take(), late.take(), report)
}

/// With allowed lateness, windows take the records stamped before `end + lateness`; the records
/// too late for every window come out on the late stream, exactly the oracle's late set, with
/// the watermark they arrived behind and the window end they missed; and
/// kept + routed accounts for every input record.
#[test]
fn allowed_lateness_and_routed_late_records_match_the_oracle() {
    let (delay, lateness) = (100, 400);
    for seed in SEEDS {
        let events = Arc::new(generate(seed, &LATE_SHAPE));
        for spec in SPECS {
            for partitions in [1, 3] {
                let stamped = stamp_all(&events, partitions, delay);
                let expected = oracle_with_lateness(&stamped, spec, lateness);
                let without = oracle(&stamped, spec);
                let context = format!(
                    "{} lateness={lateness}ms",
                    context(seed, spec, 0, partitions, delay)
                );
                assert!(
                    expected.late > 0,
                    "{context}: the oracle predicts no late records"
                );
                assert!(
                    expected.late < without.late,
                    "{context}: lateness accepts no extra record"
                );
                let mut want_late: Vec<(u64, u64, i64)> = expected
                    .late_records
                    .iter()
                    .map(|e| (e.key, e.ts, e.value))
                    .collect();
                want_late.sort_unstable();
                for workers in WORKERS {
                    let context = format!("{context} workers={workers}");
                    let (rows, late, report) =
                        run_with_late_stream(&events, partitions, delay, spec, lateness, workers);
                    assert_stats_match(&context, &expected, &rows);
                    let mut got_late: Vec<(u64, u64, i64)> = late
                        .iter()
                        .map(|l| (l.key, l.data.ts, l.data.value))
                        .collect();
                    got_late.sort_unstable();
                    assert_eq!(got_late, want_late, "{context}: late records");
                    for record in &late {
                        assert!(
                            record.watermark >= record.window_end + lateness
                                && record.data.ts < record.window_end,
                            "{context}: {record:?} is not late for its window"
                        );
                    }
                    assert_eq!(
                        (report.late_routed, report.late_dropped),
                        (expected.late, 0),
                        "{context}"
                    );
                    if let Spec::Tumbling { .. } | Spec::Session { .. } = spec {
                        // Each kept record is in exactly one window: kept + routed = input.
                        let kept: u64 = rows.iter().map(|r| r.value.0).sum();
                        assert_eq!(
                            kept + report.late_routed,
                            events.len() as u64,
                            "{context}: accounting"
                        );
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Invertible aggregates on sliding windows
// ---------------------------------------------------------------------------------------------

static INVERTIBLE_ADDS: AtomicU64 = AtomicU64::new(0);
static INVERTIBLE_MERGES: AtomicU64 = AtomicU64::new(0);
static INVERTIBLE_RETRACTS: AtomicU64 = AtomicU64::new(0);

/// Count and sum of `value`, invertible, counting its calls.
struct CountedSum;

impl Aggregator<Ev> for CountedSum {
    type Acc = (u64, i64);
    type Output = (u64, i64);
    fn init(&self) -> (u64, i64) {
        (0, 0)
    }
    fn add(&self, acc: &mut (u64, i64), e: &Ev) {
        INVERTIBLE_ADDS.fetch_add(1, Ordering::Relaxed);
        acc.0 += 1;
        acc.1 += e.value;
    }
    fn merge(&self, acc: &mut (u64, i64), other: (u64, i64)) {
        INVERTIBLE_MERGES.fetch_add(1, Ordering::Relaxed);
        acc.0 += other.0;
        acc.1 += other.1;
    }
    fn finish(&self, acc: &(u64, i64)) -> (u64, i64) {
        *acc
    }
    fn invertible(&self) -> bool {
        true
    }
    fn retract(&self, acc: &mut (u64, i64), other: &(u64, i64)) {
        INVERTIBLE_RETRACTS.fetch_add(1, Ordering::Relaxed);
        acc.0 -= other.0;
        acc.1 -= other.1;
    }
}

/// An invertible aggregate on sliding windows gives the oracle's rows, and its work does not
/// grow with the number of windows a record is in: each record is added once, and each of the
/// key's contributions (at most one per record) is merged into the running total once, into
/// another contribution at most once, and retracted once, whether a window spans 4 slides or
/// 100.
#[test]
fn invertible_sliding_aggregate_matches_the_oracle_with_constant_work_per_slide() {
    let delay = 100;
    let seed = SEEDS[0];
    let events = Arc::new(generate(seed, &LATE_SHAPE));
    let n = events.len() as u64;
    for spec in [
        Spec::Sliding {
            size: 1_000,
            slide: 250,
        },
        Spec::Sliding {
            size: 1_000,
            slide: 10,
        },
    ] {
        let expected = oracle(&stamp_all(&events, 1, delay), spec);
        let mut want: Vec<(u64, u64, u64, u64, i64)> = expected
            .windows
            .iter()
            .map(|w| {
                (
                    w.key,
                    w.start,
                    w.end,
                    w.records.len() as u64,
                    w.records.iter().map(|e| e.value).sum(),
                )
            })
            .collect();
        want.sort_unstable();
        for workers in WORKERS {
            let context = context(seed, spec, workers, 1, delay);
            for counter in [&INVERTIBLE_ADDS, &INVERTIBLE_MERGES, &INVERTIBLE_RETRACTS] {
                counter.store(0, Ordering::Relaxed);
            }
            let (rows, report) = run_windowed(&events, 1, delay, spec, workers, || CountedSum);
            let mut got: Vec<(u64, u64, u64, u64, i64)> = rows
                .iter()
                .map(|r| (r.key, r.start, r.end, r.value.0, r.value.1))
                .collect();
            got.sort_unstable();
            assert_same_multiset(&context, &want, &got);
            assert_eq!(report.late_dropped, expected.late, "{context}: late");
            let adds = INVERTIBLE_ADDS.load(Ordering::Relaxed);
            let merges = INVERTIBLE_MERGES.load(Ordering::Relaxed);
            let retracts = INVERTIBLE_RETRACTS.load(Ordering::Relaxed);
            assert_eq!(
                adds,
                n - expected.late,
                "{context}: each on-time record is added exactly once"
            );
            assert!(retracts > 0, "{context}: windows slid without retracting");
            assert!(
                merges + retracts <= 3 * (n - expected.late),
                "{context}: {merges} merges + {retracts} retracts for {n} records: work grows with the window"
            );
            // Recomputing each window instead would take one step per record per window: with
            // 100 slides per window that is far more than the incremental calls.
            if let Spec::Sliding { size, slide } = spec {
                let record_windows: u64 = expected
                    .windows
                    .iter()
                    .map(|w| w.records.len() as u64)
                    .sum();
                if size / slide >= 100 {
                    assert!(
                        record_windows > 10 * (adds + merges + retracts),
                        "{context}: {record_windows} record-windows vs {adds} + {merges} + {retracts} calls"
                    );
                }
            }
        }
    }
}

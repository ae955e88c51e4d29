//! `KeyedStream::map_with_state` against a from-scratch oracle, its timers, its TTL and its
//! state bound.
//!
//! The oracle applies the operator's documented rules by hand, key by key, without engine
//! code:
//! - record `i` belongs to partition `i % P`; its stamp is `max(t, max_seen_before - delay)`
//!   over the earlier records of its partition (just `t` for the first one);
//! - a key's steps run in time order: its records of one stamp (sorted by event time, then
//!   record), its timers, and the expiry of its state at `last touch + ttl`; at equal times
//!   records first, then timers, then the expiry. A touch is a call with records or a timer,
//!   at the step's time;
//! - a timer set for a time before the step's is set at the step's time; a key has one timer
//!   per time; an expired state is removed after the call; at the end of the input every timer
//!   and expiry runs.
//!
//! The stateful function under test (sessions per key with a close timer, a periodic progress
//! timer, and the TTL) is written once against [`Steps`], which both the engine's
//! [`StateContext`] and the oracle implement: the oracle checks the engine's rules, not the
//! function.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tideflow::sink::MemorySink;
use tideflow::source::{MemorySource, RateSource};
use tideflow::{Config, Event, JobReport, StateContext, StateInput};

use crate::support::{EventSink, SplitMix64};

const WORKERS: [usize; 3] = [1, 2, 4];
const PARTITIONS: [usize; 2] = [1, 3];
const SEEDS: [u64; 2] = [0x5e55_1011, 0x0bad_f00d_1234];
/// A session closes `GAP` ms after its last record.
const GAP: u64 = 150;
/// An open session reports its progress every `BEAT` ms from its start.
const BEAT: u64 = 400;

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
struct Ev {
    key: u64,
    ts: u64,
    value: i64,
}

/// `events` records over `keys` keys: times advance by 0..=20 ms, half of them moved back by up
/// to 300 ms, an occasional pause of 1-3 s (every session closes), and one record in ten a
/// resend of one of the last 20 (same key and time, another value: ties within a stamp).
fn generate(seed: u64, events: usize, keys: u64) -> Vec<Ev> {
    let mut rng = SplitMix64(seed);
    let mut cursor = 1_700_000_000_000 + rng.below(1_000);
    let mut out: Vec<Ev> = Vec::with_capacity(events);
    while out.len() < events {
        let value = rng.below(1_000) as i64 - 100;
        if out.len() > 20 && rng.below(10) == 0 {
            let earlier = &out[out.len() - 1 - rng.below(20) as usize];
            out.push(Ev { value, ..*earlier });
            continue;
        }
        cursor += rng.below(21);
        if rng.below(200) == 0 {
            cursor += 1_000 + rng.below(2_000);
        }
        let jitter = if rng.below(2) == 0 { rng.below(301) } else { 0 };
        out.push(Ev {
            key: rng.below(keys),
            ts: cursor - jitter,
            value,
        });
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The stateful function, written once for the engine and the oracle
// ---------------------------------------------------------------------------------------------

/// What a step of the function may do: the engine's `StateContext` or the oracle's.
trait Steps {
    fn now(&self) -> u64;
    fn emit_at(&mut self, time: u64, row: Row);
    fn set_timer(&mut self, time: u64);
    fn delete_timer(&mut self, time: u64);
}

impl Steps for StateContext<'_, Row> {
    fn now(&self) -> u64 {
        self.time()
    }
    fn emit_at(&mut self, time: u64, row: Row) {
        StateContext::emit_at(self, time, row);
    }
    fn set_timer(&mut self, time: u64) {
        StateContext::set_timer(self, time);
    }
    fn delete_timer(&mut self, time: u64) {
        StateContext::delete_timer(self, time);
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
enum Kind {
    /// Closed by its close timer.
    Closed,
    /// Closed by a record `GAP` or more after its last one.
    ClosedByRecord,
    /// The progress timer of an open session.
    Progress,
    /// The state expired (TTL).
    Expired,
    /// A timer fired for a key without state (its state expired).
    Orphan,
    /// A timer fired that is neither the session's close nor its progress timer (a timer
    /// left over from an expired state, firing on a newer session).
    Stray,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
struct Row {
    kind: Kind,
    key: u64,
    start: u64,
    end: u64,
    /// The value of the session's first record (order-sensitive: tests the tie rule).
    first: i64,
    count: u64,
    sum: i64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Session {
    start: u64,
    last: u64,
    first: i64,
    count: u64,
    sum: i64,
    close_at: u64,
    beat_at: u64,
}

impl Session {
    fn row(&self, kind: Kind, key: u64, end: u64) -> Row {
        Row {
            kind,
            key,
            start: self.start,
            end,
            first: self.first,
            count: self.count,
            sum: self.sum,
        }
    }
}

fn on_records(
    key: u64,
    records: impl Iterator<Item = Event<Ev>>,
    state: &mut Option<Session>,
    steps: &mut impl Steps,
) {
    let now = steps.now();
    for Event { time, data } in records {
        if let Some(session) = state.as_mut() {
            if time < session.last + GAP {
                session.start = session.start.min(time);
                session.last = session.last.max(time);
                session.count += 1;
                session.sum += data.value;
                continue;
            }
            let end = session.last + GAP;
            steps.emit_at(end, session.row(Kind::ClosedByRecord, key, end));
            steps.delete_timer(session.close_at);
            steps.delete_timer(session.beat_at);
        }
        // A timer before the step's time is set at the step's time (the rule under test).
        steps.set_timer(time + BEAT);
        let beat_at = (time + BEAT).max(now);
        *state = Some(Session {
            start: time,
            last: time,
            first: data.value,
            count: 1,
            sum: data.value,
            close_at: u64::MAX,
            beat_at,
        });
    }
    if let Some(session) = state.as_mut() {
        let close_at = (session.last + GAP).max(now);
        if close_at != session.close_at {
            if session.close_at != session.beat_at {
                steps.delete_timer(session.close_at);
            }
            steps.set_timer(session.last + GAP);
            session.close_at = close_at;
        }
    }
}

fn on_timer(key: u64, time: u64, state: &mut Option<Session>, steps: &mut impl Steps) {
    let Some(session) = state.as_mut() else {
        let row = Row {
            kind: Kind::Orphan,
            key,
            start: time,
            end: time,
            first: 0,
            count: 0,
            sum: 0,
        };
        steps.emit_at(time, row);
        return;
    };
    if time == session.close_at {
        let end = session.last + GAP;
        steps.emit_at(time, session.row(Kind::Closed, key, end));
        steps.delete_timer(session.beat_at);
        *state = None;
    } else if time == session.beat_at {
        steps.emit_at(time, session.row(Kind::Progress, key, time));
        session.beat_at = time + BEAT;
        steps.set_timer(session.beat_at);
    } else {
        steps.emit_at(time, session.row(Kind::Stray, key, time));
    }
}

fn on_expired(key: u64, state: &Option<Session>, steps: &mut impl Steps) {
    let session = state.as_ref().expect("an expiring key has state");
    let now = steps.now();
    steps.emit_at(now, session.row(Kind::Expired, key, now));
}

// ---------------------------------------------------------------------------------------------
// The oracle
// ---------------------------------------------------------------------------------------------

/// One key's timers and output in the oracle.
struct OracleSteps<'a> {
    now: u64,
    timers: BTreeSet<u64>,
    out: &'a mut Vec<(u64, Row)>,
    clamped: &'a mut u64,
}

impl Steps for OracleSteps<'_> {
    fn now(&self) -> u64 {
        self.now
    }
    fn emit_at(&mut self, time: u64, row: Row) {
        self.out.push((time, row));
    }
    fn set_timer(&mut self, time: u64) {
        if time < self.now {
            *self.clamped += 1;
        }
        self.timers.insert(time.max(self.now));
    }
    fn delete_timer(&mut self, time: u64) {
        self.timers.remove(&time);
    }
}

/// What the oracle predicts, and how much of the rules the input exercised.
#[derive(Debug, Default)]
struct Expected {
    /// (event time, row) of every output record.
    rows: Vec<(u64, Row)>,
    /// Records stamped after their event time.
    behind: u64,
    /// (key, stamp, time) groups with two or more different records.
    ties: u64,
    /// Timers set before the step's time.
    clamped: u64,
    /// Records stamped at exactly a pending timer of their key.
    at_timer: u64,
}

fn stamp_all(records: &[Ev], partitions: usize, delay: u64) -> Vec<(u64, Ev)> {
    let mut max_seen: Vec<Option<u64>> = vec![None; partitions];
    records
        .iter()
        .enumerate()
        .map(|(i, record)| {
            let seen = &mut max_seen[i % partitions];
            let stamp = record.ts.max(seen.map_or(0, |m| m.saturating_sub(delay)));
            *seen = Some(seen.map_or(record.ts, |m| m.max(record.ts)));
            (stamp, record.clone())
        })
        .collect()
}

fn oracle(records: &[Ev], partitions: usize, delay: u64, ttl: Option<u64>) -> Expected {
    let mut expected = Expected::default();
    let mut by_key: BTreeMap<u64, BTreeMap<u64, Vec<Ev>>> = BTreeMap::new();
    for (stamp, record) in stamp_all(records, partitions, delay) {
        expected.behind += u64::from(stamp > record.ts);
        let stamps = by_key.entry(record.key).or_default();
        stamps.entry(stamp).or_default().push(record);
    }
    for (key, mut stamps) in by_key {
        for records in stamps.values_mut() {
            records.sort_by(|a, b| (a.ts, a).cmp(&(b.ts, b)));
            for pair in records.windows(2) {
                expected.ties += u64::from(pair[0].ts == pair[1].ts && pair[0] != pair[1]);
            }
        }
        let mut steps = OracleSteps {
            now: 0,
            timers: BTreeSet::new(),
            out: &mut expected.rows,
            clamped: &mut expected.clamped,
        };
        let mut state: Option<Session> = None;
        let mut touched = 0;
        loop {
            let records = stamps.keys().next().map(|&time| (time, 0));
            let timer = steps.timers.first().map(|&time| (time, 1));
            let expiry = ttl
                .filter(|_| state.is_some())
                .map(|ttl| (touched + ttl, 2));
            let Some((time, kind)) = [records, timer, expiry].into_iter().flatten().min() else {
                break;
            };
            steps.now = time;
            match kind {
                0 => {
                    let records = stamps.remove(&time).expect("a stamp is due");
                    expected.at_timer += u64::from(steps.timers.contains(&time));
                    let events = records.into_iter().map(|r| Event::new(r.ts, r));
                    on_records(key, events, &mut state, &mut steps);
                    touched = time;
                }
                1 => {
                    steps.timers.remove(&time);
                    on_timer(key, time, &mut state, &mut steps);
                    touched = time;
                }
                _ => {
                    on_expired(key, &state, &mut steps);
                    state = None;
                }
            }
        }
    }
    expected
}

// ---------------------------------------------------------------------------------------------
// The engine
// ---------------------------------------------------------------------------------------------

struct Case {
    partitions: usize,
    delay: u64,
    ttl: Option<u64>,
    batch: usize,
}

fn sessionize(
    key: &u64,
    input: StateInput<'_, Ev>,
    state: &mut Option<Session>,
    context: &mut StateContext<'_, Row>,
) {
    match input {
        StateInput::Records(records) => on_records(*key, records, state, context),
        StateInput::Timer(time) => on_timer(*key, time, state, context),
        StateInput::Expired => on_expired(*key, state, context),
    }
}

fn run(records: &Arc<Vec<Ev>>, case: &Case, workers: usize) -> (Vec<(u64, Row)>, JobReport) {
    let sink = EventSink::default();
    let output = sink.clone();
    let records = Arc::clone(records);
    let (partitions, delay, ttl, batch) = (case.partitions, case.delay, case.ttl, case.batch);
    let report = tideflow::execute(Config::workers(workers), move |flow| {
        let keyed = flow
            .source(MemorySource::partitioned(Arc::clone(&records), partitions).batch_size(batch))
            .with_event_time(|r: &Ev| r.ts)
            .with_watermark(Duration::from_millis(delay))
            .key_by(|r| r.key);
        let rows = match ttl {
            Some(ttl) => keyed.map_with_state_ttl(Duration::from_millis(ttl), sessionize),
            None => keyed.map_with_state(sessionize),
        };
        rows.sink(output.clone());
        Ok(())
    })
    .expect("the job runs");
    let events = std::mem::take(&mut *sink.events.lock().expect("no panics"));
    let rows = events.into_iter().map(|e| (e.time, e.data)).collect();
    (rows, report)
}

#[test]
fn map_with_state_matches_the_oracle_on_1_2_and_4_workers() {
    let started = Instant::now();
    let mut exercised = Expected::default();
    let mut kinds: BTreeMap<Kind, u64> = BTreeMap::new();
    for (n, seed) in SEEDS.into_iter().enumerate() {
        let records = Arc::new(generate(seed, 1_500, 12));
        for partitions in PARTITIONS {
            // No TTL; a TTL equal to the gap (expiry and close timer coincide); a short one.
            for ttl in [None, Some(GAP), Some(GAP / 3)] {
                let case = Case {
                    partitions,
                    delay: 100,
                    ttl,
                    batch: [5, 256][n],
                };
                let mut expected = oracle(&records, partitions, case.delay, ttl);
                expected.rows.sort();
                exercised.behind += expected.behind;
                exercised.ties += expected.ties;
                exercised.clamped += expected.clamped;
                exercised.at_timer += expected.at_timer;
                for (_, row) in &expected.rows {
                    *kinds.entry(row.kind).or_default() += 1;
                }
                for workers in WORKERS {
                    let context = format!(
                        "seed={seed:#x} partitions={partitions} ttl={ttl:?} workers={workers}"
                    );
                    let (mut rows, report) = run(&records, &case, workers);
                    rows.sort();
                    if rows != expected.rows {
                        let missing: Vec<_> = expected
                            .rows
                            .iter()
                            .filter(|r| !rows.contains(r))
                            .take(5)
                            .collect();
                        let extra: Vec<_> = rows
                            .iter()
                            .filter(|r| !expected.rows.contains(r))
                            .take(5)
                            .collect();
                        panic!(
                            "{context}: {} rows, the oracle has {}; missing {missing:?}, \
                             unexpected {extra:?}",
                            rows.len(),
                            expected.rows.len()
                        );
                    }
                    assert_eq!(report.records_in, records.len() as u64, "{context}");
                    assert_eq!(report.late_dropped, 0, "{context}");
                    let state = report.state["map_with_state"];
                    assert!(state.peak > 0, "{context}: {state:?}");
                    // Every session closes at the end, and with a TTL every state expires.
                    assert_eq!(state.rows, 0, "{context}: {state:?}");
                }
            }
        }
    }
    // The inputs exercised every rule.
    eprintln!(
        "exercised {exercised:?}, rows {kinds:?} in {:?}",
        started.elapsed()
    );
    assert!(exercised.behind > 100, "{exercised:?}");
    assert!(exercised.ties > 50, "{exercised:?}");
    assert!(exercised.clamped > 20, "{exercised:?}");
    assert!(exercised.at_timer > 5, "{exercised:?}");
    for kind in [
        Kind::Closed,
        Kind::ClosedByRecord,
        Kind::Progress,
        Kind::Expired,
        Kind::Orphan,
        Kind::Stray,
    ] {
        assert!(
            kinds.get(&kind).copied().unwrap_or(0) > 5,
            "{kind:?}: {kinds:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Timers and TTL, by hand
// ---------------------------------------------------------------------------------------------

/// What a record asks the function of the timer test to do.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
enum Cmd {
    Set(u64),
    Delete(u64),
    Note,
    /// When the timer at `.0` fires, set a timer at `.1`.
    Chain(u64, u64),
}

/// Runs `records` (key, event time, command) through a function that obeys the commands and
/// logs every call as (key, what it saw), each key's calls in order.
fn timer_log(
    records: &[(&str, u64, Cmd)],
    workers: usize,
    partitions: usize,
) -> (Vec<(String, String)>, JobReport) {
    let records: Vec<(String, u64, Cmd)> = records
        .iter()
        .map(|(key, time, cmd)| (key.to_string(), *time, cmd.clone()))
        .collect();
    let sink = MemorySink::new();
    let output = sink.clone();
    let report = tideflow::execute(Config::workers(workers), move |flow| {
        let mut calls = 0u64;
        flow.source(MemorySource::partitioned(records.clone(), partitions))
            .with_event_time(|(_, time, _)| *time)
            .with_watermark(Duration::ZERO)
            .key_by(|(key, _, _)| key.clone())
            .map_with_state(
                move |key: &String,
                      input,
                      chains: &mut Option<BTreeMap<u64, Vec<u64>>>,
                      context| {
                    calls += 1;
                    let what = match input {
                        StateInput::Records(records) => {
                            let mut cmds = Vec::new();
                            for record in records {
                                let cmd = record.data.2;
                                match cmd {
                                    Cmd::Set(time) => context.set_timer(time),
                                    Cmd::Delete(time) => {
                                        context.delete_timer(time);
                                    }
                                    Cmd::Note => {}
                                    Cmd::Chain(at, then) => {
                                        let chains = chains.get_or_insert_with(BTreeMap::new);
                                        chains.entry(at).or_default().push(then);
                                    }
                                }
                                cmds.push(cmd);
                            }
                            format!("records {cmds:?} -> pending {:?}", context.timers())
                        }
                        StateInput::Timer(time) => {
                            let what = format!("timer {time} pending {:?}", context.timers());
                            if let Some(map) = chains.as_mut() {
                                for then in map.remove(&time).unwrap_or_default() {
                                    context.set_timer(then);
                                }
                                if map.is_empty() {
                                    *chains = None;
                                }
                            }
                            what
                        }
                        StateInput::Expired => unreachable!("no TTL"),
                    };
                    context.emit((key.clone(), calls, what));
                },
            )
            .sink(output.clone());
        Ok(())
    })
    .expect("the job runs");
    // A key's calls all happen on one worker, numbered in order.
    let mut log = sink.take();
    log.sort();
    let log = log.into_iter().map(|(key, _, what)| (key, what)).collect();
    (log, report)
}

#[test]
fn map_with_state_timers_set_delete_and_fire_in_time_order_after_records_of_their_time() {
    use Cmd::*;
    let records = [
        ("a", 1_000, Set(3_000)),
        ("a", 1_000, Set(2_000)),
        ("b", 1_000, Set(1_000)),
        ("a", 1_000, Set(2_500)),
        ("a", 1_000, Set(2_000)),
        ("a", 1_200, Delete(2_500)),
        ("a", 2_000, Note),
        ("a", 2_100, Set(500)),
        ("a", 2_200, Chain(3_000, 3_500)),
        ("a", 2_200, Chain(3_000, 3_000)),
        ("b", 4_000, Note),
    ];
    let expected: Vec<(String, String)> = [
        (
            "a",
            "records [Set(2000), Set(2000), Set(2500), Set(3000)] -> pending [2000, 2500, 3000]",
        ),
        ("a", "records [Delete(2500)] -> pending [2000, 3000]"),
        // The record at exactly 2_000 comes before the timer at 2_000.
        ("a", "records [Note] -> pending [2000, 3000]"),
        ("a", "timer 2000 pending [3000]"),
        // A timer for 500, set at 2_100, is set at 2_100 and fires right after.
        ("a", "records [Set(500)] -> pending [2100, 3000]"),
        ("a", "timer 2100 pending [3000]"),
        (
            "a",
            "records [Chain(3000, 3000), Chain(3000, 3500)] -> pending [3000]",
        ),
        // The timer at 3_000 sets 3_000 again (it fires again) and 3_500 (at the end).
        ("a", "timer 3000 pending []"),
        ("a", "timer 3000 pending [3500]"),
        ("a", "timer 3500 pending []"),
        ("b", "records [Set(1000)] -> pending [1000]"),
        ("b", "timer 1000 pending []"),
        ("b", "records [Note] -> pending []"),
    ]
    .into_iter()
    .map(|(key, what)| (key.to_string(), what.to_string()))
    .collect();
    for workers in WORKERS {
        for partitions in PARTITIONS {
            let (log, report) = timer_log(&records, workers, partitions);
            let context = format!("workers={workers} partitions={partitions}");
            assert_eq!(log, expected, "{context}");
            let state = report.state["map_with_state"];
            assert_eq!((state.rows, state.peak), (0, 2), "{context}: {state:?}");
        }
    }
}

/// Counts each key's records, with a TTL: an expiring state emits ("expired", count); a timer
/// set by the first record of `k` at 5_000 outlives its state.
fn counts_with_ttl(
    records: Vec<(String, u64)>,
    ttl: u64,
    workers: usize,
) -> (Vec<(u64, String, String, u64)>, JobReport) {
    let sink = EventSink::default();
    let output = sink.clone();
    let report = tideflow::execute(Config::workers(workers), move |flow| {
        flow.source(MemorySource::new(records.clone()).batch_size(1))
            .with_event_time(|(_, time)| *time)
            .with_watermark(Duration::ZERO)
            .into_keyed()
            .map_with_state_ttl(
                Duration::from_millis(ttl),
                |key: &String, input, count: &mut Option<u64>, context| match input {
                    StateInput::Records(records) => {
                        if key == "k" && count.is_none() && context.time() == 1_000 {
                            context.set_timer(5_000);
                        }
                        *count.get_or_insert(0) += records.len() as u64;
                    }
                    StateInput::Timer(_) => {
                        context.emit((key.clone(), "timer".to_string(), count.unwrap_or(0)));
                    }
                    StateInput::Expired => {
                        context.emit((key.clone(), "expired".to_string(), count.unwrap_or(0)));
                    }
                },
            )
            .sink(output.clone());
        Ok(())
    })
    .expect("the job runs");
    let mut rows: Vec<_> = std::mem::take(&mut *sink.events.lock().expect("no panics"))
        .into_iter()
        .map(|event| (event.time, event.data.0, event.data.1, event.data.2))
        .collect();
    rows.sort();
    (rows, report)
}

#[test]
fn map_with_state_ttl_expires_idle_state_and_a_returning_key_starts_afresh() {
    let records: Vec<(String, u64)> = [("k", 1_000), ("k", 1_500), ("k", 2_600), ("m", 6_000)]
        .into_iter()
        .map(|(key, time)| (key.to_string(), time))
        .collect();
    for workers in [1, 2] {
        let (rows, report) = counts_with_ttl(records.clone(), 500, workers);
        let expected: Vec<(u64, String, String, u64)> = [
            // 1_500 is exactly the last touch plus the TTL: it still finds the state.
            (2_000, "k", "expired", 2),
            // 2_600 came back after the expiry: a fresh count.
            (3_100, "k", "expired", 1),
            // The timer outlives the state it was set with.
            (5_000, "k", "timer", 0),
            // At the end of the input every state expires.
            (6_500, "m", "expired", 1),
        ]
        .into_iter()
        .map(|(time, key, what, count)| (time, key.to_string(), what.to_string(), count))
        .collect();
        assert_eq!(rows, expected, "workers={workers}");
        let state = report.state["map_with_state"];
        assert_eq!(state.rows, 0, "workers={workers}: {state:?}");
    }
}

/// Runs a per-key count with `ttl` (or none) over a stream of 1M keys; returns the report and
/// the sum of the counts emitted as states expire.
fn churn(source: RateSource, delay: u64, ttl: Option<Duration>) -> (JobReport, u64) {
    let counted = Arc::new(Mutex::new(0u64));
    let total = Arc::clone(&counted);
    let report = tideflow::execute(Config::workers(1), move |flow| {
        let keyed = flow
            .source(source.clone())
            .with_event_time(|r| r.ts)
            .with_watermark(Duration::from_millis(delay))
            .key_by(|r| r.key);
        let count = |_: &u64,
                     input: StateInput<'_, _>,
                     count: &mut Option<u64>,
                     context: &mut StateContext<'_, u64>| match input {
            StateInput::Records(records) => *count.get_or_insert(0) += records.len() as u64,
            StateInput::Expired => context.emit(count.unwrap_or(0)),
            StateInput::Timer(_) => {}
        };
        let counts = match ttl {
            Some(ttl) => keyed.map_with_state_ttl(ttl, count),
            None => keyed.map_with_state(count),
        };
        let total = Arc::clone(&total);
        counts
            .inspect(move |n| *total.lock().expect("no panics") += n)
            .sink(EventSink::default());
        Ok(())
    })
    .expect("the job runs");
    let counted = *counted.lock().expect("no panics");
    (report, counted)
}

/// With a TTL of 50 ms on a 100k events/s stream over 1M keys (20 ms of disorder), keys churn
/// and the keys held stay under the records of `ttl + disorder` of event time; without a TTL
/// they grow with the distinct keys.
#[test]
fn map_with_state_ttl_keeps_state_flat_while_keys_churn() {
    const RATE: u64 = 100_000;
    const DISORDER: u64 = 20;
    const TTL: u64 = 50;
    const EVENTS: u64 = 500_000;
    let source = RateSource::new(RATE)
        .keys(1_000_000)
        .max_disorder(Duration::from_millis(DISORDER))
        .count(EVENTS)
        .start_time(0)
        .unpaced();

    let started = Instant::now();
    let (bounded, counted) = churn(source.clone(), DISORDER, Some(Duration::from_millis(TTL)));
    let bounded_time = started.elapsed();
    // Right after the records stamped `s` are applied, every state held was last touched at a
    // stamp in `[s - ttl, s]`; record `i` is stamped within `[due(i) - disorder, due(i)]`, so
    // these records are due within `[s - ttl, s + disorder]`.
    let limit = RATE * (TTL + DISORDER) / 1_000 + 1;
    let state = bounded.state["map_with_state"];
    assert!(
        state.peak <= limit,
        "peak {} over the bound {limit}",
        state.peak
    );
    assert!(
        state.peak >= limit / 2,
        "peak {}: did the stream run?",
        state.peak
    );
    assert_eq!(state.rows, 0, "every state expires at the end");
    // Every record was counted in exactly one expired state.
    assert_eq!(counted, EVENTS);
    assert!(
        bounded.records_out > EVENTS / 2,
        "keys churn: {}",
        bounded.records_out
    );

    let started = Instant::now();
    let (growing, _) = churn(source, DISORDER, None);
    let growing_time = started.elapsed();
    let grown = growing.state["map_with_state"];
    assert!(
        grown.rows > 5 * limit,
        "without a TTL state should grow: {grown:?}"
    );
    assert_eq!(grown.rows, grown.peak);
    assert_eq!(growing.records_out, 0);
    eprintln!(
        "map_with_state over {EVENTS} events: TTL peak {} (limit {limit}) in {bounded_time:?}; \
         without TTL {} keys in {growing_time:?}",
        state.peak, grown.rows
    );
}

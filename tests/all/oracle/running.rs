//! Running aggregates per key against a from-scratch recomputation at every time the changelog
//! carries, on 1, 2 and 4 workers.

use std::sync::Mutex;

use tideflow::sink::Sink;
use tideflow::{Change, Event, KeyedChange};

use super::*;

/// Count, sum, min and max of `value`: exact, so rows compare with `==`.
type Exact = (u64, i64, Option<i64>, Option<i64>);

fn exact_aggregator() -> impl Aggregator<Ev, Output = Exact> {
    (
        Count,
        Sum::of(|e: &Ev| e.value),
        Min::of(|e: &Ev| e.value),
        Max::of(|e: &Ev| e.value),
    )
}

fn exact(records: &[&Stamped]) -> Exact {
    let values: Vec<i64> = records.iter().map(|r| r.record.value).collect();
    (
        values.len() as u64,
        values.iter().sum(),
        values.iter().min().copied(),
        values.iter().max().copied(),
    )
}

/// Changelog rows with the event time they carry, in the order each worker emitted them.
type Timed = Vec<(u64, KeyedChange<u64, Exact>)>;

/// A sink that keeps each row with its event time.
struct TimedSink(Arc<Mutex<Timed>>);

impl Sink<KeyedChange<u64, Exact>> for TimedSink {
    fn write(&mut self, batch: &mut Vec<Event<KeyedChange<u64, Exact>>>) -> tideflow::Result<()> {
        let mut rows = self.0.lock().unwrap();
        rows.extend(batch.drain(..).map(|event| (event.time, event.data)));
        Ok(())
    }
}

fn run_running(
    events: &Arc<Vec<Ev>>,
    partitions: usize,
    delay: u64,
    workers: usize,
) -> (Timed, JobReport) {
    let rows = Arc::new(Mutex::new(Vec::new()));
    let output = Arc::clone(&rows);
    let events = Arc::clone(events);
    let report = tideflow::execute(Config::workers(workers), move |flow| {
        flow.source(MemorySource::partitioned(Arc::clone(&events), partitions).batch_size(8))
            .with_event_time(|e: &Ev| e.ts)
            .with_watermark(Duration::from_millis(delay))
            .key_by(|e| e.key)
            .running_aggregate(exact_aggregator())
            .sink(TimedSink(Arc::clone(&output)));
        Ok(())
    })
    .expect("the job runs");
    let rows = std::mem::take(&mut *rows.lock().unwrap());
    (rows, report)
}

/// Folds the changelog up to each time it carries and compares the table with the aggregate of
/// the records stamped at or before that time. Returns how many times were checked.
fn check_changelog(context: &str, stamped: &[Stamped], rows: &Timed) -> usize {
    let mut times: Vec<u64> = rows.iter().map(|(time, _)| *time).collect();
    times.sort_unstable();
    times.dedup();
    // Per (key, value): insertions minus retractions.
    let mut table: BTreeMap<(u64, Exact), i64> = BTreeMap::new();
    let mut by_time: BTreeMap<u64, Vec<&KeyedChange<u64, Exact>>> = BTreeMap::new();
    for (time, row) in rows {
        by_time.entry(*time).or_default().push(row);
    }
    let mut sorted: Vec<&Stamped> = stamped.iter().collect();
    sorted.sort_by_key(|r| r.stamp);
    let mut next = 0;
    let mut per_key: BTreeMap<u64, Vec<&Stamped>> = BTreeMap::new();
    for (&time, changes) in &by_time {
        for row in changes {
            let diff = match row.change {
                Change::Insert => 1,
                Change::Retract => -1,
            };
            *table.entry((row.key, row.value)).or_default() += diff;
        }
        table.retain(|_, diff| *diff != 0);
        while next < sorted.len() && sorted[next].stamp <= time {
            per_key
                .entry(sorted[next].key)
                .or_default()
                .push(sorted[next]);
            next += 1;
        }
        let expected: BTreeMap<(u64, Exact), i64> = per_key
            .iter()
            .map(|(key, records)| ((*key, exact(records)), 1))
            .collect();
        assert_eq!(
            table, expected,
            "{context}: the changelog up to time {time}"
        );
    }
    times.len()
}

/// On streams with disorder, 1 and 3 partitions and 1, 2 and 4 workers, the changelog folded up
/// to every time it carries equals the aggregate of exactly the records stamped by then; the
/// last table has every key; nothing is late; the state holds one row per key.
#[test]
fn running_changelog_matches_recomputation_at_every_time() {
    for seed in SEEDS {
        let events = Arc::new(generate(seed, &SHAPE));
        for partitions in [1, 3] {
            let delay = 200;
            let stamped = stamp_all(&events, partitions, delay);
            for workers in WORKERS {
                let context = format!("seed={seed:#x} partitions={partitions} workers={workers}");
                let (rows, report) = run_running(&events, partitions, delay, workers);
                let times = check_changelog(&context, &stamped, &rows);
                assert!(times > 20, "{context}: only {times} times in the changelog");
                assert!(
                    rows.iter().any(|(_, row)| row.change == Change::Retract),
                    "{context}: no retraction"
                );
                assert_eq!(report.late_dropped, 0, "{context}");
                let state = report.state["running_aggregate"];
                assert_eq!(state.rows, SHAPE.keys, "{context}: keys held");
            }
        }
    }
}

/// Rows of a key whose result does not change are not repeated: a record that leaves min and
/// max alone still changes count and sum, but an aggregate of only min and max does not move.
#[test]
fn unchanged_results_emit_nothing() {
    let events: Arc<Vec<Ev>> = Arc::new(vec![ev(1, 1_000, 5), ev(1, 2_000, 3), ev(1, 3_000, 4)]);
    let sink = MemorySink::new();
    let output = sink.clone();
    tideflow::execute(Config::default(), move |flow| {
        flow.source(MemorySource::new(Arc::clone(&events)).batch_size(1))
            .with_event_time(|e: &Ev| e.ts)
            .with_watermark(Duration::ZERO)
            .key_by(|e| e.key)
            .running_aggregate((Min::of(|e: &Ev| e.value), Max::of(|e: &Ev| e.value)))
            .sink(output.clone());
        Ok(())
    })
    .expect("the job runs");
    type MinMax = (Option<i64>, Option<i64>);
    let rows: Vec<(Change, MinMax)> = sink
        .take()
        .into_iter()
        .map(|row| (row.change, row.value))
        .collect();
    // 5; then 3 (min moves); then 4 changes nothing.
    assert_eq!(
        rows,
        vec![
            (Change::Insert, (Some(5), Some(5))),
            (Change::Retract, (Some(5), Some(5))),
            (Change::Insert, (Some(3), Some(5))),
        ]
    );
}

//! Triggers: every trigger gives the oracle's results for every window kind on 1 and 2
//! workers; a trigger that holds the watermark back really does (no early rows leave before
//! the end under `Once` or a long interval, while continuous mode emits them).

use tideflow::{Trigger, UpdateKind, WindowUpdate};

use super::*;

/// The triggers checked, each with a name for failure messages.
fn triggers() -> [(&'static str, Trigger); 5] {
    [
        ("continuous", Trigger::Continuous),
        ("interval:2ms", Trigger::Interval(Duration::from_millis(2))),
        ("interval:1h", Trigger::Interval(Duration::from_secs(3_600))),
        ("available-now", Trigger::AvailableNow),
        ("once", Trigger::Once),
    ]
}

/// Runs `events` on 3 partitions, 16 records per read, watermark delay `delay`, under
/// `trigger`, in update mode (`updates`) or append mode; returns the rows as update rows (append
/// rows as final ones) and the report.
fn run_triggered(
    events: &Arc<Vec<Ev>>,
    spec: Spec,
    workers: usize,
    delay: u64,
    trigger: Trigger,
    updates: bool,
) -> (Vec<WindowUpdate<u64, Stats>>, JobReport) {
    let sink = MemorySink::new();
    let output = sink.clone();
    let events = Arc::clone(events);
    let config = Config::workers(workers).trigger(trigger);
    let report = tideflow::execute(config, move |flow| {
        let windowed = flow
            .source(MemorySource::partitioned(Arc::clone(&events), 3).batch_size(16))
            .with_event_time(|e: &Ev| e.ts)
            .with_watermark(Duration::from_millis(delay))
            .key_by(|e| e.key)
            .window(spec.window());
        if updates {
            windowed
                .aggregate_updates(stats_aggregator())
                .sink(output.clone());
        } else {
            windowed
                .aggregate(stats_aggregator())
                .map(|result| WindowUpdate {
                    result,
                    kind: UpdateKind::Final,
                })
                .sink(output.clone());
        }
        Ok(())
    })
    .expect("the job runs");
    (sink.take(), report)
}

/// With late records, every trigger gives exactly the oracle's windows and late count, for
/// every window kind on 1 and 2 workers: records keep their stamps whatever the trigger.
#[test]
fn every_trigger_gives_the_oracle_results() {
    let delay = 100;
    let seed = SEEDS[0];
    let events = Arc::new(generate(seed, &LATE_SHAPE));
    for spec in SPECS {
        let expected = oracle(&stamp_all(&events, 3, delay), spec);
        assert!(expected.late > 0, "{spec:?}: no late records to check");
        for workers in [1, 2] {
            for (name, trigger) in triggers() {
                let context = format!("{} trigger={name}", context(seed, spec, workers, 3, delay));
                let (rows, report) = run_triggered(&events, spec, workers, delay, trigger, false);
                let results: Vec<WindowResult<u64, Stats>> =
                    rows.into_iter().map(|row| row.result).collect();
                assert_stats_match(&context, &expected, &results);
                assert_eq!(report.late_dropped, expected.late, "{context}: late");
                assert_eq!(report.records_in, events.len() as u64, "{context}: read");
            }
        }
    }
}

/// In update mode, continuous mode emits early rows as the watermark moves; under `Once`, and
/// under an interval longer than the job, the watermark does not move before the input ends,
/// so only final rows leave (one per window, equal to the oracle).
///
/// One worker only: with two, once the sources finish, the frontier still steps through the
/// times of the records in flight between workers, and the windows those records fall into
/// get early rows then.
#[test]
fn held_watermark_emits_no_early_rows() {
    let delay = SHAPE.disorder;
    let seed = SEEDS[1];
    let events = Arc::new(generate(seed, &SHAPE));
    let spec = Spec::Tumbling { size: 1_000 };
    let expected = oracle(&stamp_all(&events, 3, delay), spec);
    let early = |rows: &[WindowUpdate<u64, Stats>]| {
        rows.iter()
            .filter(|row| row.kind == UpdateKind::Early)
            .count()
    };
    let (rows, _) = run_triggered(&events, spec, 1, delay, Trigger::Continuous, true);
    assert!(early(&rows) > 0, "continuous mode emitted no early rows");
    for (name, trigger) in [
        ("once", Trigger::Once),
        ("interval:1h", Trigger::Interval(Duration::from_secs(3_600))),
    ] {
        let (rows, _) = run_triggered(&events, spec, 1, delay, trigger, true);
        assert_eq!(early(&rows), 0, "trigger {name}");
        let results: Vec<WindowResult<u64, Stats>> =
            rows.into_iter().map(|row| row.result).collect();
        assert_stats_match(&format!("trigger {name}"), &expected, &results);
    }
}

//! Randomised window tests: every window kind, late records, allowed lateness, invertible
//! aggregates and the end of input, against the oracle on 1, 2 and 4 workers.

use super::*;

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

/// Stamps rounded down to a granularity that divides every window's size and slide and the
/// allowed lateness (`WatermarkStrategy::granularity`, what `tideflow run` uses for aligned
/// windows in append mode) change nothing: the same rows as the oracle of exact stamps, and the
/// same number of late records, on 1, 2 and 4 workers.
#[test]
fn granular_stamps_give_the_oracle_rows_and_late_counts_of_exact_ones() {
    let (delay, lateness) = (100, 400);
    for seed in SEEDS {
        let events = Arc::new(generate(seed, &LATE_SHAPE));
        for spec in SPECS {
            let (size, slide) = match spec {
                Spec::Tumbling { size } => (size, size),
                Spec::Sliding { size, slide } => (size, slide),
                Spec::Session { .. } => continue,
            };
            let granule = gcd(gcd(size, slide), lateness);
            for partitions in [1, 3] {
                let stamped = stamp_all(&events, partitions, delay);
                let expected = oracle_with_lateness(&stamped, spec, lateness);
                let context = format!(
                    "{} lateness={lateness}ms granularity={granule}ms",
                    context(seed, spec, 0, partitions, delay)
                );
                assert!(expected.late > 0, "{context}: no late records");
                for workers in WORKERS {
                    let context = format!("{context} workers={workers}");
                    let sink = MemorySink::new();
                    let output = sink.clone();
                    let events = Arc::clone(&events);
                    let window = spec.window();
                    let strategy = WatermarkStrategy::bounded_delay(Duration::from_millis(delay))
                        .with_granularity(Duration::from_millis(granule));
                    let report = tideflow::execute(Config::workers(workers), move |flow| {
                        flow.source(MemorySource::partitioned(Arc::clone(&events), partitions))
                            .with_event_time(|e: &Ev| e.ts)
                            .with_watermark(strategy)
                            .key_by(|e| e.key)
                            .window(window)
                            .allowed_lateness(Duration::from_millis(lateness))
                            .aggregate(stats_aggregator())
                            .sink(output.clone());
                        Ok(())
                    })
                    .expect("the job runs");
                    assert_stats_match(&context, &expected, &sink.take());
                    assert_eq!(
                        report.late_dropped, expected.late,
                        "{context}: late records"
                    );
                }
            }
        }
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
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
            // With several workers, each folds every record it read into a piece (late ones
            // too: lateness is decided on the key's worker), which the window merges once.
            let (added, pieces) = match workers {
                1 => (n - expected.late, 0),
                _ => (n, n),
            };
            assert_eq!(adds, added, "{context}: each record is added exactly once");
            assert!(retracts > 0, "{context}: windows slid without retracting");
            assert!(
                merges + retracts <= 3 * (n - expected.late) + pieces,
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

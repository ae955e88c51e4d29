//! Stateless operators against the same transformation on plain vectors.

use super::*;

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

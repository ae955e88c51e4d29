//! A user-defined aggregator on session windows, through the API and through the operator
//! with allowed lateness (where `merge` is reached).

use super::*;

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

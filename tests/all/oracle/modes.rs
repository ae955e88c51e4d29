//! Update and complete output modes against the oracle.
//!
//! An update-mode consumer upserts early and final rows on (key, start, end) and deletes on
//! retractions; once the input ends its table must hold exactly the append-mode results, which
//! the oracle predicts. Every window kind is run with late records, with allowed lateness, and on
//! 1, 2 and 4 workers, reading a few records at a time so that the watermark advances in many
//! steps and early rows and session retractions happen. Each window must end with exactly one
//! final row, and the complete-mode sink's last table must be the append-mode results.

use super::*;
use tideflow::sink::{CompleteSink, Sink, TableRow};
use tideflow::{UpdateKind, WindowUpdate};

// ---------------------------------------------------------------------------------------------
// Running update-mode jobs and folding their rows
// ---------------------------------------------------------------------------------------------

/// Records per source read: few, so that the watermark advances in many steps.
const READ_BATCH: usize = 5;

/// An update-mode row of the stats aggregator.
type Update = WindowUpdate<u64, Stats>;

/// A window of one key: (key, start, end).
type WindowId = (u64, u64, u64);

fn window_id<O>(result: &WindowResult<u64, O>) -> WindowId {
    (result.key, result.start, result.end)
}

/// How an update-mode job runs: partitions, watermark delay, window, allowed lateness, workers
/// and records per source read.
#[derive(Clone, Copy, Debug)]
struct UpdateJob {
    partitions: usize,
    delay: u64,
    spec: Spec,
    lateness: u64,
    workers: usize,
    read_batch: usize,
}

impl UpdateJob {
    /// No allowed lateness, [`READ_BATCH`] records per read.
    fn new(spec: Spec, workers: usize, partitions: usize, delay: u64) -> Self {
        UpdateJob {
            partitions,
            delay,
            spec,
            lateness: 0,
            workers,
            read_batch: READ_BATCH,
        }
    }

    fn describe(&self, seed: u64) -> String {
        let UpdateJob {
            partitions,
            delay,
            spec,
            lateness,
            workers,
            read_batch,
        } = *self;
        format!(
            "{} lateness={lateness}ms read_batch={read_batch}",
            context(seed, spec, workers, partitions, delay)
        )
    }
}

/// Runs `events` through `source -> event time -> watermark -> key_by -> window ->
/// aggregate_updates(stats)` into the sink `make_sink` builds on each worker.
fn execute_updates<S, M>(events: &Arc<Vec<Ev>>, job: UpdateJob, make_sink: M) -> JobReport
where
    S: Sink<Update>,
    M: Fn() -> S + Send + Sync + 'static,
{
    let events = Arc::clone(events);
    let window = job.spec.window();
    tideflow::execute(Config::workers(job.workers), move |flow| {
        let source = MemorySource::partitioned(Arc::clone(&events), job.partitions)
            .batch_size(job.read_batch);
        flow.source(source)
            .with_event_time(|e: &Ev| e.ts)
            .with_watermark(Duration::from_millis(job.delay))
            .key_by(|e| e.key)
            .window(window)
            .allowed_lateness(Duration::from_millis(job.lateness))
            .aggregate_updates(stats_aggregator())
            .sink(make_sink());
        Ok(())
    })
    .expect("the job runs")
}

/// The update-mode rows of `job` (each worker's in the order it emitted them) and its report.
fn run_updates(events: &Arc<Vec<Ev>>, job: UpdateJob) -> (Vec<Update>, JobReport) {
    let rows = MemorySink::new();
    let output = rows.clone();
    let report = execute_updates(events, job, move || output.clone());
    (rows.take(), report)
}

/// The complete-mode tables of `job`, written every `interval`, in the order written.
fn run_complete(
    events: &Arc<Vec<Ev>>,
    job: UpdateJob,
    interval: Duration,
) -> (Vec<TableRow<u64, Stats>>, JobReport) {
    let tables = MemorySink::new();
    let output = tables.clone();
    let report = execute_updates(events, job, move || {
        CompleteSink::new(interval, output.clone())
    });
    (tables.take(), report)
}

/// How many rows of each kind a job emitted.
#[derive(Clone, Copy, Debug, Default)]
struct KindCounts {
    early: u64,
    finals: u64,
    retracts: u64,
}

impl KindCounts {
    fn add(&mut self, other: KindCounts) {
        self.early += other.early;
        self.finals += other.finals;
        self.retracts += other.retracts;
    }
}

/// One window's entry in a consumer's table while rows are folded.
#[derive(Default)]
struct Folding {
    /// The upserted value; `None` before the first row and after a retraction.
    value: Option<Stats>,
    /// Whether the window's final row has been seen.
    closed: bool,
}

/// Folds update-mode rows as a consumer would (upsert early and final rows on (key, start,
/// end), delete on retractions) and returns the resulting table and the row counts. Rows of
/// one window must keep their emission order in `rows`; windows may interleave.
///
/// Panics with `context` unless, per window: no row follows its final row; a retraction deletes
/// a row that is in the table and carries its value; the count never goes down, and for aligned
/// windows (which never retract) every early row counts more records than the row before it;
/// and a window still in the table at the end has had its final row (so exactly one), while a
/// retracted one has had none.
fn fold_updates(
    context: &str,
    spec: Spec,
    rows: &[Update],
) -> (Vec<WindowResult<u64, Stats>>, KindCounts) {
    let aligned = !matches!(spec, Spec::Session { .. });
    let mut table: BTreeMap<WindowId, Folding> = BTreeMap::new();
    let mut counts = KindCounts::default();
    for row in rows {
        let id = window_id(&row.result);
        let value = &row.result.value;
        let entry = table.entry(id).or_default();
        assert!(
            !entry.closed,
            "{context}: {:?} row {value:?} for {id:?} after its final row",
            row.kind
        );
        let previous = entry.value.as_ref().map(|v| v.0);
        match row.kind {
            UpdateKind::Early | UpdateKind::Final => {
                let is_final = row.kind == UpdateKind::Final;
                if let Some(previous) = previous {
                    let grew = if aligned && !is_final {
                        value.0 > previous
                    } else {
                        value.0 >= previous
                    };
                    assert!(
                        grew,
                        "{context}: {:?} row for {id:?} counts {} records after {previous}",
                        row.kind, value.0
                    );
                }
                entry.value = Some(*value);
                entry.closed = is_final;
                if is_final {
                    counts.finals += 1;
                } else {
                    counts.early += 1;
                }
            }
            UpdateKind::Retract => {
                assert!(!aligned, "{context}: aligned window {id:?} retracted");
                assert_eq!(
                    entry.value.as_ref(),
                    Some(value),
                    "{context}: the retraction of {id:?} does not carry its last emitted value"
                );
                entry.value = None;
                counts.retracts += 1;
            }
        }
    }
    let mut results = Vec::new();
    for ((key, start, end), entry) in table {
        match (entry.value, entry.closed) {
            (Some(value), true) => results.push(WindowResult {
                key,
                start,
                end,
                value,
            }),
            (None, false) => {}
            (Some(value), false) => {
                panic!("{context}: ({key}, {start}, {end}) = {value:?} never got its final row")
            }
            (None, true) => unreachable!("a final row upserts"),
        }
    }
    (results, counts)
}

/// Runs `job` on `events` in update mode and checks the folded table and the late count against
/// `expected`. Returns the row counts.
fn check_update_case(
    describe: &str,
    events: &Arc<Vec<Ev>>,
    job: UpdateJob,
    expected: &Expected,
) -> KindCounts {
    let (rows, report) = run_updates(events, job);
    let (table, counts) = fold_updates(describe, job.spec, &rows);
    assert_stats_match(describe, expected, &table);
    assert_eq!(
        report.late_dropped, expected.late,
        "{describe}: late_dropped"
    );
    assert_eq!(
        report.records_in,
        events.len() as u64,
        "{describe}: records_in"
    );
    assert_eq!(
        report.records_out,
        rows.len() as u64,
        "{describe}: records_out"
    );
    counts
}

/// The (kind, count) sequence of `key`'s window `[start, end)` in `rows`.
fn window_rows(rows: &[Update], key: u64, start: u64, end: u64) -> Vec<(UpdateKind, u64)> {
    rows.iter()
        .filter(|row| window_id(&row.result) == (key, start, end))
        .map(|row| (row.kind, row.result.value.0))
        .collect()
}

/// Key-0 records at `times`, each with value 1.
fn key_zero_events(times: &[u64]) -> Arc<Vec<Ev>> {
    Arc::new(times.iter().map(|&t| ev(0, t, 1)).collect())
}

/// A job on one partition with watermark delay 0, one record per read, on one worker.
fn one_record_per_read(spec: Spec, lateness: u64) -> UpdateJob {
    UpdateJob {
        lateness,
        read_batch: 1,
        ..UpdateJob::new(spec, 1, 1, 0)
    }
}

// ---------------------------------------------------------------------------------------------
// Update mode against the oracle
// ---------------------------------------------------------------------------------------------

/// With late records (watermark delay 100 ms on the high-disorder shape), on 1 and 3 partitions
/// and 1, 2 and 4 workers, folding the
/// update-mode rows gives the oracle's windows, each window ends with exactly one final row, and
/// the late count is the oracle's. Every case emits early rows, sessions retract rows somewhere
/// in the suite, and aligned windows never do.
#[test]
fn update_rows_fold_to_the_oracle_with_late_records() {
    let delay = 100;
    let mut totals = [KindCounts::default(); SPECS.len()];
    for seed in SEEDS {
        let events = Arc::new(generate(seed, &LATE_SHAPE));
        for (spec_index, spec) in SPECS.into_iter().enumerate() {
            for partitions in [1, 3] {
                let expected = oracle(&stamp_all(&events, partitions, delay), spec);
                assert!(
                    expected.late > 0,
                    "{}: the oracle predicts no late records",
                    context(seed, spec, 0, partitions, delay)
                );
                for workers in WORKERS {
                    let job = UpdateJob::new(spec, workers, partitions, delay);
                    let describe = job.describe(seed);
                    let counts = check_update_case(&describe, &events, job, &expected);
                    assert!(counts.early > 0, "{describe}: no early rows");
                    totals[spec_index].add(counts);
                }
            }
        }
    }
    for (spec, counts) in SPECS.into_iter().zip(totals) {
        if let Spec::Session { .. } = spec {
            assert!(
                counts.retracts > 0,
                "window={spec:?}: no session was retracted in the whole suite ({counts:?})"
            );
        }
    }
}

/// One key, events at 1_000, 1_100 and 1_200 ms and then 5_000 ms, sessions with a 300 ms gap,
/// one record per read: the session is emitted early as [1_000, 1_300), retracted when it grows
/// to [1_000, 1_400) (emitted early in turn), and closes as [1_000, 1_500) with all three
/// records; the [1_000, 1_400) row is retracted just before that final row. The lone 5_000 ms session
/// only has its final row (the input ends before the watermark passes it).
///
/// With one record per read the watermark steps through 1_000, 1_100 and 1_200 ms, and sessions
/// apply a record only once the watermark has passed it, so the rows do not depend on when the
/// records themselves reach the window operator.
#[test]
fn growing_session_retracts_its_early_rows() {
    use UpdateKind::{Early, Final, Retract};
    let spec = Spec::Session { gap: 300 };
    let events = key_zero_events(&[1_000, 1_100, 1_200, 5_000]);
    let (rows, report) = run_updates(&events, one_record_per_read(spec, 0));
    let got: Vec<(UpdateKind, u64, u64, u64)> = rows
        .iter()
        .map(|row| {
            let r = &row.result;
            (row.kind, r.start, r.end, r.value.0)
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (Early, 1_000, 1_300, 1),
            (Retract, 1_000, 1_300, 1),
            (Early, 1_000, 1_400, 2),
            (Retract, 1_000, 1_400, 2),
            (Final, 1_000, 1_500, 3),
            (Final, 5_000, 5_300, 1),
        ]
    );
    assert!(rows.iter().all(|row| row.result.key == 0));
    let (table, _) = fold_updates("growing session", spec, &rows);
    let expected = oracle(&stamp_all(&events, 1, 0), spec);
    assert_stats_match("growing session", &expected, &table);
    assert_eq!(report.late_dropped, 0);
}

/// One key, tumbling 10 s windows, events at 1, 2, 3 and 12 s, one record per read on one
/// worker: window [0, 10 s) has early rows whose counts strictly increase up to 3, then its
/// final row with 3; window [10 s, 20 s) ends with its final row with 1, after early rows (if
/// any) with 1; no other window has rows.
///
/// The exact early rows are not asserted: which records an early row shows depends on how the
/// reads' records and the watermark steps interleave at the window operator (an early row shows
/// every record received so far, including those ahead of the watermark), which is a matter of
/// scheduling, not of the update-mode contract (on one worker it is repeatable, but it changes
/// with the operator's internals).
#[test]
fn tumbling_update_rows_match_hand_computed_sequence() {
    let spec = Spec::Tumbling { size: 10_000 };
    let events = key_zero_events(&[1_000, 2_000, 3_000, 12_000]);
    let (rows, report) = run_updates(&events, one_record_per_read(spec, 0));
    let assert_early_then_final = |start: u64, end: u64, max_early: u64, last: u64| {
        let sequence = window_rows(&rows, 0, start, end);
        let (final_row, early) = sequence.split_last().expect("the window has rows");
        assert_eq!(
            *final_row,
            (UpdateKind::Final, last),
            "rows of [{start}, {end}): {sequence:?}"
        );
        assert!(
            early.iter().all(|(kind, _)| *kind == UpdateKind::Early),
            "rows of [{start}, {end}): {sequence:?}"
        );
        assert!(
            early.windows(2).all(|pair| pair[0].1 < pair[1].1),
            "early counts of [{start}, {end}) do not strictly increase: {sequence:?}"
        );
        assert!(
            early.last().is_none_or(|row| row.1 == max_early),
            "the last early row of [{start}, {end}) does not count {max_early}: {sequence:?}"
        );
        sequence.len()
    };
    let first = assert_early_then_final(0, 10_000, 3, 3);
    let second = assert_early_then_final(10_000, 20_000, 1, 1);
    assert!(first > 1, "no early row for [0, 10 s): {rows:?}");
    assert_eq!(
        rows.len(),
        first + second,
        "rows for other windows: {rows:?}"
    );
    assert_eq!(report.records_out, rows.len() as u64);
}

// ---------------------------------------------------------------------------------------------
// Allowed lateness in update mode
// ---------------------------------------------------------------------------------------------

/// With 500 ms of allowed lateness (watermark delay 100 ms, high disorder), folding the
/// update-mode rows gives the oracle's windows with lateness, on every window kind, 1 and 3
/// partitions and 1, 2 and 4 workers; the late count is the oracle's, and the lateness accepts
/// records that would otherwise be late.
#[test]
fn update_rows_fold_to_the_oracle_with_allowed_lateness() {
    let (delay, lateness) = (100, 500);
    let seed = SEEDS[1];
    let events = Arc::new(generate(seed, &LATE_SHAPE));
    for spec in SPECS {
        for partitions in [1, 3] {
            let stamped = stamp_all(&events, partitions, delay);
            let expected = oracle_with_lateness(&stamped, spec, lateness);
            assert!(
                expected.late < oracle(&stamped, spec).late,
                "{}: lateness accepts no extra record",
                context(seed, spec, 0, partitions, delay)
            );
            for workers in WORKERS {
                let job = UpdateJob {
                    lateness,
                    ..UpdateJob::new(spec, workers, partitions, delay)
                };
                let describe = job.describe(seed);
                let counts = check_update_case(&describe, &events, job, &expected);
                assert!(counts.early > 0, "{describe}: no early rows");
            }
        }
    }
}

/// Tumbling 1 s windows with 1 s of allowed lateness, watermark delay 0, one record per read:
/// key 0 has a record at 100 ms, then key 1 moves the watermark to 1_500 and 1_600 ms (past the
/// end of [0, 1 s)), then key 0's record at 200 ms arrives, late but within the lateness, and
/// key 1's records at 1_700 and 1_800 ms move the watermark past it. Window [0, 1 s) of key 0
/// gets an early row with 1, a corrected early row with 2 after the watermark passed its end,
/// and its final row with 2.
#[test]
fn record_within_lateness_corrects_an_early_row() {
    let spec = Spec::Tumbling { size: 1_000 };
    let lateness = 1_000;
    let events = Arc::new(vec![
        ev(0, 100, 1),
        ev(1, 1_500, 1),
        ev(1, 1_600, 1),
        ev(0, 200, 1),
        ev(1, 1_700, 1),
        ev(1, 1_800, 1),
    ]);
    let (rows, report) = run_updates(&events, one_record_per_read(spec, lateness));
    assert_eq!(
        window_rows(&rows, 0, 0, 1_000),
        vec![
            (UpdateKind::Early, 1),
            (UpdateKind::Early, 2),
            (UpdateKind::Final, 2),
        ]
    );
    let (table, _) = fold_updates("correction", spec, &rows);
    let expected = oracle_with_lateness(&stamp_all(&events, 1, 0), spec, lateness);
    assert_eq!(expected.late, 0);
    assert_stats_match("correction", &expected, &table);
    assert_eq!(report.late_dropped, 0);
}

// ---------------------------------------------------------------------------------------------
// Complete mode
// ---------------------------------------------------------------------------------------------

/// The complete-mode sink (a table every millisecond) on every window kind and 1, 2 and 4
/// workers, with late records: tables are numbered 0, 1, 2, ... in the order written, hold each
/// (key, start, end) at most once, and every final row in any table is the oracle's; the last
/// table is exactly the oracle's windows, all final. The same with a zero interval, where a table
/// is written at every step that changed it, so that earlier tables with early rows are sure to
/// exist.
#[test]
fn complete_mode_last_table_matches_the_oracle() {
    let delay = 100;
    let partitions = 3;
    let seed = SEEDS[0];
    let events = Arc::new(generate(seed, &LATE_SHAPE));
    for spec in SPECS {
        let expected = oracle(&stamp_all(&events, partitions, delay), spec);
        let mut want: BTreeMap<WindowId, Stats> = BTreeMap::new();
        for window in &expected.windows {
            let id = (window.key, window.start, window.end);
            want.insert(id, expected_stats(&window.records));
        }
        for workers in WORKERS {
            for interval in [Duration::from_millis(1), Duration::ZERO] {
                let job = UpdateJob::new(spec, workers, partitions, delay);
                let describe = format!("{} interval={interval:?}", job.describe(seed));
                let (rows, report) = run_complete(&events, job, interval);
                assert_eq!(
                    report.late_dropped, expected.late,
                    "{describe}: late_dropped"
                );
                let mut tables: Vec<Vec<&TableRow<u64, Stats>>> = Vec::new();
                for row in &rows {
                    match row.batch as usize {
                        batch if batch == tables.len() => tables.push(vec![row]),
                        batch if batch + 1 == tables.len() => tables[batch].push(row),
                        batch => panic!(
                            "{describe}: a row of table {batch} after {} tables",
                            tables.len()
                        ),
                    }
                }
                for (batch, table) in tables.iter().enumerate() {
                    let ids: BTreeSet<WindowId> =
                        table.iter().map(|row| window_id(&row.result)).collect();
                    assert_eq!(
                        ids.len(),
                        table.len(),
                        "{describe}: table {batch} repeats a window"
                    );
                    for row in table.iter().filter(|row| row.is_final) {
                        let id = window_id(&row.result);
                        assert_eq!(
                            want.get(&id).map(|v| split_stats(id.0, id.1, id.2, v).0),
                            Some(split_stats(id.0, id.1, id.2, &row.result.value).0),
                            "{describe}: final row of table {batch} differs from the oracle"
                        );
                    }
                }
                let last = tables.last().expect("at least one table");
                assert!(
                    last.iter().all(|row| row.is_final),
                    "{describe}: the last table has rows that are not final"
                );
                let results: Vec<WindowResult<u64, Stats>> =
                    last.iter().map(|row| row.result.clone()).collect();
                assert_stats_match(&describe, &expected, &results);
                if interval.is_zero() {
                    let has_early =
                        |table: &Vec<&TableRow<u64, Stats>>| table.iter().any(|row| !row.is_final);
                    assert!(
                        tables.iter().any(has_early),
                        "{describe}: no table holds an early row"
                    );
                }
            }
        }
    }
}

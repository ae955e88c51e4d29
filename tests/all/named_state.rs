//! Named state through the Rust API: stateful operators have ids (their kind by default, or
//! the name the job gives them), state is reported under them, two operators cannot share one,
//! and a job resumes a snapshot only if its stateful operators are the snapshot's, id by id.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tideflow::aggregate::Count;
use tideflow::sink::MemorySink;
use tideflow::source::{MemorySource, Position, Source, SourceBatch, SourceStatus};
use tideflow::{Checkpoint, Config, Error, Flow, JobFingerprint, Stream, Window};

/// A replayable source of ticks `0, 1, 2, ...` (event time = tick, in ms), 16 per read, that
/// ends after `end` ticks, or (with `end` = `None`) stops the job with an error once its
/// checkpoint directory holds a complete snapshot: a stop that depends on no timing.
struct Ticks {
    next: u64,
    end: Option<u64>,
    checkpoint: PathBuf,
}

impl Source for Ticks {
    type Item = u64;

    fn read(&mut self, batch: &mut SourceBatch<u64>) -> Result<SourceStatus, Error> {
        if self.end.is_none() && has_complete_snapshot(&self.checkpoint) {
            return Err(Error::Config("the test stopped the job".into()));
        }
        for _ in 0..16 {
            if self.end.is_some_and(|end| self.next >= end) {
                return Ok(SourceStatus::Done);
            }
            let position = Position {
                offset: self.next,
                line: 0,
            };
            batch.push_at(0, self.next, position);
            self.next += 1;
        }
        Ok(SourceStatus::Ready)
    }
    fn replayable(&self) -> bool {
        true
    }
    fn position(&self, _partition: usize) -> Position {
        Position {
            offset: self.next,
            line: 0,
        }
    }
    fn seek(&mut self, _partition: usize, position: Position) -> Result<(), Error> {
        self.next = position.offset;
        Ok(())
    }
}

/// Whether `dir` holds a snapshot with a manifest.
fn has_complete_snapshot(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries.flatten().any(|entry| {
            entry.file_name().to_string_lossy().starts_with("snapshot-")
                && entry.path().join("MANIFEST.json").exists()
        })
    })
}

/// The job graphs under test.
#[derive(Clone, Copy, Debug)]
enum Graph {
    /// A tumbling window (default id `tumbling`) and a running aggregate named `totals`.
    Original,
    /// The running aggregate only.
    WithoutWindow,
    /// The running aggregate renamed `sums`.
    Renamed,
    /// A session window named `tumbling` in place of the tumbling window.
    OtherKind,
}

fn build(graph: Graph, flow: &mut Flow<'_>, ticks: Ticks) {
    let ticks: Stream<'_, u64> = flow
        .source(ticks)
        .with_event_time(|tick| *tick)
        .with_watermark(Duration::ZERO);
    let window = match graph {
        Graph::WithoutWindow => None,
        Graph::OtherKind => Some(Window::session(Duration::from_millis(5)).map(|w| (w, true))),
        _ => Some(Window::tumbling(Duration::from_millis(100)).map(|w| (w, false))),
    };
    if let Some(window) = window {
        let (window, renamed) = window.expect("a window");
        let windowed = ticks.clone().key_by(|tick| tick % 4).window(window);
        let windowed = if renamed {
            windowed.named("tumbling")
        } else {
            windowed
        };
        windowed.aggregate(Count).sink(MemorySink::new());
    }
    let name = match graph {
        Graph::Renamed => "sums",
        _ => "totals",
    };
    ticks
        .key_by(|tick| tick % 3)
        .named(name)
        .running_aggregate(Count)
        .sink(MemorySink::new());
}

fn run(graph: Graph, checkpoint: &Path, end: Option<u64>) -> Result<tideflow::JobReport, Error> {
    run_described(graph, checkpoint, end, JobFingerprint::new())
}

/// [`run`], with the job described by `job`.
fn run_described(
    graph: Graph,
    checkpoint: &Path,
    end: Option<u64>,
    job: JobFingerprint,
) -> Result<tideflow::JobReport, Error> {
    let config = Config::default().checkpoint(Checkpoint {
        interval: Duration::from_millis(1),
        ..Checkpoint::new(checkpoint).job(job)
    });
    let dir = checkpoint.to_path_buf();
    tideflow::execute(config, move |flow| {
        let ticks = Ticks {
            next: 0,
            end,
            checkpoint: dir.clone(),
        };
        build(graph, flow, ticks);
        Ok(())
    })
}

#[test]
fn a_snapshot_resumes_only_into_a_job_with_the_same_stateful_operators() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let checkpoint = dir.path().join("checkpoint");
    let stopped = run(Graph::Original, &checkpoint, None).expect_err("the source stops the job");
    assert!(
        stopped.to_string().contains("the test stopped the job"),
        "{stopped}"
    );

    let expect_refused = |graph: Graph, problems: &[&str]| {
        let error = run(graph, &checkpoint, Some(1_000_000))
            .expect_err("a changed job does not resume the snapshot");
        let message = error.to_string();
        assert!(matches!(error, Error::Snapshot(_)), "{graph:?}: {message}");
        assert!(
            message.contains("/snapshot-"),
            "{graph:?} names no snapshot: {message}"
        );
        for problem in problems {
            assert!(message.contains(problem), "{graph:?}: {message}");
        }
    };
    expect_refused(
        Graph::WithoutWindow,
        &[r#"the job has no operator "tumbling" that the snapshot holds state for"#],
    );
    expect_refused(
        Graph::Renamed,
        &[
            r#"the job has no operator "totals" that the snapshot holds state for"#,
            r#"operator "sums" is new: the snapshot holds no state for it"#,
        ],
    );
    expect_refused(
        Graph::OtherKind,
        &[
            r#"operator "tumbling" is a session operator in the job and a tumbling operator in the snapshot"#,
        ],
    );

    // The refused runs left the snapshot as it was: the job as it was resumes from it.
    let report = run(Graph::Original, &checkpoint, Some(20_000)).expect("the same job resumes");
    assert!(report.snapshots.resumed_from.is_some(), "{report:?}");
}

/// The fingerprint of a job whose windows are `size` long.
fn windows_of(size: &str) -> JobFingerprint {
    JobFingerprint::new()
        .field("input", "ticks")
        .field("window", size)
        .field("aggregate", "count")
}

/// A checkpoint directory (in a temporary directory, kept while it lives) holding a snapshot of
/// the original job described by `job`, stopped mid-way.
fn stopped_with(job: JobFingerprint) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let checkpoint = dir.path().join("checkpoint");
    run_described(Graph::Original, &checkpoint, None, job).expect_err("the source stops the job");
    (dir, checkpoint)
}

#[test]
fn a_snapshot_resumes_only_into_a_job_with_the_same_fingerprint() {
    let (_dir, checkpoint) = stopped_with(windows_of("100ms"));
    let execution = || std::fs::read(checkpoint.join("EXECUTION")).expect("an execution number");

    let refused = |job: JobFingerprint, expected: &str| {
        let before = execution();
        let error = run_described(Graph::Original, &checkpoint, Some(1_000_000), job)
            .expect_err("a job that differs does not resume the snapshot");
        assert!(matches!(error, Error::Snapshot(_)), "{error}");
        let message = error.to_string();
        let start = format!(
            "snapshot: {} was written by a different job: ",
            checkpoint.display()
        );
        assert!(message.starts_with(&start), "{message}");
        assert!(message.contains(expected), "{message}");
        // Refused before the directory is taken over: a run still writing there goes on.
        assert_eq!(execution(), before);
    };
    refused(windows_of("1s"), "window 100ms then, 1s now");
    refused(
        windows_of("100ms")
            .field("aggregate", "sum")
            .field("key", "tick % 4"),
        "aggregate count then, sum now; key (none) then, tick % 4 now",
    );
    // A job that gives no fingerprint cannot show it is the same job.
    refused(JobFingerprint::new(), "input ticks then, (none) now");

    let report = run_described(
        Graph::Original,
        &checkpoint,
        Some(20_000),
        windows_of("100ms"),
    )
    .expect("the same job resumes");
    assert!(report.snapshots.resumed_from.is_some(), "{report:?}");
    // Complete now: a job that differs is still refused, not told there is nothing to do.
    refused(windows_of("1s"), "window 100ms then, 1s now");
    let report = run_described(
        Graph::Original,
        &checkpoint,
        Some(20_000),
        windows_of("100ms"),
    )
    .expect("the same job finds it complete");
    assert!(report.snapshots.already_complete, "{report:?}");
}

#[test]
fn a_version_2_manifest_resumes_only_into_a_job_without_a_fingerprint() {
    let (_dir, checkpoint) = stopped_with(windows_of("100ms"));
    // The manifests as a tideflow before version 3 wrote them: no fingerprint.
    let mut rewritten = 0;
    for entry in std::fs::read_dir(&checkpoint)
        .expect("the checkpoint")
        .flatten()
    {
        let manifest = entry.path().join("MANIFEST.json");
        let Ok(bytes) = std::fs::read(&manifest) else {
            continue;
        };
        let mut json: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON");
        assert_eq!(json["version"], 3);
        assert!(json["job"].is_array(), "{json}");
        json["version"] = 2.into();
        json.as_object_mut().expect("an object").remove("job");
        std::fs::write(&manifest, serde_json::to_vec(&json).expect("JSON")).expect("written");
        rewritten += 1;
    }
    assert!(rewritten > 0);
    // A job that gives a fingerprint cannot be shown to be the one that wrote it.
    let refused = run_described(
        Graph::Original,
        &checkpoint,
        Some(20_000),
        windows_of("100ms"),
    )
    .expect_err("refused");
    assert!(
        refused.to_string().contains("without a job fingerprint"),
        "{refused}"
    );
    // One that gives none resumes it, checked by its stateful operators.
    let report = run_described(
        Graph::Original,
        &checkpoint,
        Some(20_000),
        JobFingerprint::new(),
    )
    .expect("a version 2 snapshot resumes");
    assert!(report.snapshots.resumed_from.is_some(), "{report:?}");
}

#[test]
fn two_operators_with_one_id_are_refused() {
    let run = |name: &'static str| {
        tideflow::execute(Config::default(), move |flow| {
            let words = flow
                .source(MemorySource::new(vec![("a".to_string(), 1u64)]))
                .with_event_time(|(_, t)| *t)
                .with_watermark(Duration::ZERO)
                .into_keyed();
            words
                .into_stream()
                .into_keyed()
                .window(Window::tumbling(Duration::from_secs(1))?)
                .aggregate(Count)
                .sink(MemorySink::new());
            flow.source(MemorySource::new(vec![("b".to_string(), 2u64)]))
                .with_event_time(|(_, t)| *t)
                .with_watermark(Duration::ZERO)
                .into_keyed()
                .named(name)
                .running_aggregate(Count)
                .sink(MemorySink::new());
            Ok(())
        })
    };
    // A name given to one operator and taken by default by another.
    let error = run("tumbling").expect_err("one id, two operators");
    assert!(matches!(error, Error::Config(_)), "{error}");
    assert!(
        error
            .to_string()
            .contains(r#"two stateful operators are named "tumbling""#),
        "{error}"
    );
    let error = run("").expect_err("an empty name");
    assert!(error.to_string().contains("name is empty"), "{error}");
    run("per-word").expect("distinct ids");
}

#[test]
fn a_named_operator_reports_its_state_under_its_name() {
    let sales = [("tea", 1_000u64), ("jam", 1_500), ("tea", 2_500)]
        .into_iter()
        .map(|(item, t)| (item.to_string(), t))
        .collect::<Vec<_>>();
    let report = tideflow::execute(Config::workers(2), move |flow| {
        let sales = flow
            .source(MemorySource::new(sales.clone()))
            .with_event_time(|(_, t)| *t)
            .with_watermark(Duration::ZERO);
        for name in [Some("sales-per-second"), None] {
            let windowed = sales
                .clone()
                .into_keyed()
                .window(Window::tumbling(Duration::from_secs(1))?);
            let windowed = match name {
                Some(name) => windowed.named(name),
                None => windowed,
            };
            windowed.aggregate(Count).sink(MemorySink::new());
        }
        sales
            .into_keyed()
            .dedup_within(Duration::from_secs(5))
            .sink(MemorySink::new());
        Ok(())
    })
    .expect("the job runs");
    let names: Vec<&str> = report.state.keys().map(String::as_str).collect();
    // Default ids count every operator of the kind, named or not: naming one operator does not
    // renumber the others.
    assert_eq!(names, vec!["dedup", "sales-per-second", "tumbling#2"]);
    assert!(report.state["sales-per-second"].peak > 0);
}

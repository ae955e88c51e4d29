//! The two-phase-commit protocol through the API: a committing sink written only here records
//! every `pre_commit`, `commit`, `recover` and `abort` into shared memory (its "external
//! system"). A job with snapshots is stopped by its source after a snapshot committed, then run
//! again in the same process; the calls must follow the protocol and the committed rows must be
//! the uninterrupted output, each exactly once.
//!
//! No wall-clock assumption: the source fails only once it sees that the sink committed (an
//! observable condition), and until then it sleeps longer than the snapshot interval before
//! each read, so a snapshot is due at every poll and the input cannot run out first.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tideflow::sink::{
    CommitContext, Committer, MemorySink, Parallelism, Prepared, Recovered, Sink,
};
use tideflow::source::MemorySource;
use tideflow::{Checkpoint, Config, Error, Event, Flow};

use crate::support::{Gate, Gated, ReadGate};

/// Records in the input.
const RECORDS: u64 = 4_000;

/// One protocol call, as the sink and its committer saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Call {
    PreCommit { epoch: u64 },
    Commit { epoch: u64 },
    Recover { epoch: Option<u64>, execution: u64 },
    Abort { execution: u64 },
}

/// The shared memory the sink commits to: every call, with the run (1, 2...) it happened in,
/// and the external system's state.
#[derive(Default)]
struct Log {
    run: u64,
    calls: Vec<(u64, Call)>,
    /// Rows staged by a pre-commit and not yet committed, by epoch.
    prepared: BTreeMap<u64, Vec<u64>>,
    /// Committed (visible) rows, by epoch.
    committed: BTreeMap<u64, Vec<u64>>,
    /// Epochs discarded by `abort`.
    aborted: Vec<u64>,
}

#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Log>>);

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Log> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn call(&self, call: Call) {
        let mut log = self.lock();
        let run = log.run;
        log.calls.push((run, call));
    }
}

fn encode(rows: &[u64]) -> Vec<u8> {
    rows.iter().flat_map(|row| row.to_le_bytes()).collect()
}

fn decode(bytes: &[u8]) -> Vec<u64> {
    bytes
        .chunks_exact(8)
        .map(|chunk| u64::from_le_bytes(chunk.try_into().expect("8 bytes")))
        .collect()
}

/// The sink: stages rows, pre-commits them into the external system's `prepared` area.
struct RecordingSink {
    shared: Shared,
    staged: Vec<u64>,
}

impl Sink<u64> for RecordingSink {
    fn write(&mut self, batch: &mut Vec<Event<u64>>) -> Result<(), Error> {
        self.staged.extend(batch.drain(..).map(|event| event.data));
        Ok(())
    }

    fn parallelism(&self) -> Parallelism {
        Parallelism::Single
    }

    fn committer(&mut self) -> Option<Box<dyn Committer>> {
        Some(Box::new(RecordingCommitter {
            shared: self.shared.clone(),
        }))
    }

    fn pre_commit(&mut self, epoch: u64) -> Result<Vec<u8>, Error> {
        let rows = std::mem::take(&mut self.staged);
        self.shared.call(Call::PreCommit { epoch });
        self.shared.lock().prepared.insert(epoch, rows.clone());
        Ok(encode(&rows))
    }
}

/// The committer: moves prepared rows to `committed`, once per epoch.
struct RecordingCommitter {
    shared: Shared,
}

impl RecordingCommitter {
    fn publish(&self, epoch: u64, prepared: &[u8]) {
        let mut log = self.shared.lock();
        log.prepared.remove(&epoch);
        log.committed
            .entry(epoch)
            .or_insert_with(|| decode(prepared));
    }
}

impl Committer for RecordingCommitter {
    fn commit(
        &mut self,
        epoch: u64,
        prepared: &[u8],
        _context: &CommitContext<'_>,
    ) -> Result<(), Error> {
        self.shared.call(Call::Commit { epoch });
        self.publish(epoch, prepared);
        Ok(())
    }

    fn recover(
        &mut self,
        committed: Option<Prepared<'_>>,
        context: &CommitContext<'_>,
    ) -> Result<Recovered, Error> {
        self.shared.call(Call::Recover {
            epoch: committed.map(|p| p.epoch),
            execution: context.execution(),
        });
        if let Some(prepared) = committed {
            self.publish(prepared.epoch, prepared.bytes);
        }
        let log = self.shared.lock();
        Ok(Recovered {
            epoch: log.committed.keys().next_back().copied().unwrap_or(0),
            resumed: !log.committed.is_empty(),
        })
    }

    fn abort(&mut self, context: &CommitContext<'_>) -> Result<(), Error> {
        self.shared.call(Call::Abort {
            execution: context.execution(),
        });
        let mut log = self.shared.lock();
        let pending: Vec<u64> = std::mem::take(&mut log.prepared).into_keys().collect();
        log.aborted.extend(pending);
        Ok(())
    }
}

/// Stops the job, when told, once the sink has committed a snapshot; until then it sleeps
/// before each read.
struct StopAfterCommit {
    shared: Shared,
    stop: bool,
}

impl ReadGate for StopAfterCommit {
    fn before_read(&mut self) -> Gate {
        if self.stop {
            if !self.shared.lock().committed.is_empty() {
                return Gate::Stop;
            }
            // Longer than the snapshot interval: a snapshot is due at every poll.
            std::thread::sleep(Duration::from_millis(3));
        }
        Gate::Read
    }
}

/// The test's source: its input behind a [`StopAfterCommit`] gate.
type Input = Gated<MemorySource<u64>, StopAfterCommit>;

fn input() -> Arc<Vec<u64>> {
    Arc::new((0..RECORDS).collect())
}

/// The job: `n -> 3n + 1` on 2 workers, written to `sink`.
fn build<S: Sink<u64>>(flow: &mut Flow<'_>, source: Input, sink: S) -> Result<(), Error> {
    flow.source(source)
        .with_event_time(|n: &u64| *n)
        .with_watermark(Duration::ZERO)
        .map(|n| 3 * n + 1)
        .sink(sink);
    Ok(())
}

fn source(shared: &Shared, stop: bool) -> Input {
    Gated {
        inner: MemorySource::partitioned(input(), 2).batch_size(8),
        gate: StopAfterCommit {
            shared: shared.clone(),
            stop,
        },
    }
}

/// Runs the job with snapshots in `dir`; `stop` makes the source stop it after a commit.
fn run(shared: &Shared, dir: &std::path::Path, stop: bool) -> Result<tideflow::JobReport, Error> {
    shared.lock().run += 1;
    let checkpoint = Checkpoint {
        interval: Duration::from_millis(1),
        ..Checkpoint::new(dir)
    };
    let job = shared.clone();
    tideflow::execute(Config::workers(2).checkpoint(checkpoint), move |flow| {
        let sink = RecordingSink {
            shared: job.clone(),
            staged: Vec::new(),
        };
        build(flow, source(&job, stop), sink)
    })
}

#[test]
fn a_two_phase_commit_sink_is_driven_by_the_protocol_across_a_stop_and_resume() {
    // The uninterrupted output.
    let unused = Shared::default();
    let memory = MemorySink::new();
    let output = memory.clone();
    tideflow::execute(Config::workers(2), move |flow| {
        build(flow, source(&unused, false), output.clone())
    })
    .expect("the uninterrupted run");
    let mut expected = memory.take();
    expected.sort_unstable();
    assert_eq!(expected.len() as u64, RECORDS);

    let dir = tempfile::tempdir().expect("a temporary directory");
    let shared = Shared::default();
    let stopped = run(&shared, dir.path(), true).expect_err("the source stops the first run");
    assert!(
        stopped.to_string().contains("the test stopped the job"),
        "{stopped}"
    );
    let first_commits: Vec<u64> = shared.lock().committed.keys().copied().collect();
    let last_committed = *first_commits.last().expect("a commit before the stop");

    let report = run(&shared, dir.path(), false).expect("the second run");
    assert_eq!(report.snapshots.resumed_from, Some(last_committed));

    let log = shared.lock();
    // Commit only after a pre-commit of the same epoch in the same run; each epoch once.
    let mut committed_epochs = Vec::new();
    for (index, (run, call)) in log.calls.iter().enumerate() {
        if let Call::Commit { epoch } = call {
            assert!(
                log.calls[..index].contains(&(*run, Call::PreCommit { epoch: *epoch })),
                "commit of epoch {epoch} in run {run} without its pre-commit: {:?}",
                log.calls
            );
            committed_epochs.push(*epoch);
        }
    }
    let mut unique = committed_epochs.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(
        unique.len(),
        committed_epochs.len(),
        "an epoch committed twice: {:?}",
        log.calls
    );
    assert!(
        committed_epochs.windows(2).all(|pair| pair[0] < pair[1]),
        "commits out of epoch order: {committed_epochs:?}"
    );
    // The first run never recovers; the restart recovers first, with the last committed
    // epoch and its own execution number, then aborts what the first run left pending.
    let second: Vec<&Call> = log
        .calls
        .iter()
        .filter(|(run, _)| *run == 2)
        .map(|(_, call)| call)
        .collect();
    assert_eq!(
        log.calls
            .iter()
            .filter(|(run, _)| *run == 1)
            .find(|(_, c)| { matches!(c, Call::Recover { .. } | Call::Abort { .. }) }),
        Some(&(
            1,
            Call::Recover {
                epoch: None,
                execution: 1
            }
        )),
        "the first run recovers with nothing committed"
    );
    assert_eq!(
        &second[..2],
        &[
            &Call::Recover {
                epoch: Some(last_committed),
                execution: 2
            },
            &Call::Abort { execution: 2 },
        ],
        "{:?}",
        log.calls
    );
    // Every epoch the first run pre-committed after its last commit was aborted, none of
    // those was committed.
    let pending: Vec<u64> = log
        .calls
        .iter()
        .filter_map(|(run, call)| match call {
            Call::PreCommit { epoch } if *run == 1 && *epoch > last_committed => Some(*epoch),
            _ => None,
        })
        .collect();
    assert_eq!(log.aborted, pending);
    assert!(pending
        .iter()
        .all(|epoch| !log.committed.contains_key(epoch)));
    // The final snapshot committed the rest; nothing is left prepared.
    assert_eq!(log.committed.keys().next_back(), Some(&u64::MAX));
    assert!(log.prepared.is_empty(), "{:?}", log.prepared.keys());
    // The union of committed rows is the uninterrupted output, each row once.
    let mut rows: Vec<u64> = log.committed.values().flatten().copied().collect();
    rows.sort_unstable();
    assert_eq!(rows, expected);
}

/// The recording sink, asking to run on every worker.
struct PerWorkerCommitting(RecordingSink);

impl Sink<u64> for PerWorkerCommitting {
    fn write(&mut self, batch: &mut Vec<Event<u64>>) -> Result<(), Error> {
        self.0.write(batch)
    }

    fn committer(&mut self) -> Option<Box<dyn Committer>> {
        self.0.committer()
    }
}

#[test]
fn a_per_worker_sink_with_a_committer_is_refused_not_silently_at_least_once() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let shared = Shared::default();
    let job = shared.clone();
    let config = Config::workers(2).checkpoint(Checkpoint::new(dir.path()));
    let error = tideflow::execute(config, move |flow| {
        let sink = PerWorkerCommitting(RecordingSink {
            shared: job.clone(),
            staged: Vec::new(),
        });
        build(flow, source(&job, false), sink)
    })
    .expect_err("a per-worker committing sink is refused");
    assert!(
        error.to_string().contains("must be Parallelism::Single"),
        "{error}"
    );
    assert!(shared.lock().committed.is_empty(), "nothing was committed");
}

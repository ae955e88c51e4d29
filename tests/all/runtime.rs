//! How jobs end: a failing source or a panicking closure stops every worker, returns an error
//! and never hangs; a cluster job that loses a peer leaves nothing behind for the next job in
//! the same process.

use std::process::Command;
use std::time::Duration;

use tideflow::sink::MemorySink;
use tideflow::source::{MemorySource, Source, SourceBatch, SourceStatus};
use tideflow::{Cluster, Config, Error, ErrorKind, Window};

/// Emits 0..n on every call, then fails.
struct FailingSource {
    next: u64,
    fail_at: u64,
}

impl Source for FailingSource {
    type Item = u64;
    fn read(&mut self, batch: &mut SourceBatch<u64>) -> Result<SourceStatus, Error> {
        if self.next == self.fail_at {
            return Err(Error::Input {
                path: "numbers".into(),
                line: self.next,
                reason: "bad number".into(),
            });
        }
        batch.push(0, self.next);
        self.next += 1;
        Ok(SourceStatus::Ready)
    }
}

#[test]
fn a_source_error_stops_every_worker_without_closing_windows() {
    for workers in [1, 2, 4] {
        let sink = MemorySink::new();
        let output = sink.clone();
        let result = tideflow::execute(Config::workers(workers), move |flow| {
            flow.source(FailingSource {
                next: 0,
                fail_at: 500,
            })
            .with_event_time(|n| *n)
            .with_watermark(Duration::ZERO)
            .key_by(|n| n % 3)
            .window(Window::tumbling(Duration::from_secs(10))?)
            .aggregate(tideflow::aggregate::Count)
            .sink(output.clone());
            Ok(())
        });
        let error = result.expect_err("the source fails");
        assert_eq!(error.kind(), ErrorKind::User, "{workers} workers: {error}");
        assert_eq!(error.to_string(), "numbers:500: bad number");
        // The open window [0, 10s) was not flushed as if the input had ended.
        assert!(
            sink.is_empty(),
            "{workers} workers: rows written after a failure"
        );
    }
}

/// Runs a job on `workers` workers whose closure panics on record 7777, and checks the error.
fn check_a_panicking_closure(workers: usize) {
    let result = tideflow::execute(Config::workers(workers), |flow| {
        flow.source(MemorySource::partitioned(
            (0..10_000u64).collect::<Vec<_>>(),
            4,
        ))
        .with_event_time(|n| *n)
        .with_watermark(Duration::ZERO)
        .map(|n| {
            if n == 7_777 {
                panic!("user code failed on {n}")
            } else {
                n
            }
        })
        .sink(MemorySink::new());
        Ok(())
    });
    let error = result.expect_err("the closure panics");
    assert_eq!(
        error.kind(),
        ErrorKind::Internal,
        "{workers} workers: {error}"
    );
    assert!(
        error.to_string().contains("user code failed on 7777"),
        "{error}"
    );
}

#[test]
fn a_panicking_closure_is_an_internal_error_not_a_hang() {
    for workers in [1, 2] {
        check_a_panicking_closure(workers);
    }
}

/// A [`FailingSource`], or without one a source that never has input and never ends: only
/// an error stops a job that reads it.
struct FailingOrEndless(Option<FailingSource>);

impl Source for FailingOrEndless {
    type Item = u64;
    fn read(&mut self, batch: &mut SourceBatch<u64>) -> Result<SourceStatus, Error> {
        match &mut self.0 {
            Some(failing) => failing.read(batch),
            None => Ok(SourceStatus::Wait(Duration::from_millis(5))),
        }
    }
}

/// Set in the child process that runs the lost-peer scenario alone (panic hooks are
/// process-wide: the scenario must not share its process with other tests).
const LOST_PEER_CHILD: &str = "TIDEFLOW_TEST_LOST_PEER_CHILD";

/// In one process: two cluster jobs act as the 2 processes of a cluster, and process 1 stops
/// on its own error, so process 0 loses its peer; then an ordinary job runs to completion;
/// then a job whose closure panics.
fn a_job_after_a_lost_peer() {
    let hosts: Vec<String> = crate::support::free_hosts()
        .split(',')
        .map(str::to_string)
        .collect();
    let processes: Vec<_> = (0..2)
        .map(|process| {
            let cluster = Cluster::new(process, hosts.clone(), "lost-peer", "s3cret");
            std::thread::spawn(move || {
                let config = Config {
                    workers: 2,
                    cluster: Some(cluster),
                    ..Config::default()
                };
                tideflow::execute(config, move |flow| {
                    // Process 1 fails at record 500; process 0 never ends on its own.
                    let failing = (process == 1).then_some(FailingSource {
                        next: 0,
                        fail_at: 500,
                    });
                    flow.source(FailingOrEndless(failing))
                        .with_event_time(|n| *n)
                        .with_watermark(Duration::ZERO)
                        .key_by(|n| n % 3)
                        .window(Window::tumbling(Duration::from_secs(10))?)
                        .aggregate(tideflow::aggregate::Count)
                        .sink(MemorySink::new());
                    Ok(())
                })
            })
        })
        .collect();
    let results: Vec<_> = processes
        .into_iter()
        .map(|process| process.join().expect("a process's thread"))
        .collect();
    let failed = results[1].as_ref().expect_err("process 1 fails");
    assert_eq!(failed.to_string(), "numbers:500: bad number");
    let lost = results[0].as_ref().expect_err("process 0 loses its peer");
    assert!(
        matches!(lost, Error::Cluster(_)) && lost.to_string().contains("lost process 1"),
        "{lost}"
    );

    // The next job in this process knows nothing of that cluster's lost peer.
    let sink = MemorySink::new();
    let output = sink.clone();
    let report = tideflow::execute(Config::workers(2), move |flow| {
        flow.source(MemorySource::new((0..1_000u64).collect::<Vec<_>>()))
            .with_event_time(|n| *n)
            .with_watermark(Duration::ZERO)
            .key_by(|n| n % 2)
            .window(Window::tumbling(Duration::from_millis(500))?)
            .aggregate(tideflow::aggregate::Count)
            .sink(output.clone());
        Ok(())
    })
    .expect("a job after the cluster job runs");
    let mut rows: Vec<(u64, u64, u64)> = sink
        .take()
        .into_iter()
        .map(|row| (row.key, row.start, row.value))
        .collect();
    rows.sort();
    assert_eq!(
        rows,
        vec![(0, 0, 250), (0, 500, 250), (1, 0, 250), (1, 500, 250)]
    );
    assert_eq!(report.records_in, 1_000);

    // And a panic after that is a panic as before (the parent checks that it was printed).
    check_a_panicking_closure(2);
}

#[test]
fn a_job_after_a_cluster_job_that_lost_a_peer_runs_and_later_panics_print() {
    if std::env::var_os(LOST_PEER_CHILD).is_some() {
        a_job_after_a_lost_peer();
        return;
    }
    let module = module_path!()
        .split_once("::")
        .map_or("", |(_, module)| module);
    let name =
        format!("{module}::a_job_after_a_cluster_job_that_lost_a_peer_runs_and_later_panics_print");
    let out = Command::new(std::env::current_exe().expect("the test binary"))
        .args([&name, "--exact", "--nocapture", "--test-threads", "1"])
        .env(LOST_PEER_CHILD, "1")
        .output()
        .expect("the test binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "the scenario failed:\n{stdout}\n{stderr}"
    );
    // The panicking closure's panic reached the process's own panic hook, which printed it...
    assert!(
        stderr.contains("panicked") && stderr.contains("user code failed on 7777"),
        "{stderr}"
    );
    // ... while the panics of the network threads and the poisoned queues of the lost peer
    // were not news.
    assert!(
        !stderr.contains("timely communication error") && !stderr.contains("poisoned"),
        "{stderr}"
    );
}

#[test]
fn a_build_error_is_returned_before_anything_runs() {
    let result = tideflow::execute(Config::workers(2), |flow| {
        flow.source(MemorySource::new(vec![1u64]))
            .with_event_time(|n| *n)
            .with_watermark(Duration::ZERO)
            .key_by(|n| *n)
            .window(Window::tumbling(Duration::ZERO)?)
            .aggregate(tideflow::aggregate::Count)
            .sink(MemorySink::new());
        Ok(())
    });
    let error = result.expect_err("a zero-sized window is refused");
    assert_eq!(error.kind(), ErrorKind::User, "{error}");
    assert!(
        error
            .to_string()
            .contains("tumbling window size must be at least 1ms"),
        "{error}"
    );
}

/// A graceful stop counts a source instance whose input already ended as stopped: a rate
/// source with one partition on two workers leaves worker 1 with nothing to read (it ends at
/// once), and the stop still takes effect.
#[test]
fn a_graceful_stop_counts_source_instances_that_already_ended() {
    use tideflow::source::{RateRecord, RateSource};
    let config = Config::workers(2);
    let stop = config.stop_handle();
    let sink = MemorySink::new();
    let rows = sink.clone();
    let watcher = std::thread::spawn(move || {
        while rows.len() < 10 {
            std::thread::sleep(Duration::from_millis(5));
        }
        stop.stop();
    });
    let report = tideflow::execute(config, move |flow| {
        flow.source(RateSource::new(1_000).partitions(1))
            .with_event_time(|r: &RateRecord| r.ts)
            .with_watermark(Duration::ZERO)
            .sink(sink.clone());
        Ok(())
    })
    .unwrap();
    watcher.join().unwrap();
    assert!(report.stopped);
}

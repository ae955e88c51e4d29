//! One view of a cluster job (docs/CLUSTER.md "One view of the job"): two cluster jobs in
//! this process act as the 2 processes of a cluster; process 0's progress reports hold both
//! processes' figures and their totals, and when the job ends by itself its final report holds
//! every process's final figures, whether or not the others report progress themselves. And
//! processes that differ in whether they report progress still run one job.

use std::sync::mpsc::Receiver;
use std::time::Duration;

use tideflow::aggregate::Count;
use tideflow::sink::MemorySink;
use tideflow::source::MemorySource;
use tideflow::{Cluster, Config, Figures, Progress, Window};

/// Runs 2 processes x 2 workers of a keyed tumbling count over 4000 records (16 partitions),
/// process P with progress reports if `reports[P]`; returns each process's reports.
fn run_cluster(reports: [bool; 2]) -> (Vec<Progress>, Vec<Progress>) {
    let hosts: Vec<String> = crate::support::free_hosts()
        .split(',')
        .map(str::to_string)
        .collect();
    let records: Vec<(u64, u64)> = (0..4_000u64).map(|i| (i % 37, i * 3)).collect();
    let (done, finished) = std::sync::mpsc::channel();
    for process in 0..2 {
        let cluster = Cluster::new(process, hosts.clone(), "one-view", "s3cret");
        let records = records.clone();
        let done = done.clone();
        std::thread::spawn(move || {
            let config = Config::workers(2).cluster(cluster);
            let (config, reports): (Config, Option<Receiver<Progress>>) = if reports[process] {
                let (config, reports) = config.progress_channel(Duration::from_millis(50));
                (config, Some(reports))
            } else {
                (config, None)
            };
            tideflow::execute(config, move |flow| {
                flow.source(MemorySource::partitioned(records.clone(), 16).batch_size(20))
                    .with_event_time(|(_, ts)| *ts)
                    .with_watermark(Duration::from_millis(5))
                    .key_by(|(key, _)| *key)
                    .window(Window::tumbling(Duration::from_millis(100))?)
                    .aggregate(Count)
                    .sink(MemorySink::new());
                Ok(())
            })
            .expect("the cluster job runs");
            let reports: Vec<Progress> = reports.map(|r| r.iter().collect()).unwrap_or_default();
            let _ = done.send((process, reports));
        });
    }
    drop(done);
    // A guard against a hang only (a panicking process hangs up early: its reports never come).
    let mut reports: [Option<Vec<Progress>>; 2] = [None, None];
    for _ in 0..2 {
        let (process, got) = finished
            .recv_timeout(Duration::from_secs(120))
            .expect("both processes of the cluster end");
        reports[process] = Some(got);
    }
    let [Some(first), Some(second)] = reports else {
        panic!("a process's reports are missing");
    };
    (first, second)
}

/// A process's own figures in its report, as process 0's per-process entries hold them (rates
/// and lag aside: process 0 measures those over its own interval and clock).
fn own_counts(report: &Progress) -> Figures {
    Figures {
        input_rows: report.input_rows,
        processed_rows: report.processed_rows,
        watermark: report.watermark,
        output_rows: report.output_rows,
        windows_emitted: report.windows_emitted,
        late_rows_dropped: report.late_rows_dropped,
        late_rows_routed: report.late_rows_routed,
        rows_skipped: report.rows_skipped,
        rows_dead_lettered: report.rows_dead_lettered,
        state: report.state.clone(),
        ..Figures::default()
    }
}

/// `figures` without rates and lag.
fn counts_of(figures: &Figures) -> Figures {
    Figures {
        input_rows_per_sec: 0.0,
        processed_rows_per_sec: 0.0,
        event_time_lag_ms: None,
        ..figures.clone()
    }
}

#[test]
fn process_0s_final_report_holds_every_processs_final_figures_and_their_totals() {
    let (first, second) = run_cluster([true, true]);
    let last = first.last().expect("process 0's final report");
    let last_of_1 = second.last().expect("process 1's final report");
    assert!(last.is_final && last_of_1.is_final);
    // Only process 0 reports the cluster.
    assert!(second.iter().all(|report| report.cluster.is_none()));
    assert!(first.iter().all(|report| report
        .cluster
        .as_ref()
        .is_some_and(|cluster| cluster.processes.len() == 2)));
    let cluster = last.cluster.as_ref().expect("the cluster's figures");
    // Each process read part of the input; its own final figures are in process 0's report.
    assert!(last.input_rows > 0 && last_of_1.input_rows > 0, "{last:?}");
    for (process, own) in [(0, last), (1, last_of_1)] {
        let entry = &cluster.processes[process];
        assert_eq!(entry.process, process);
        assert!(entry.is_final, "{entry:?}");
        let figures = entry.figures.as_ref().expect("figures");
        assert_eq!(counts_of(figures), own_counts(own), "process {process}");
    }
    let totals = &cluster.totals;
    assert_eq!(totals.input_rows, 4_000);
    assert_eq!(totals.input_rows, last.input_rows + last_of_1.input_rows);
    assert_eq!(
        totals.processed_rows,
        last.processed_rows + last_of_1.processed_rows
    );
    assert_eq!(totals.output_rows, last.output_rows + last_of_1.output_rows);
    assert_eq!(
        totals.windows_emitted,
        last.windows_emitted + last_of_1.windows_emitted
    );
    assert_eq!(
        totals.watermark,
        last.watermark.min(last_of_1.watermark),
        "{cluster:?}"
    );
    assert!(totals.watermark.is_some());
    let tumbling = totals.state["tumbling"];
    assert_eq!(
        tumbling.peak_rows,
        last.state["tumbling"].peak_rows + last_of_1.state["tumbling"].peak_rows
    );
    assert!(tumbling.peak_rows > 0);
}

#[test]
fn a_process_without_progress_reports_still_sends_its_figures_to_process_0() {
    let (first, second) = run_cluster([true, false]);
    assert!(second.is_empty());
    let last = first.last().expect("process 0's final report");
    let cluster = last.cluster.as_ref().expect("the cluster's figures");
    let other = &cluster.processes[1];
    assert!(other.is_final, "{other:?}");
    let figures = other.figures.as_ref().expect("process 1's figures");
    assert!(
        figures.input_rows > 0 && figures.watermark.is_some(),
        "{figures:?}"
    );
    assert_eq!(cluster.totals.input_rows, 4_000);
    assert_eq!(
        cluster.totals.input_rows,
        last.input_rows + figures.input_rows
    );
    assert_eq!(
        cluster.totals.watermark,
        last.watermark.min(figures.watermark)
    );
}

#[test]
fn a_cluster_whose_process_0_reports_no_progress_runs_as_one_job() {
    // Counting window rows adds operators: were they added only where a listener is, the two
    // processes would build different dataflows and the job would never end.
    let (first, second) = run_cluster([false, true]);
    assert!(first.is_empty());
    let last = second.last().expect("process 1's final report");
    assert!(last.is_final && last.cluster.is_none(), "{last:?}");
    assert!(last.input_rows > 0 && last.windows_emitted > 0, "{last:?}");
}

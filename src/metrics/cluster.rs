//! One view of a cluster job (docs/CLUSTER.md "One view of the job"). Every process other than
//! 0 sends its figures ([`Counts`]: its counters, watermark and state, read from what the job
//! counts anyway) to process 0 as mail ([`Mail::Figures`], carried by the coordination
//! dataflow of `src/coordination.rs`, on the process's first worker): every progress interval
//! of its own, or every [`FIGURES_INTERVAL`] without a listener, and once more, final, as soon
//! as all its workers have left the job's dataflow. Process 0 keeps the latest letter of each
//! process, and its progress reports add them up with its own figures ([`ClusterProgress`]).
//!
//! When the job ends by itself, process 0's coordination dataflow (and so its `execute`) ends
//! only once every process's last letter is delivered: its final report holds every process's
//! final figures. A job that stops early (a graceful stop, an error, a lost process) breaks the
//! cluster's connections as its processes end, and a last letter may be lost with them: process
//! 0's final report then holds the latest figures each process sent, dated by `age_ms`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{event_time_lag, per_second, OperatorState};
use crate::context::{Mail, PostOffice, Received, SharedJob};
use crate::error::Error;

/// How often a process other than 0 sends its figures to process 0 when it has no progress
/// listener of its own (with one, every interval of its own).
pub(crate) const FIGURES_INTERVAL: Duration = Duration::from_secs(1);

/// What one process has counted so far, summed over its workers: what its progress reports and
/// its figures letters are made of (the fields of [`Progress`](super::Progress) of the same
/// names).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Counts {
    pub(crate) input_rows: u64,
    pub(crate) processed_rows: u64,
    pub(crate) output_rows: u64,
    pub(crate) windows_emitted: u64,
    pub(crate) late_rows_dropped: u64,
    pub(crate) late_rows_routed: u64,
    pub(crate) rows_skipped: u64,
    pub(crate) rows_dead_lettered: u64,
    pub(crate) watermark: Option<u64>,
    pub(crate) state: BTreeMap<String, OperatorState>,
}

impl Counts {
    /// This process's figures now: atomics and state gauges, read once.
    pub(crate) fn read(shared: &SharedJob) -> Counts {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let metrics = &shared.metrics;
        let input_rows = load(&shared.records_in);
        let output_rows = load(&shared.records_out);
        Counts {
            input_rows,
            processed_rows: metrics.window_input().unwrap_or(output_rows),
            output_rows,
            windows_emitted: metrics.windows_emitted(),
            late_rows_dropped: load(&shared.late_dropped),
            late_rows_routed: load(&shared.late_routed),
            rows_skipped: load(&shared.records_skipped),
            rows_dead_lettered: load(&shared.records_dead_lettered),
            watermark: metrics.watermark(),
            state: metrics
                .state_counts()
                .into_iter()
                .map(|(name, count)| (name, OperatorState::of(count.rows, count.peak)))
                .collect(),
        }
    }

    /// Adds `other`'s counters and state to these (the watermark is left alone).
    fn add(&mut self, other: &Counts) {
        self.input_rows += other.input_rows;
        self.processed_rows += other.processed_rows;
        self.output_rows += other.output_rows;
        self.windows_emitted += other.windows_emitted;
        self.late_rows_dropped += other.late_rows_dropped;
        self.late_rows_routed += other.late_rows_routed;
        self.rows_skipped += other.rows_skipped;
        self.rows_dead_lettered += other.rows_dead_lettered;
        for (name, state) in &other.state {
            let total = self.state.entry(name.clone()).or_default();
            total.rows += state.rows;
            total.peak_rows += state.peak_rows;
            total.bytes += state.bytes;
        }
    }
}

/// A figures letter.
#[derive(Serialize, Deserialize)]
struct FiguresLetter {
    /// Whether these are the process's last figures: its workers have all finished.
    is_final: bool,
    counts: Counts,
}

/// The figures of one process of a cluster, or of all of them, in process 0's progress reports
/// ([`ClusterProgress`]): each as the field of [`Progress`](super::Progress) of the same name.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Figures {
    /// Records read from sources so far.
    pub input_rows: u64,
    /// Records read per second over process 0's reporting interval.
    pub input_rows_per_sec: f64,
    /// Records that went through the dataflow so far.
    pub processed_rows: u64,
    /// Processed records per second over process 0's reporting interval.
    pub processed_rows_per_sec: f64,
    /// The watermark, ms; `None` while not known.
    pub watermark: Option<u64>,
    /// Process 0's wall clock minus the watermark, ms.
    pub event_time_lag_ms: Option<i64>,
    /// Rows written to sinks so far.
    pub output_rows: u64,
    /// Rows window operators produced so far.
    pub windows_emitted: u64,
    /// Late records dropped so far.
    pub late_rows_dropped: u64,
    /// Late records routed to a late-data output so far.
    pub late_rows_routed: u64,
    /// Bad input records skipped so far.
    pub rows_skipped: u64,
    /// Bad input records written to a dead-letter file so far.
    pub rows_dead_lettered: u64,
    /// Keyed state per stateful operator.
    pub state: BTreeMap<String, OperatorState>,
}

impl Figures {
    /// `counts` with rates (input, processed) and the lag behind the wall clock at
    /// `timestamp_ms`.
    fn new(counts: Counts, rates: (f64, f64), timestamp_ms: u64) -> Figures {
        Figures {
            input_rows: counts.input_rows,
            input_rows_per_sec: rates.0,
            processed_rows: counts.processed_rows,
            processed_rows_per_sec: rates.1,
            watermark: counts.watermark,
            event_time_lag_ms: event_time_lag(timestamp_ms, counts.watermark),
            output_rows: counts.output_rows,
            windows_emitted: counts.windows_emitted,
            late_rows_dropped: counts.late_rows_dropped,
            late_rows_routed: counts.late_rows_routed,
            rows_skipped: counts.rows_skipped,
            rows_dead_lettered: counts.rows_dead_lettered,
            state: counts.state,
        }
    }
}

/// One process in process 0's progress report ([`ClusterProgress::processes`]).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProcessProgress {
    /// The process's index.
    pub process: usize,
    /// How long before the report process 0 received these figures, ms (0 for its own);
    /// `None` while it has received none.
    pub age_ms: Option<u64>,
    /// Whether these are the process's final figures, sent once all its workers had finished
    /// (for process 0, whether the report is its final one).
    #[serde(rename = "final")]
    pub is_final: bool,
    /// The process's figures, summed over its workers; `None` while none has come.
    pub figures: Option<Figures>,
}

/// The cluster part of process 0's progress reports ([`Progress::cluster`](super::Progress)).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClusterProgress {
    /// Over every process: counters, state and rates summed; the watermark is the smallest of
    /// the processes' (`None` while one of them has none, or has sent no figures yet). A
    /// process that has sent no figures yet adds nothing.
    pub totals: Figures,
    /// Every process's latest figures, by process index (process 0's are the report's own).
    pub processes: Vec<ProcessProgress>,
}

/// Sends the figures of a process other than 0 to process 0, from its first worker.
pub(crate) struct FiguresSender {
    post: Arc<PostOffice>,
    shared: Arc<SharedJob>,
    every: Duration,
    due: Instant,
    /// The final figures are sent.
    done: bool,
}

impl FiguresSender {
    /// The sender of `post`'s process, if it sends figures (it is not process 0, and its
    /// interval is set).
    pub(crate) fn new(post: &Arc<PostOffice>, shared: &Arc<SharedJob>) -> Option<FiguresSender> {
        if post.is_leader() {
            return None;
        }
        let every = post.figures_every()?;
        Some(FiguresSender {
            post: Arc::clone(post),
            shared: Arc::clone(shared),
            every,
            due: Instant::now() + every,
            done: false,
        })
    }

    /// Queues this process's figures if they are due, or its final ones once all its workers
    /// have left the job's dataflow (and nothing after them); returns how long until the next
    /// ones are due, `None` once the final ones are queued.
    pub(crate) fn poll(&mut self) -> Option<Duration> {
        if self.done {
            return None;
        }
        let now = Instant::now();
        let is_final = self.post.workers_done();
        if is_final || now >= self.due {
            let letter = FiguresLetter {
                is_final,
                counts: Counts::read(&self.shared),
            };
            let body = serde_json::to_vec(&letter).expect("figures encode as JSON");
            self.post.send(
                0,
                Mail::Figures {
                    from: self.post.process,
                    body,
                },
            );
            self.due = now + self.every;
            self.done = is_final;
        }
        (!self.done).then(|| self.due.saturating_duration_since(now))
    }
}

/// What process 0 knows of one process: its latest figures, how old they are, and whether they
/// are its final ones.
#[derive(Clone, Debug)]
struct Heard {
    age: Duration,
    is_final: bool,
    counts: Counts,
}

/// Process 0's side: where the other processes' figures arrive, and each process's input and
/// processed rows at the previous report, for its rates.
pub(crate) struct ClusterReporter {
    post: Arc<PostOffice>,
    last: Vec<(u64, u64)>,
}

impl ClusterReporter {
    /// The reporter of process 0 of a cluster; `None` in any other process.
    pub(crate) fn new(shared: &SharedJob) -> Option<ClusterReporter> {
        let post = shared.post.get().filter(|post| post.is_leader())?;
        Some(ClusterReporter {
            post: Arc::clone(post),
            last: vec![(0, 0); post.processes],
        })
    }

    /// The cluster part of a report whose own figures are `own`, taken at `timestamp_ms`,
    /// `seconds` after the previous one.
    pub(crate) fn take(
        &mut self,
        own: &Counts,
        is_final: bool,
        seconds: f64,
        timestamp_ms: u64,
    ) -> Result<ClusterProgress, Error> {
        let now = Instant::now();
        let mut heard = Vec::with_capacity(self.last.len());
        for (process, received) in self.post.figures().into_iter().enumerate() {
            heard.push(if process == self.post.process {
                Some(Heard {
                    age: Duration::ZERO,
                    is_final,
                    counts: own.clone(),
                })
            } else {
                received
                    .map(|received| decode(process, received, now))
                    .transpose()?
            });
        }
        Ok(summarize(heard, &mut self.last, seconds, timestamp_ms))
    }
}

/// A figures letter of process `process`, received.
fn decode(process: usize, received: Received, now: Instant) -> Result<Heard, Error> {
    let letter: FiguresLetter = serde_json::from_slice(&received.body).map_err(|e| {
        Error::Internal(format!(
            "the figures process {process} sent cannot be decoded: {e}"
        ))
    })?;
    Ok(Heard {
        age: now.saturating_duration_since(received.at),
        is_final: letter.is_final,
        counts: letter.counts,
    })
}

/// The cluster part of a report taken at `timestamp_ms`, from what process 0 knows of each
/// process (by index). `last` holds each process's input and processed rows at the previous
/// report, `seconds` ago, for its rates, and is updated.
fn summarize(
    heard: Vec<Option<Heard>>,
    last: &mut [(u64, u64)],
    seconds: f64,
    timestamp_ms: u64,
) -> ClusterProgress {
    let mut totals = Counts::default();
    let mut rates = (0.0, 0.0);
    // The smallest watermark; unknown once one process's is.
    let mut watermark = Some(u64::MAX);
    let mut processes = Vec::with_capacity(heard.len());
    for (process, heard) in heard.into_iter().enumerate() {
        let Some(heard) = heard else {
            watermark = None;
            processes.push(ProcessProgress {
                process,
                age_ms: None,
                is_final: false,
                figures: None,
            });
            continue;
        };
        let counts = heard.counts;
        totals.add(&counts);
        watermark = watermark.zip(counts.watermark).map(|(w, own)| w.min(own));
        let before = last.get(process).copied().unwrap_or_default();
        let process_rates = (
            per_second(counts.input_rows, before.0, seconds),
            per_second(counts.processed_rows, before.1, seconds),
        );
        if let Some(slot) = last.get_mut(process) {
            *slot = (counts.input_rows, counts.processed_rows);
        }
        rates = (rates.0 + process_rates.0, rates.1 + process_rates.1);
        processes.push(ProcessProgress {
            process,
            age_ms: Some(u64::try_from(heard.age.as_millis()).unwrap_or(u64::MAX)),
            is_final: heard.is_final,
            figures: Some(Figures::new(counts, process_rates, timestamp_ms)),
        });
    }
    totals.watermark = watermark.filter(|_| !processes.is_empty());
    ClusterProgress {
        totals: Figures::new(totals, rates, timestamp_ms),
        processes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(input_rows: u64, watermark: Option<u64>, state_rows: u64) -> Counts {
        Counts {
            input_rows,
            processed_rows: input_rows / 2,
            output_rows: 3,
            late_rows_dropped: 1,
            watermark,
            state: [("tumbling".to_string(), OperatorState::of(state_rows, 10))].into(),
            ..Counts::default()
        }
    }

    fn heard(counts: Counts) -> Option<Heard> {
        Some(Heard {
            age: Duration::from_millis(250),
            is_final: false,
            counts,
        })
    }

    #[test]
    fn totals_sum_the_processes_and_the_watermark_is_the_smallest() {
        let mut last = vec![(0, 0); 3];
        let cluster = summarize(
            vec![
                heard(counts(100, Some(900), 4)),
                heard(counts(50, Some(700), 6)),
                heard(counts(10, Some(800), 0)),
            ],
            &mut last,
            2.0,
            1_000,
        );
        let totals = &cluster.totals;
        assert_eq!(
            (totals.input_rows, totals.processed_rows, totals.output_rows),
            (160, 80, 9)
        );
        assert_eq!(totals.late_rows_dropped, 3);
        assert_eq!(totals.watermark, Some(700));
        assert_eq!(totals.event_time_lag_ms, Some(300));
        assert_eq!(totals.state["tumbling"], OperatorState::of(10, 30));
        // Rates over the interval: the sum of every process's.
        assert_eq!(totals.input_rows_per_sec, 80.0);
        assert_eq!(
            cluster.processes[1]
                .figures
                .as_ref()
                .unwrap()
                .input_rows_per_sec,
            25.0
        );
        assert_eq!(last, vec![(100, 50), (50, 25), (10, 5)]);
        assert_eq!(cluster.processes[2].age_ms, Some(250));
        // The next report's rates count from these.
        let cluster = summarize(
            vec![
                heard(counts(100, Some(900), 4)),
                heard(counts(60, Some(700), 6)),
                heard(counts(10, Some(800), 0)),
            ],
            &mut last,
            1.0,
            1_000,
        );
        assert_eq!(cluster.totals.input_rows_per_sec, 10.0);
    }

    #[test]
    fn a_process_without_figures_adds_nothing_and_leaves_the_watermark_unknown() {
        let mut last = vec![(0, 0); 2];
        let cluster = summarize(
            vec![heard(counts(100, Some(900), 4)), None],
            &mut last,
            1.0,
            1_000,
        );
        assert_eq!(cluster.totals.input_rows, 100);
        assert_eq!(cluster.totals.watermark, None);
        assert_eq!(cluster.totals.event_time_lag_ms, None);
        assert_eq!(
            cluster.processes[1],
            ProcessProgress {
                process: 1,
                age_ms: None,
                is_final: false,
                figures: None,
            }
        );
        assert_eq!(last, vec![(100, 50), (0, 0)]);
        // So does a process whose watermark is not known yet.
        let cluster = summarize(
            vec![heard(counts(100, Some(900), 4)), heard(counts(1, None, 0))],
            &mut last,
            1.0,
            1_000,
        );
        assert_eq!(cluster.totals.watermark, None);
        assert_eq!(cluster.totals.input_rows, 101);
    }

    #[test]
    fn a_figures_letter_round_trips_and_a_damaged_one_is_an_internal_error() {
        let letter = FiguresLetter {
            is_final: true,
            counts: counts(7, Some(5), 1),
        };
        let received = Received {
            at: Instant::now(),
            body: serde_json::to_vec(&letter).unwrap(),
        };
        let heard = decode(1, received, Instant::now()).expect("decodes");
        assert!(heard.is_final);
        assert_eq!(heard.counts, letter.counts);
        let damaged = Received {
            at: Instant::now(),
            body: b"{".to_vec(),
        };
        let error = decode(3, damaged, Instant::now()).unwrap_err();
        assert!(
            matches!(&error, Error::Internal(m) if m.contains("process 3")),
            "{error}"
        );
    }
}

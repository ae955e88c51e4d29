//! A [`Progress`] in the Prometheus text exposition format (version 0.0.4).

use std::fmt::Write;

use super::{Figures, OperatorState, Progress};

/// One metric family being written: its HELP and TYPE lines once, then its samples.
struct Family<'a> {
    out: &'a mut String,
    name: String,
}

impl Family<'_> {
    fn sample(&mut self, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(&self.name);
        if !labels.is_empty() {
            self.out.push('{');
            for (index, (label, text)) in labels.iter().enumerate() {
                if index > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{label}=\"{}\"", escape(text));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {}", number(value));
    }
}

/// Escapes a label value: backslash, double quote and line feed.
fn escape(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A sample value: integers without a fraction.
fn number(value: f64) -> String {
    if value.is_finite() && value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else if value.is_nan() {
        "NaN".into()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{value}")
    }
}

fn family<'a>(out: &'a mut String, name: impl Into<String>, kind: &str, help: &str) -> Family<'a> {
    let name = name.into();
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    Family { out, name }
}

/// A metric of a set of [`Figures`]: its name after the scope's prefix, its type, help and
/// value (a gauge with no value yet has no sample).
type FigureMetric = (
    &'static str,
    &'static str,
    &'static str,
    fn(&Figures) -> Option<f64>,
);

/// A state metric: its name after the scope's prefix, help and figure.
type StateMetric = (&'static str, &'static str, fn(&OperatorState) -> u64);

/// Whose figures a set of metrics holds: the prefix of their names, and what their help adds.
struct Scope {
    prefix: &'static str,
    note: &'static str,
}

/// This process's own figures.
const OWN: Scope = Scope {
    prefix: "tideflow_",
    note: "",
};

/// Process 0 of a cluster: the totals over every process.
const TOTALS: Scope = Scope {
    prefix: "tideflow_cluster_",
    note: " Cluster totals (on process 0): summed over the processes; the watermark is the smallest of theirs.",
};

/// Process 0 of a cluster: each process's figures, labelled `process`.
const PER_PROCESS: Scope = Scope {
    prefix: "tideflow_cluster_process_",
    note: " Per process of the cluster (on process 0), as each last sent them.",
};

/// Writes the figures of `scope`: each metric once, with a sample for each of `sets` (with a
/// `process` label when it has one).
fn write_figures(out: &mut String, scope: &Scope, sets: &[(Option<String>, &Figures)]) {
    let metrics: [FigureMetric; 11] = [
        (
            "input_rows_total",
            "counter",
            "Records read from sources.",
            |f| Some(f.input_rows as f64),
        ),
        (
            "processed_rows_total",
            "counter",
            "Records taken in by window operators (by sinks in a job without windows).",
            |f| Some(f.processed_rows as f64),
        ),
        (
            "output_rows_total",
            "counter",
            "Rows written to sinks.",
            |f| Some(f.output_rows as f64),
        ),
        (
            "windows_emitted_total",
            "counter",
            "Rows produced by window operators.",
            |f| Some(f.windows_emitted as f64),
        ),
        (
            "late_rows_dropped_total",
            "counter",
            "Records too late for every window they belong to, dropped.",
            |f| Some(f.late_rows_dropped as f64),
        ),
        (
            "late_rows_routed_total",
            "counter",
            "Late records routed to a late-data output.",
            |f| Some(f.late_rows_routed as f64),
        ),
        (
            "bad_rows_total",
            "counter",
            "Bad input records skipped or dead-lettered.",
            |f| Some((f.rows_skipped + f.rows_dead_lettered) as f64),
        ),
        (
            "input_rows_per_second",
            "gauge",
            "Records read from sources per second over the last interval.",
            |f| Some(f.input_rows_per_sec),
        ),
        (
            "processed_rows_per_second",
            "gauge",
            "Processed records per second over the last interval.",
            |f| Some(f.processed_rows_per_sec),
        ),
        (
            "watermark_ms",
            "gauge",
            "The job's watermark, ms since the Unix epoch.",
            |f| f.watermark.map(|w| w as f64),
        ),
        (
            "event_time_lag_ms",
            "gauge",
            "The wall clock minus the watermark, ms.",
            |f| f.event_time_lag_ms.map(|lag| lag as f64),
        ),
    ];
    let state: [StateMetric; 3] = [
        (
            "state_rows",
            "Rows of keyed state held, per operator.",
            |s| s.rows,
        ),
        (
            "state_peak_rows",
            "The sum of each worker's most rows of keyed state held, per operator.",
            |s| s.peak_rows,
        ),
        (
            "state_bytes",
            "Estimated bytes of keyed state held (rows times a per-row estimate), per operator.",
            |s| s.bytes,
        ),
    ];
    for (name, kind, help, value) in metrics {
        let name = format!("{}{name}", scope.prefix);
        let mut family = family(out, name, kind, &format!("{help}{}", scope.note));
        for (process, figures) in sets {
            if let Some(value) = value(figures) {
                match process {
                    Some(process) => family.sample(&[("process", process)], value),
                    None => family.sample(&[], value),
                }
            }
        }
    }
    for (name, help, figure) in state {
        let name = format!("{}{name}", scope.prefix);
        let mut family = family(out, name, "gauge", &format!("{help}{}", scope.note));
        for (process, figures) in sets {
            for (operator, state) in &figures.state {
                let value = figure(state) as f64;
                match process {
                    Some(process) => {
                        family.sample(&[("process", process), ("operator", operator)], value)
                    }
                    None => family.sample(&[("operator", operator)], value),
                }
            }
        }
    }
}

impl Progress {
    /// This report in the Prometheus text exposition format (`text/plain; version=0.0.4`):
    /// every metric named `tideflow_...`, with HELP and TYPE lines. Totals are counters
    /// (`_total`); the watermark, rates, state, snapshot figures and the latency percentiles of
    /// the last interval (`tideflow_latency_ms{quantile="0.99"}`) are gauges. A gauge with no
    /// value yet (the watermark before the first record) has no sample.
    ///
    /// On process 0 of a cluster ([`Progress::cluster`]) the same figures follow for the whole
    /// cluster, `tideflow_cluster_...` (`tideflow_cluster_input_rows_total`, ...), and for each
    /// process, `tideflow_cluster_process_...{process="P"}`, with the age of each process's
    /// figures (`tideflow_cluster_process_figures_age_ms`).
    ///
    /// # Examples
    /// ```
    /// # let (config, reports) = tideflow::Config::default().progress_channel(std::time::Duration::from_secs(1));
    /// # tideflow::execute(config, |flow| {
    /// #     flow.source(tideflow::source::MemorySource::new(vec![5u64, 7]))
    /// #         .with_event_time(|t| *t).with_watermark(std::time::Duration::ZERO)
    /// #         .sink(tideflow::sink::MemorySink::new());
    /// #     Ok(())
    /// # })?;
    /// let progress: tideflow::Progress = reports.iter().last().unwrap();
    /// let text = progress.to_prometheus();
    /// assert!(text.contains("# TYPE tideflow_input_rows_total counter\ntideflow_input_rows_total 2\n"));
    /// assert!(text.contains("\ntideflow_watermark_ms 7\n"));
    /// # Ok::<(), tideflow::Error>(())
    /// ```
    pub fn to_prometheus(&self) -> String {
        let mut out = String::with_capacity(4096);
        write_figures(&mut out, &OWN, &[(None, &self.own_figures())]);
        family(
            &mut out,
            "tideflow_progress_batch",
            "gauge",
            "The number of the progress report these figures come from.",
        )
        .sample(&[], self.batch as f64);
        family(
            &mut out,
            "tideflow_progress_timestamp_ms",
            "gauge",
            "When the progress report was taken, ms since the Unix epoch.",
        )
        .sample(&[], self.timestamp_ms as f64);
        if let Some(snapshot) = &self.snapshot {
            family(
                &mut out,
                "tideflow_snapshots_completed_total",
                "counter",
                "Snapshots completed.",
            )
            .sample(&[], snapshot.completed as f64);
            family(
                &mut out,
                "tideflow_snapshot_last_duration_ms",
                "gauge",
                "How long the last snapshot took, ms.",
            )
            .sample(&[], snapshot.last_duration_ms);
            family(
                &mut out,
                "tideflow_snapshot_last_bytes",
                "gauge",
                "The size of the last snapshot, bytes.",
            )
            .sample(&[], snapshot.last_bytes as f64);
        }
        let mut latency = family(
            &mut out,
            "tideflow_latency_ms",
            "gauge",
            "End-to-end latency (sink wall clock minus event time) over the last interval, ms.",
        );
        if let Some(l) = &self.latency_ms {
            for (quantile, value) in [
                ("0.5", l.p50),
                ("0.9", l.p90),
                ("0.99", l.p99),
                ("1", l.max),
            ] {
                latency.sample(&[("quantile", quantile)], value);
            }
        }
        family(
            &mut out,
            "tideflow_latency_rows",
            "gauge",
            "Rows whose latency was measured over the last interval.",
        )
        .sample(&[], self.latency_ms.map_or(0, |l| l.rows) as f64);
        if !self.source_partitions.is_empty() {
            let partitions = &self.source_partitions;
            let labels = |p: &super::SourcePartition| (p.source.clone(), p.partition.to_string());
            let mut offsets = family(
                &mut out,
                "tideflow_kafka_partition_offset",
                "gauge",
                "The offset of the next record a Kafka source reads, per topic and partition.",
            );
            for p in partitions {
                let (topic, partition) = labels(p);
                offsets.sample(
                    &[("topic", &topic), ("partition", &partition)],
                    p.offset as f64,
                );
            }
            let mut lags = family(
                &mut out,
                "tideflow_kafka_partition_lag",
                "gauge",
                "Records a Kafka source is behind its partition's high watermark, per topic and partition.",
            );
            for p in partitions {
                if let Some(lag) = p.lag {
                    let (topic, partition) = labels(p);
                    lags.sample(&[("topic", &topic), ("partition", &partition)], lag as f64);
                }
            }
        }
        if let Some(cluster) = &self.cluster {
            write_figures(&mut out, &TOTALS, &[(None, &cluster.totals)]);
            let processes: Vec<(Option<String>, &Figures)> = cluster
                .processes
                .iter()
                .filter_map(|p| Some((Some(p.process.to_string()), p.figures.as_ref()?)))
                .collect();
            write_figures(&mut out, &PER_PROCESS, &processes);
            let mut ages = family(
                &mut out,
                "tideflow_cluster_process_figures_age_ms",
                "gauge",
                "How long before the report process 0 received each process's latest figures, ms (0 for its own).",
            );
            for p in &cluster.processes {
                if let Some(age) = p.age_ms {
                    ages.sample(&[("process", &p.process.to_string())], age as f64);
                }
            }
        }
        out
    }

    /// This process's own figures (the report's top-level fields).
    fn own_figures(&self) -> Figures {
        Figures {
            input_rows: self.input_rows,
            input_rows_per_sec: self.input_rows_per_sec,
            processed_rows: self.processed_rows,
            processed_rows_per_sec: self.processed_rows_per_sec,
            watermark: self.watermark,
            event_time_lag_ms: self.event_time_lag_ms,
            output_rows: self.output_rows,
            windows_emitted: self.windows_emitted,
            late_rows_dropped: self.late_rows_dropped,
            late_rows_routed: self.late_rows_routed,
            rows_skipped: self.rows_skipped,
            rows_dead_lettered: self.rows_dead_lettered,
            state: self.state.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{ClusterProgress, ProcessProgress};
    use super::*;

    /// Figures of `input_rows` rows read, a watermark and one operator's state.
    fn figures(input_rows: u64, watermark: Option<u64>, state_rows: u64) -> Figures {
        Figures {
            input_rows,
            watermark,
            state: [("tumbling".to_string(), OperatorState::of(state_rows, 9))].into(),
            ..Figures::default()
        }
    }

    /// A report of process 0 of a cluster of 3, where process 2 has sent no figures yet.
    fn report() -> Progress {
        let own = figures(10, Some(700), 2);
        Progress {
            timestamp_ms: 1_000,
            interval_ms: 100,
            batch: 4,
            is_final: false,
            input_rows: own.input_rows,
            input_rows_per_sec: 0.0,
            processed_rows: 0,
            processed_rows_per_sec: 0.0,
            watermark: own.watermark,
            event_time_lag_ms: None,
            output_rows: 0,
            windows_emitted: 0,
            late_rows_dropped: 0,
            late_rows_routed: 0,
            rows_skipped: 0,
            rows_dead_lettered: 0,
            state: own.state.clone(),
            snapshot: None,
            latency_ms: None,
            source_partitions: Vec::new(),
            cluster: Some(ClusterProgress {
                totals: figures(15, None, 5),
                processes: vec![
                    ProcessProgress {
                        process: 0,
                        age_ms: Some(0),
                        is_final: false,
                        figures: Some(own),
                    },
                    ProcessProgress {
                        process: 1,
                        age_ms: Some(80),
                        is_final: false,
                        figures: Some(figures(5, Some(600), 3)),
                    },
                    ProcessProgress {
                        process: 2,
                        age_ms: None,
                        is_final: false,
                        figures: None,
                    },
                ],
            }),
        }
    }

    #[test]
    fn process_0_serves_the_cluster_totals_and_each_processs_figures() {
        let text = report().to_prometheus();
        for expected in [
            "\ntideflow_input_rows_total 10\n",
            "# TYPE tideflow_cluster_input_rows_total counter\ntideflow_cluster_input_rows_total 15\n",
            "\ntideflow_cluster_state_rows{operator=\"tumbling\"} 5\n",
            "# TYPE tideflow_cluster_process_input_rows_total counter\ntideflow_cluster_process_input_rows_total{process=\"0\"} 10\ntideflow_cluster_process_input_rows_total{process=\"1\"} 5\n# HELP",
            "\ntideflow_cluster_process_watermark_ms{process=\"1\"} 600\n",
            "\ntideflow_cluster_process_state_rows{process=\"1\",operator=\"tumbling\"} 3\n",
            "\ntideflow_cluster_process_figures_age_ms{process=\"1\"} 80\n",
        ] {
            assert!(text.contains(expected), "no {expected:?} in {text}");
        }
        // The totals' watermark is not known (process 2 has sent nothing): no sample.
        assert!(
            text.contains("# TYPE tideflow_cluster_watermark_ms gauge\n# HELP"),
            "{text}"
        );
        assert!(!text.contains("process=\"2\""), "{text}");
        // Without a cluster, nothing of it.
        let alone = Progress {
            cluster: None,
            ..report()
        };
        assert!(!alone.to_prometheus().contains("tideflow_cluster"));
    }

    #[test]
    fn label_values_and_numbers_are_written_as_the_format_wants() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(number(3.0), "3");
        assert_eq!(number(2.5), "2.5");
        assert_eq!(number(f64::NAN), "NaN");
        assert_eq!(number(f64::INFINITY), "+Inf");
    }
}

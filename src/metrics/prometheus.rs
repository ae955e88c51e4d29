//! A [`Progress`] in the Prometheus text exposition format (version 0.0.4).

use std::fmt::Write;

use super::Progress;

/// One metric family being written: its HELP and TYPE lines once, then its samples.
struct Family<'a> {
    out: &'a mut String,
    name: &'static str,
}

impl Family<'_> {
    fn sample(&mut self, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(self.name);
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

/// A state metric: its name, help and figure.
type StateFamily = (&'static str, &'static str, fn(&super::OperatorState) -> u64);

fn family<'a>(out: &'a mut String, name: &'static str, kind: &str, help: &str) -> Family<'a> {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    Family { out, name }
}

impl Progress {
    /// This report in the Prometheus text exposition format (`text/plain; version=0.0.4`):
    /// every metric named `tideflow_...`, with HELP and TYPE lines. Totals are counters
    /// (`_total`); the watermark, rates, state, snapshot figures and the latency percentiles of
    /// the last interval (`tideflow_latency_ms{quantile="0.99"}`) are gauges. A gauge with no
    /// value yet (the watermark before the first record) has no sample.
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
        let counters: [(&'static str, &str, u64); 7] = [
            (
                "tideflow_input_rows_total",
                "Records read from sources.",
                self.input_rows,
            ),
            (
                "tideflow_processed_rows_total",
                "Records taken in by window operators (by sinks in a job without windows).",
                self.processed_rows,
            ),
            (
                "tideflow_output_rows_total",
                "Rows written to sinks.",
                self.output_rows,
            ),
            (
                "tideflow_windows_emitted_total",
                "Rows produced by window operators.",
                self.windows_emitted,
            ),
            (
                "tideflow_late_rows_dropped_total",
                "Records too late for every window they belong to, dropped.",
                self.late_rows_dropped,
            ),
            (
                "tideflow_late_rows_routed_total",
                "Late records routed to a late-data output.",
                self.late_rows_routed,
            ),
            (
                "tideflow_bad_rows_total",
                "Bad input records skipped or dead-lettered.",
                self.rows_skipped + self.rows_dead_lettered,
            ),
        ];
        for (name, help, value) in counters {
            family(&mut out, name, "counter", help).sample(&[], value as f64);
        }
        let gauges: [(&'static str, &str, Option<f64>); 6] = [
            (
                "tideflow_input_rows_per_second",
                "Records read from sources per second over the last interval.",
                Some(self.input_rows_per_sec),
            ),
            (
                "tideflow_processed_rows_per_second",
                "Processed records per second over the last interval.",
                Some(self.processed_rows_per_sec),
            ),
            (
                "tideflow_watermark_ms",
                "The job's watermark, ms since the Unix epoch.",
                self.watermark.map(|w| w as f64),
            ),
            (
                "tideflow_event_time_lag_ms",
                "The wall clock minus the watermark, ms.",
                self.event_time_lag_ms.map(|lag| lag as f64),
            ),
            (
                "tideflow_progress_batch",
                "The number of the progress report these figures come from.",
                Some(self.batch as f64),
            ),
            (
                "tideflow_progress_timestamp_ms",
                "When the progress report was taken, ms since the Unix epoch.",
                Some(self.timestamp_ms as f64),
            ),
        ];
        for (name, help, value) in gauges {
            let mut family = family(&mut out, name, "gauge", help);
            if let Some(value) = value {
                family.sample(&[], value);
            }
        }
        let state: [StateFamily; 3] = [
            (
                "tideflow_state_rows",
                "Rows of keyed state held, per operator.",
                |s| s.rows,
            ),
            (
                "tideflow_state_peak_rows",
                "The sum of each worker's most rows of keyed state held, per operator.",
                |s| s.peak_rows,
            ),
            (
                "tideflow_state_bytes",
                "Estimated bytes of keyed state held (rows times a per-row estimate), per operator.",
                |s| s.bytes,
            ),
        ];
        for (name, help, figure) in state {
            let mut family = family(&mut out, name, "gauge", help);
            for (operator, state) in &self.state {
                family.sample(&[("operator", operator)], figure(state) as f64);
            }
        }
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
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_and_numbers_are_written_as_the_format_wants() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(number(3.0), "3");
        assert_eq!(number(2.5), "2.5");
        assert_eq!(number(f64::NAN), "NaN");
        assert_eq!(number(f64::INFINITY), "+Inf");
    }
}

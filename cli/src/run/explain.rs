//! `tideflow explain`: the dataflow `tideflow run` builds with the same arguments, printed one
//! operator per line in dataflow order, without running it.
//!
//! What it prints is the [`Plan`] that `run` executes, built by the same [`Plan::new`], so a bad
//! flag is reported exactly as `run` reports it. Nothing is read, bound or created: the input
//! path is only looked at (file or directory), and a Kafka input's brokers are asked for its
//! partitions and their offsets.

use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use super::join::{JoinType, TableJoin, TABLE_PREFIX};
use super::kafka::KafkaAddress;
use super::{Format, Input, Mode, Plan, RunArgs};
use crate::millis;
use crate::record::AggSpec;
use tideflow::source::{kafka_partitions, OnError, StartingOffsets, DEFAULT_MAX_RECORD_BYTES};
use tideflow::Error;
use tideflow::Trigger;
use tideflow::Window;

/// Runs `tideflow explain`: prints the plan of `tideflow run` with `args` to standard output.
pub(crate) fn explain(args: RunArgs) -> Result<(), Error> {
    print_plan(&Plan::new(args)?)
}

/// Prints `plan` to standard output, one operator per line in dataflow order.
pub(crate) fn print_plan(plan: &Plan) -> Result<(), Error> {
    let threads = plan.workers;
    let processes = plan
        .cluster
        .as_ref()
        .map_or(1, |cluster| cluster.processes());
    let workers = threads * processes;
    let mut lines = operator_lines(plan, workers);
    if let Some(cluster) = &plan.cluster {
        lines.push((
            "cluster",
            format!(
                "this is process {} of {processes} (cluster id {}); worker w runs in process w / {threads}; exchanges between processes go over TCP; worker 0 is in process 0",
                cluster.process, cluster.cluster_id
            ),
        ));
    }
    if let Some(progress) = &plan.progress {
        let mut outputs = Vec::new();
        match progress.lines.as_deref() {
            None => {}
            Some("-") => outputs.push("a JSON line to standard error".to_string()),
            Some(path) => outputs.push(format!("a JSON line to {path}")),
        }
        if let Some(metrics) = &progress.metrics {
            outputs.push(format!(
                "Prometheus text at http://{}/metrics",
                metrics.given
            ));
        }
        lines.push((
            "progress",
            format!(
                "every {}: {}",
                duration(progress.interval),
                outputs.join("; ")
            ),
        ));
    }
    let mut text = match processes {
        1 => format!(
            "tideflow explain: {workers} worker{}",
            if workers == 1 { "" } else { "s" }
        ),
        _ => format!(
            "tideflow explain: {processes} processes x {threads} workers = {workers} workers"
        ),
    };
    // A stateless query writes each row once, as it is read: no output mode applies.
    let mode = match plan
        .stages
        .as_ref()
        .is_some_and(|stages| stages.stateless())
    {
        true => "none (each row as it is read)",
        false => mode_name(plan.mode),
    };
    text.push_str(&format!(
        ", trigger {}, output mode {mode}\n",
        trigger_name(plan.trigger),
    ));
    for (operator, description) in lines {
        text.push_str(&format!("{operator:<11} {description}\n"));
    }
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|e| Error::io("writing to standard output", e))
}

/// The operators `Plan::execute` builds, in dataflow order: (operator, description).
pub(super) fn operator_lines(plan: &Plan, workers: usize) -> Vec<(&'static str, String)> {
    let mut lines = vec![("source", source(plan, workers))];
    if let Some(stages) = &plan.stages {
        lines.extend(stages.explain_before());
        if stages.stateless() {
            lines.push(("exchange", "all rows to worker 0".into()));
            let target = match &plan.output {
                Some(path) => format!("file {} (JSON lines)", path.display()),
                None => "standard output (JSON lines)".into(),
            };
            lines.push(("sink", format!("{target}, each row as it arrives")));
            snapshot_line(&mut lines, plan, false);
            return lines;
        }
    }
    let key = plan.schema.key_field.as_deref();
    if let (Some(join), Some(key)) = (&plan.join, key) {
        join_lines(&mut lines, plan, join, key, workers);
    }
    let computed = plan.stages.as_ref().and_then(|stages| stages.key());
    lines.push((
        "exchange",
        key_exchange(computed.as_deref().or(key), workers),
    ));
    let accumulators = accumulators(&plan.aggs);
    let Some(window) = plan.window else {
        lines.push((
            "aggregate",
            format!(
                "running, per key over all its records (no --window), applied in stamp order; a retraction and an insertion per changed key per stamp; state: one accumulator + last result per key: {accumulators}"
            ),
        ));
        lines.push(("filter", "insertions only (upserts on the key)".into()));
        sink_lines(&mut lines, plan, None);
        snapshot_line(&mut lines, plan, plan.join.is_some());
        return lines;
    };
    lines.push(("window", window_line(plan, window, &accumulators)));
    let late_target = match (&plan.late_output, &plan.late_kafka) {
        (Some(path), _) => Some(format!("late file {} (JSON lines", path.display())),
        (None, Some(address)) => Some(format!(
            "late Kafka topic {} at {} (JSON values keyed by the record's key",
            address.topic, address.brokers
        )),
        (None, None) => None,
    };
    match late_target {
        None => lines.push(("late", "dropped and counted (no --late-output)".into())),
        Some(target) => {
            lines.push((
                "late",
                "side output: records too late for every window they belong to".into(),
            ));
            lines.push(("exchange", "late records to worker 0".into()));
            lines.push((
                "sink",
                format!(
                    "{target}: key, event_time, watermark, window_end, reason, the whole record)"
                ),
            ));
        }
    }
    sink_lines(&mut lines, plan, Some(window));
    snapshot_line(&mut lines, plan, plan.join.is_some());
    lines
}

/// The input, its partitions, event time and watermark, bad records and trigger.
fn source(plan: &Plan, workers: usize) -> String {
    let format = input_format(plan.format);
    let mut line = match &plan.input {
        Input::Rate(rate) => {
            let count = match rate.count {
                Some(count) => format!("count={count}"),
                None => "endless".into(),
            };
            let disorder = match millis(rate.disorder) {
                0 => String::new(),
                ms => format!(" disorder={ms}ms"),
            };
            format!(
                "rate generator rows_per_sec={} keys={} seed={} {count}{disorder} ({} partitions, replayable; {})",
                rate.rows_per_sec,
                rate.keys,
                rate.seed,
                rate.partitions,
                placement("partition p", "p", workers),
            )
        }
        Input::Tcp(address) => format!(
            "tcp://{address} ({format}), a client connection read on worker 0 only (one partition, not replayable) until the server closes it"
        ),
        Input::Stdin => format!(
            "standard input ({format}), read on worker 0 only (one partition, not replayable) until end of file"
        ),
        Input::Path(path) => path_source(path, format, plan.watch, plan.split_size, workers),
        Input::Kafka(address) => kafka_source(plan, address, format, workers),
    };
    let watermark = &plan.watermark;
    line.push_str(&format!(
        "; event time {}, watermark delay {}",
        plan.schema.time_field,
        duration(watermark.delay)
    ));
    for (name, value) in [
        ("idle timeout", watermark.idle_timeout),
        ("heartbeat", watermark.heartbeat),
        ("max future skew", watermark.max_future_skew),
    ] {
        if let Some(value) = value {
            line.push_str(&format!(", {name} {}", duration(value)));
        }
    }
    if !matches!(plan.input, Input::Rate(_)) {
        line.push_str(match &plan.on_error {
            OnError::Fail => "; a bad record stops the run",
            OnError::Skip => "; bad records skipped and counted",
            OnError::DeadLetter(_) => "; bad records written to ",
        });
        if let OnError::DeadLetter(path) = &plan.on_error {
            line.push_str(&format!("{} (JSON lines) and counted", path.display()));
        }
        if plan.max_record_bytes != DEFAULT_MAX_RECORD_BYTES {
            line.push_str(&format!(
                ", as is a record over {} bytes",
                plan.max_record_bytes
            ));
        }
    }
    match plan.trigger {
        Trigger::Continuous => {}
        Trigger::Interval(interval) => line.push_str(&format!(
            "; the watermark advances once every {} (micro-batches)",
            duration(interval)
        )),
        Trigger::AvailableNow => line.push_str("; the source ends at its first poll with no input ready"),
        Trigger::Once => line.push_str(
            "; the watermark stays at the start until the source ends, at its first poll with no input ready: results at the end, as one batch",
        ),
    }
    line
}

/// A Kafka input: its partitions as the brokers report them now, with their offsets.
fn kafka_source(plan: &Plan, address: &KafkaAddress, format: &str, workers: usize) -> String {
    let format = match plan.format {
        Format::Csv => format!(
            "{format} values of the columns {}",
            plan.csv_header.join(",")
        ),
        Format::Jsonl | Format::Parquet => format!("{format} values"),
    };
    let mut line = format!(
        "Kafka topic {} at {} ({format}; {}, each with its own watermark; replayable from offsets), from {}",
        address.topic,
        address.brokers,
        placement("partition p", "p", workers),
        starting_offsets(&plan.starting_offsets),
    );
    // Where a resumed run starts: the newest snapshot's offsets (its only source is the topic).
    let resume = plan
        .checkpoint
        .as_ref()
        .and_then(|checkpoint| checkpoint.resume_positions().ok().flatten());
    let resume_at = |partition: i32| {
        let sources = &resume.as_ref()?.sources;
        let positions = sources.values().next()?;
        positions
            .iter()
            .find(|p| p.partition == partition as u64)
            .map(|p| p.position.offset as i64)
    };
    match kafka_partitions(&address.brokers, &address.topic, &plan.kafka_options) {
        Ok(partitions) => {
            let shown: Vec<String> = partitions
                .iter()
                .map(|p| {
                    let range = format!("{}: offsets {}..{}", p.partition, p.earliest, p.latest);
                    match resume_at(p.partition) {
                        Some(at) => {
                            format!("{range}, resumes at {at}, lag {}", (p.latest - at).max(0))
                        }
                        None => range,
                    }
                })
                .collect();
            line.push_str(&format!(
                "; {} partitions now [{}]",
                partitions.len(),
                shown.join(", ")
            ));
            if let Some(resume) = &resume {
                line.push_str(&format!(
                    " (offsets to resume at from the snapshot at epoch {})",
                    resume.epoch
                ));
            }
        }
        Err(error) => line.push_str(&format!("; partitions unknown ({error})")),
    }
    line
}

/// Where a Kafka input starts without a snapshot.
fn starting_offsets(offsets: &StartingOffsets) -> String {
    match offsets {
        StartingOffsets::Earliest => "the earliest offsets on a first run".into(),
        StartingOffsets::Latest => "the latest offsets on a first run".into(),
        StartingOffsets::Offsets(by_partition) => {
            let shown: Vec<String> = by_partition
                .iter()
                .map(|(partition, offset)| match offset {
                    -2 => format!("{partition}: earliest"),
                    -1 => format!("{partition}: latest"),
                    offset => format!("{partition}: {offset}"),
                })
                .collect();
            format!(
                "offsets [{}] on a first run (others earliest)",
                shown.join(", ")
            )
        }
    }
}

/// A file or directory input, as it is now.
fn path_source(
    path: &Path,
    format: &str,
    watch: Option<Duration>,
    split: u64,
    workers: usize,
) -> String {
    let shown = path.display();
    let files = placement("partition n", "n", workers);
    let quoted = if format.starts_with("CSV") {
        " (a CSV file with a '\"' is read whole)"
    } else {
        ""
    };
    let cut = match (split, watch) {
        (0, _) | (_, Some(_)) => String::new(),
        (split, None) => format!(
            ", a file longer than {split} bytes one per chunk of about {split} bytes cut at line starts{quoted}"
        ),
    };
    match std::fs::metadata(path) {
        Ok(metadata) if metadata.is_dir() => {
            let now = tideflow::source::input_files(path).map(|files| files.len());
            let now = match now {
                Ok(1) => "1 file now".to_string(),
                Ok(n) => format!("{n} files now"),
                Err(_) => "cannot be listed now".to_string(),
            };
            match watch {
                None => format!(
                    "directory {shown} ({format}; {now}; each visible file one partition{cut}, in name order, replayable; {files})"
                ),
                Some(interval) => format!(
                    "watched directory {shown} ({format}; {now}; each visible file one partition, in name order; re-listed every {}, each new file a new partition; {files}; not replayable, runs until stopped)",
                    duration(interval)
                ),
            }
        }
        Ok(metadata) if split > 0 && metadata.len() > split => format!(
            "file {shown} ({format}; {} bytes, cut at line starts into about {} chunks of {split} bytes, each a partition{quoted}, replayable; {files})",
            metadata.len(),
            metadata.len().div_ceil(split)
        ),
        Ok(_) => format!("file {shown} ({format}; one partition, on worker 0, replayable)"),
        Err(_) => format!(
            "file or directory {shown} ({format}; not found now: run stops with \"input {shown} does not exist\")"
        ),
    }
}

/// The static table's source and arrangement, the records' exchange and the join.
fn join_lines(
    lines: &mut Vec<(&'static str, String)>,
    plan: &Plan,
    join: &TableJoin,
    key: &str,
    workers: usize,
) {
    let columns: Vec<&str> = plan
        .aggs
        .iter()
        .filter_map(|spec| spec.field.as_deref()?.strip_prefix(TABLE_PREFIX))
        .collect();
    let columns = match columns.as_slice() {
        [] => "no columns (no --agg reads table.F)".to_string(),
        columns => format!("columns {}", columns.join(", ")),
    };
    let format = input_format(join.format);
    let table_key = &join.schema.key_field;
    lines.push((
        "table",
        format!(
            "static file {} ({format}; one partition, on worker 0), read whole; join key {table_key}, {columns}; rows with a null {table_key} left out; a bad line stops the run",
            join.path.display()
        ),
    ));
    lines.push((
        "exchange",
        format!(
            "table rows by key_group({table_key}) -> {}",
            group_worker(workers)
        ),
    ));
    lines.push((
        "arrange",
        format!(
            "table rows by {table_key} (differential arrangement); state: the table's rows, freed when the stream ends"
        ),
    ));
    lines.push((
        "exchange",
        format!(
            "records by key_group({key} as text) -> {}",
            group_worker(workers)
        ),
    ));
    let kind = match join.kind {
        JoinType::Inner => "inner static join: each record once per table row with its key; records without one dropped",
        JoinType::Left => "left static join: each record once per table row with its key, or once with null table columns",
    };
    lines.push((
        "join",
        format!(
            "{kind}; {key} = {table_key} compared as text, null matches nothing; records wait until the whole table is loaded, then leave at their own stamps; state: the records waiting"
        ),
    ));
}

/// The exchange in front of the keyed operator.
fn key_exchange(key: Option<&str>, workers: usize) -> String {
    match key {
        Some(key) => format!("by key_group({key}) -> {}", group_worker(workers)),
        None => format!(
            "by key_group(null): no --key-field, every record has the key null -> {}",
            if workers == 1 {
                "worker 0"
            } else {
                "one worker"
            }
        ),
    }
}

/// The window operator: its kind, lateness, mode and state.
fn window_line(plan: &Plan, window: Window, accumulators: &str) -> String {
    let update = plan.mode != Mode::Append;
    let lateness = duration(plan.lateness);
    let aligned_rows = if update {
        "early rows for each changed (key, window) as the watermark moves, one final row once it passes the window's end + allowed lateness"
    } else {
        "one row per (key, window) once the watermark passes its end + allowed lateness"
    };
    let dirty = if update { " with a dirty flag" } else { "" };
    match window {
        Window::Tumbling { size } => format!(
            "tumbling {}, allowed lateness {lateness}; {aligned_rows}; state: one accumulator per (key, open window){dirty}: {accumulators}",
            ms(size),
        ),
        Window::Sliding { size, slide } if update => format!(
            "sliding {} every {}, allowed lateness {lateness}; each record added to each of its windows (up to {}); {aligned_rows}; state: one accumulator per (key, open window){dirty}: {accumulators}",
            ms(size),
            ms(slide),
            size.div_ceil(slide),
        ),
        Window::Sliding { size, slide } => {
            let state = if plan.aggs.iter().all(|spec| spec.kind.invertible()) {
                "per key, its live contributions and a running accumulator (count, sum and avg retract what leaves)"
            } else {
                "per key, its live contributions, merged per window as it closes"
            };
            format!(
                "sliding {} every {}, allowed lateness {lateness}; each record added once, to its key's contribution (normally one per pane of {}); {aligned_rows}; state: {state}: {accumulators}",
                ms(size),
                ms(slide),
                ms(gcd(size, slide)),
            )
        }
        Window::Session { gap } => {
            let (rows, shown) = if update {
                (
                    "early rows for the open sessions of keys with new records, retractions of rows whose session grew or merged, one final row once the watermark passes the session's end + allowed lateness",
                    ", the row last shown per open session",
                )
            } else {
                ("one row per (key, session) once the watermark passes its end + allowed lateness", "")
            };
            format!(
                "session gap {}, allowed lateness {lateness}; records applied in stamp order (stashed until the watermark passes their stamp); {rows}; state: each key's open sessions (bounds, accumulator, close timer){shown} and the stash: {accumulators}",
                ms(gap)
            )
        }
    }
}

/// The exchange to worker 0 and the result sink.
fn sink_lines(lines: &mut Vec<(&'static str, String)>, plan: &Plan, window: Option<Window>) {
    if let Some(stages) = &plan.stages {
        lines.extend(stages.explain_after());
    }
    lines.push(("exchange", "all rows to worker 0".into()));
    let format = output_format(plan.output_format);
    let delta = plan.parquet.as_ref().is_some_and(|parquet| parquet.delta);
    let target = match (&plan.output, &plan.kafka_output) {
        (Some(path), _) if delta => format!("Delta table {} (Parquet files)", path.display()),
        (Some(path), _) if plan.parquet.is_some() => {
            format!("directory {} ({format})", path.display())
        }
        (Some(path), _) => format!("file {} ({format})", path.display()),
        (None, Some(address)) => format!(
            "Kafka topic {} at {} (JSON values keyed by the row's key)",
            address.topic, address.brokers
        ),
        (None, None) => format!("standard output ({format})"),
    };
    let sink = match (plan.mode, window) {
        (Mode::Append, _) => format!(
            "ordered {target}, rows released in (window end, key) order once the watermark passes them"
        ),
        (Mode::Update, Some(window)) => format!(
            "{target}, update rows as they arrive: \"final\": false early rows, then one \"final\": true row per window{}",
            if matches!(window, Window::Session { .. }) {
                "; \"retract\": true for rows of a session that grew or merged"
            } else {
                ""
            }
        ),
        (Mode::Update, None) => {
            format!("{target}, a row {{key, aggregates}} per change as it arrives: upsert on key")
        }
        (Mode::Complete, _) => {
            let table = match window {
                Some(_) => "(window start, window end, key) -> aggregates and \"final\"",
                None => "key -> aggregates",
            };
            let target = match (&plan.output, &plan.kafka_output) {
                (Some(path), _) => format!(
                    "replacing file {} ({format}) atomically",
                    path.display()
                ),
                (None, Some(address)) => format!("to Kafka topic {}", address.topic),
                (None, None) => format!("to standard output ({format})"),
            };
            format!(
                "complete-mode table on worker 0, {table}; state: the whole table; written whole every {} while it changes and at the end, {target}, each row with its \"batch\"",
                duration(plan.complete_interval)
            )
        }
    };
    lines.push(("sink", sink));
}

/// The snapshots `--checkpoint-dir` takes, and what is exactly-once.
fn snapshot_line(lines: &mut Vec<(&'static str, String)>, plan: &Plan, join: bool) {
    let Some(checkpoint) = &plan.checkpoint else {
        lines.push(("snapshots", "none (add --checkpoint-dir)".into()));
        return;
    };
    let mut line = format!(
        "every {} into {}, keeping the newest {}; a run resumes from the newest complete one; ",
        duration(checkpoint.interval),
        checkpoint.dir.display(),
        checkpoint.keep,
    );
    if plan.window.is_some() && !plan.lateness.is_zero() {
        line.push_str("state saved per key group (with allowed lateness, resumes on the same worker count only)");
    } else {
        line.push_str("state saved per key group (resumes on any worker count)");
    }
    if join {
        line.push_str("; the table is read again on resume");
    }
    let mut exactly_once: Vec<String> = Vec::new();
    if let Some(path) = &plan.output {
        exactly_once.push(path.display().to_string());
    }
    if let Some(path) = &plan.late_output {
        exactly_once.push(path.display().to_string());
    }
    if !exactly_once.is_empty() {
        line.push_str(&format!(
            "; {} exactly-once (rows staged per snapshot, appended when it commits)",
            exactly_once.join(" and ")
        ));
    }
    let topics: Vec<&str> = [&plan.kafka_output, &plan.late_kafka]
        .into_iter()
        .flatten()
        .map(|address| address.topic.as_str())
        .collect();
    if !topics.is_empty() {
        line.push_str(&format!(
            "; Kafka topic {} exactly-once (rows staged in each snapshot, written in one Kafka transaction when it completes: read it with isolation.level=read_committed)",
            topics.join(" and ")
        ));
    }
    if let Input::Kafka(address) = &plan.input {
        line.push_str(&format!(
            "; topic {}'s offsets are in each snapshot, and a resumed run reads on from them",
            address.topic
        ));
    }
    if plan.output.is_none() && plan.kafka_output.is_none() {
        line.push_str("; standard output at-least-once");
    }
    if matches!(plan.on_error, OnError::DeadLetter(_)) {
        line.push_str("; dead letters at-least-once");
    }
    lines.push(("snapshots", line));
}

/// The accumulators of `aggs`, with what the larger ones hold.
fn accumulators(aggs: &[AggSpec]) -> String {
    let shown: Vec<String> = aggs.iter().map(AggSpec::accumulator).collect();
    shown.join(", ")
}

/// Where a key group goes.
fn group_worker(workers: usize) -> String {
    match workers {
        1 => "worker 0 (1 worker)".into(),
        n => format!("worker key_group % {n}"),
    }
}

/// Where partition `what` (numbered `var`) is read.
fn placement(what: &str, var: &str, workers: usize) -> String {
    match workers {
        1 => "all on worker 0".into(),
        n => format!("{what} on worker {var} % {n}"),
    }
}

fn input_format(format: Format) -> &'static str {
    match format {
        Format::Jsonl => "JSON lines",
        Format::Csv => "CSV with a header row",
        Format::Parquet => "Parquet",
    }
}

fn output_format(format: Format) -> &'static str {
    match format {
        Format::Jsonl => "JSON lines",
        Format::Csv => "CSV",
        Format::Parquet => "Parquet files with a commit log",
    }
}

fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Append => "append",
        Mode::Update => "update",
        Mode::Complete => "complete",
    }
}

fn trigger_name(trigger: Trigger) -> String {
    match trigger {
        Trigger::Continuous => "continuous".into(),
        Trigger::Interval(interval) => format!("interval:{}", duration(interval)),
        Trigger::AvailableNow => "available-now".into(),
        Trigger::Once => "once".into(),
    }
}

fn duration(duration: Duration) -> String {
    ms(millis(duration))
}

/// `ms` milliseconds in the largest unit that divides it: `10s`, `250ms`, `5m`.
fn ms(ms: u64) -> String {
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ] {
        if ms > 0 && ms.is_multiple_of(size) {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

/// The greatest common divisor (sliding panes here; the stamp granularity in `plan.rs`).
pub(super) fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_their_largest_unit() {
        assert_eq!(ms(0), "0ms");
        assert_eq!(ms(250), "250ms");
        assert_eq!(ms(10_000), "10s");
        assert_eq!(ms(1_500), "1500ms");
        assert_eq!(ms(300_000), "5m");
        assert_eq!(ms(7_200_000), "2h");
        assert_eq!(gcd(10_000, 4_000), 2_000);
    }
}

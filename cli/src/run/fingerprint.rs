//! The fingerprint of a `tideflow run` job with `--checkpoint-dir` ([`JobFingerprint`]): the
//! flags the snapshots' state and committed output depend on, each in one canonical form
//! (`1s` and `1000ms` are one window size), so that resuming a checkpoint with a changed
//! query is refused, naming the flag, instead of giving wrong answers.
//!
//! In it: the input (the resolved path, or the rate parameters), its format, `--split-size`
//! (it decides the partitions of a large file), `--time-field`,
//! `--key-field`, the `--join-static` table, key and type, `--window`, `--agg`, `--mode`,
//! `--watermark-delay`, `--allowed-lateness`, `--max-future-skew`, `--output` and
//! `--late-output` (resolved) and the output format: the committed output is in those files.
//! Left out, free to change on resume: `--workers` (state is kept by key group, as Flink
//! resumes a savepoint at another parallelism), `--trigger` (when results leave, not which),
//! `--snapshot-interval`, `--keep-snapshots`, `--on-error`, `--max-record-bytes` (how bad
//! records are handled) and the progress flags. `--watch`, complete mode, `--idle-timeout`,
//! `--heartbeat` and clusters are refused with a checkpoint directory.
//!
//! Beside the flags, the `state encoding` field names the encoding of the saved state
//! ([`STATE_ENCODING`]), so that a snapshot saved in an older encoding is refused with that
//! field named rather than misread.

use std::path::Path;
use std::time::Duration;

use clap::ValueEnum;

use super::paths::resolve;
use super::plan::{Input, Plan};
use super::rate::RateInput;
use tideflow::{JobFingerprint, Window};

/// The encoding of `run`'s saved window state, raised when it changes: `2`, accumulators
/// with the rare parts of a sum boxed (`cli/src/record/aggregate.rs`); snapshots from before
/// have no such field and are refused.
pub(super) const STATE_ENCODING: &str = "2";

/// The fingerprint of `plan`'s job.
pub(super) fn of(plan: &Plan) -> JobFingerprint {
    let input = match &plan.input {
        Input::Path(path) => resolved(path),
        Input::Rate(rate) => rate_input(rate),
        // Refused with a checkpoint directory; named all the same.
        Input::Tcp(address) => format!("tcp://{address}"),
        Input::Stdin => "-".to_string(),
        // The topic, not the brokers: a cluster may be reached through other brokers.
        Input::Kafka(address) => format!("kafka topic {}", address.topic),
    };
    let join = plan.join.as_ref().map(|join| {
        format!(
            "{} on {} ({})",
            resolved(&join.path),
            join.schema.key_field,
            flag_value(join.kind)
        )
    });
    let aggs: Vec<String> = plan
        .aggs
        .iter()
        .map(|spec| match &spec.field {
            None => spec.kind.name().to_string(),
            Some(field) => format!("{}:{field}", spec.kind.name()),
        })
        .collect();
    let output = match (&plan.output, &plan.kafka_output) {
        (Some(path), _) => resolved(path),
        (None, Some(address)) => format!("kafka topic {}", address.topic),
        (None, None) => "-".to_string(),
    };
    JobFingerprint::new()
        .field("state encoding", STATE_ENCODING)
        .field("--input", input)
        .field("--format", flag_value(plan.format))
        // It decides the partitions of a large file, which the source parts are kept by.
        .field("--split-size", plan.split_size.to_string())
        .field("--time-field", plan.schema.time_field.clone())
        .field("--key-field", optional(plan.schema.key_field.clone()))
        .field("--join-static", optional(join))
        .field("--window", optional(plan.window.map(window)))
        .field("--agg", aggs.join(" "))
        .field("--mode", flag_value(plan.mode))
        .field("--watermark-delay", duration(plan.watermark.delay))
        .field("--allowed-lateness", duration(plan.lateness))
        .field(
            "--max-future-skew",
            optional(plan.watermark.max_future_skew.map(duration)),
        )
        .field("--output", output)
        .field("--output-format", flag_value(plan.output_format))
        .field("--column-type", column_types(plan))
        .field(
            "--late-output",
            optional((plan.late_output.as_deref().map(resolved)).or_else(|| {
                (plan.late_kafka.as_ref()).map(|address| format!("kafka topic {}", address.topic))
            })),
        )
}

/// A Parquet output's --column-type flags (the files' schema), `none` without.
fn column_types(plan: &Plan) -> String {
    let declared = plan.parquet.iter().flat_map(|parquet| &parquet.declared);
    let flags: Vec<String> = declared
        .map(|arg| format!("{}={}", arg.column, arg.kind.name()))
        .collect();
    match flags.is_empty() {
        true => "none".into(),
        false => flags.join(" "),
    }
}

/// `path` absolute with links resolved (as the output checks compare paths), else as given.
fn resolved(path: &Path) -> String {
    resolve(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}

fn optional(value: Option<String>) -> String {
    value.unwrap_or_else(|| "(none)".to_string())
}

/// Every parameter of a rate input, defaults included.
fn rate_input(rate: &RateInput) -> String {
    let count = rate.count.map_or("endless".to_string(), |c| c.to_string());
    format!(
        "rate:rows_per_sec={},keys={},count={count},seed={},partitions={},disorder={}",
        rate.rows_per_sec,
        rate.keys,
        rate.seed,
        rate.partitions,
        duration(rate.disorder)
    )
}

fn window(window: Window) -> String {
    let ms = |ms: u64| duration(Duration::from_millis(ms));
    match window {
        Window::Tumbling { size } => format!("tumbling:{}", ms(size)),
        Window::Sliding { size, slide } => format!("sliding:{},{}", ms(size), ms(slide)),
        Window::Session { gap } => format!("session:{}", ms(gap)),
    }
}

/// A duration in the largest unit that writes it whole (`1s`, `1500ms`, `2h`).
fn duration(duration: Duration) -> String {
    let ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
    let units = [
        (86_400_000, "d"),
        (3_600_000, "h"),
        (60_000, "m"),
        (1_000, "s"),
    ];
    match units.iter().find(|(per, _)| ms != 0 && ms % per == 0) {
        Some((per, unit)) => format!("{}{unit}", ms / per),
        None => format!("{ms}ms"),
    }
}

/// A flag's value as it is written on the command line (`jsonl`, `append`, `left`).
fn flag_value(value: impl ValueEnum) -> String {
    value
        .to_possible_value()
        .map_or_else(String::new, |value| value.get_name().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_windows_have_one_form() {
        assert_eq!(duration(Duration::from_millis(500)), "500ms");
        assert_eq!(duration(Duration::from_millis(1_000)), "1s");
        assert_eq!(duration(Duration::from_millis(1_500)), "1500ms");
        assert_eq!(duration(Duration::from_secs(7_200)), "2h");
        assert_eq!(duration(Duration::ZERO), "0ms");
        let spelled = |text: &str| window(text.parse::<Window>().expect("a window"));
        assert_eq!(spelled("tumbling:1000ms"), spelled("tumbling:1s"));
        assert_eq!(spelled("sliding:60s,30s"), "sliding:1m,30s");
        assert_ne!(spelled("tumbling:500ms"), spelled("tumbling:1s"));
        assert_eq!(flag_value(super::super::Mode::Append), "append");
        assert_eq!(flag_value(super::super::Format::Csv), "csv");
    }
}

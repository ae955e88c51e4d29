//! The [`Plan`] of `tideflow run`: its flags checked and resolved into what the job builds,
//! with nothing opened. `run` executes it (`super::Plan::execute`) and `explain` prints it.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::explain::gcd;
use super::fingerprint;
use super::join::{table_last, JoinType, TableJoin, TABLE_PREFIX};
use super::kafka::{KafkaAddress, KAFKA_PREFIX};
use super::paths::{check_outputs, FlagPath};
use super::rate::{RateInput, RATE_PREFIX};
use super::stages::Stages;
use super::{Format, Mode, ParquetCodec, RunArgs};
use crate::columns::{column_types, ColumnType, ColumnTypeArg};
use crate::progress::ProgressPlan;
use crate::record::{AggSpec, Schema};
use tideflow::sink::ParquetCompression;
use tideflow::source::{OnError, StartingOffsets, WatermarkStrategy};
use tideflow::{Checkpoint, Cluster, Error, Trigger, Window};

/// Where `tideflow run` reads from.
pub(super) enum Input {
    /// A file or a directory.
    Path(PathBuf),
    /// A TCP server, `HOST:PORT`.
    Tcp(String),
    /// Standard input.
    Stdin,
    /// The rate generator.
    Rate(RateInput),
    /// A Kafka topic.
    Kafka(KafkaAddress),
}

impl Input {
    fn new(input: PathBuf) -> Result<Input, Error> {
        if let Some(text) = input.to_str().filter(|t| t.starts_with(RATE_PREFIX)) {
            return Ok(Input::Rate(text.parse()?));
        }
        if let Some(text) = input.to_str().filter(|t| t.starts_with(KAFKA_PREFIX)) {
            return Ok(Input::Kafka(KafkaAddress::parse(text, "--input")?));
        }
        Ok(match input.to_str() {
            Some("-") => Input::Stdin,
            Some(text) => match text.strip_prefix("tcp://") {
                Some(address) => Input::Tcp(address.to_string()),
                None => Input::Path(input),
            },
            None => Input::Path(input),
        })
    }
}

/// The shortest `--watch` interval: a directory listed more often would only burn a core.
const MIN_WATCH: Duration = Duration::from_millis(10);

/// Checks `--watch DUR`: only a directory is watched (a file's appended lines are not
/// followed), and not more often than every [`MIN_WATCH`].
fn check_watch(input: &Input, interval: Duration) -> Result<(), Error> {
    let Input::Path(path) = input else {
        return Err(Error::Config(
            "--watch: only a directory --input can be watched".into(),
        ));
    };
    if std::fs::metadata(path).is_ok_and(|metadata| !metadata.is_dir()) {
        return Err(Error::Config(format!(
            "--watch: {} is a file, and only a directory --input can be watched (for new files in it; a file's appended lines are not followed: pipe them to --input -)",
            path.display()
        )));
    }
    if interval < MIN_WATCH {
        return Err(Error::Config(format!(
            "--watch: {}ms is too short; list the directory at most every {}ms",
            interval.as_millis(),
            MIN_WATCH.as_millis()
        )));
    }
    Ok(())
}

/// The plan of `tideflow run`, built from its flags by `Plan::new`: checked, with nothing
/// opened, read, connected to or bound. `run` executes it (`Plan::execute`) and `explain`
/// prints it, so what `explain` shows is what runs, and a bad flag fails alike in both.
pub struct Plan {
    pub(super) input: Input,
    pub(super) watch: Option<Duration>,
    pub(super) format: Format,
    /// The fields read from each input record.
    pub(super) schema: Schema,
    /// The static table the records are enriched from.
    pub(super) join: Option<TableJoin>,
    /// The numeric fields of the rows the aggregates read: the input's, then the table's
    /// (`table.F`).
    pub(super) agg_value_fields: Vec<String>,
    /// The scalar fields of the rows the aggregates read, ordered likewise.
    pub(super) agg_scalar_fields: Vec<String>,
    pub(super) window: Option<Window>,
    pub(super) aggs: Vec<AggSpec>,
    pub(super) watermark: WatermarkStrategy,
    pub(super) lateness: Duration,
    /// The --late-output file (`None` for a Kafka topic).
    pub(super) late_output: Option<PathBuf>,
    /// The --late-output Kafka topic.
    pub(super) late_kafka: Option<KafkaAddress>,
    pub(super) mode: Mode,
    pub(super) complete_interval: Duration,
    pub(super) trigger: Trigger,
    /// The --output file (`None` for standard output or a Kafka topic).
    pub(super) output: Option<PathBuf>,
    /// The --output Kafka topic.
    pub(super) kafka_output: Option<KafkaAddress>,
    pub(super) output_format: Format,
    /// A Parquet --output's column types and writer settings.
    pub(super) parquet: Option<ParquetPlan>,
    /// The column names of a Kafka input's CSV values (--csv-header).
    pub(super) csv_header: Vec<String>,
    /// Where a Kafka input starts without a snapshot (--starting-offsets).
    pub(super) starting_offsets: StartingOffsets,
    /// The librdkafka properties of every Kafka client (--kafka-option).
    pub(super) kafka_options: Vec<(String, String)>,
    pub(super) on_error: OnError,
    pub(super) max_record_bytes: usize,
    /// Input files longer than this are cut into chunks (`--split-size`).
    pub(super) split_size: u64,
    /// Worker threads in each process.
    pub(super) workers: usize,
    /// --progress and --metrics-addr, checked (opened by `execute`).
    pub(super) progress: Option<ProgressPlan>,
    /// The ids the job gives its stateful operators (`KeyedStream::named`), in dataflow order:
    /// `static_join` with a `--join-static` table, then the aggregation's (`running_aggregate`,
    /// `tumbling`, `sliding`, `sliding-update` or `session`): the library's default names, so
    /// the progress reports name their state as they always did. Snapshots keep state under
    /// these ids, so a changed query is refused on resume, naming the operator.
    pub(super) stateful: Vec<&'static str>,
    pub(super) checkpoint: Option<Checkpoint>,
    pub(super) cluster: Option<Cluster>,
    /// What a query (`tideflow sql`) adds around the aggregation; `None` for `tideflow run`.
    pub(super) stages: Option<Arc<dyn Stages>>,
}

/// A Parquet --output directory's column types (`columns.rs`) and writer settings.
pub(super) struct ParquetPlan {
    /// Whether the output is a Delta table (`delta:PATH`).
    pub(super) delta: bool,
    /// The key column's type.
    pub(super) key: ColumnType,
    /// Each aggregate column's type, in --agg order.
    pub(super) types: Vec<ColumnType>,
    /// The --column-type flags, as given (for the job's fingerprint).
    pub(super) declared: Vec<ColumnTypeArg>,
    pub(super) compression: ParquetCompression,
    pub(super) row_group_rows: usize,
}

/// The error of a Parquet input that is not a file or directory.
pub(super) fn parquet_input_refused() -> Error {
    Error::Config(
        "--format: parquet is read from a file or directory --input only (not tcp://, - or kafka://); pass --format jsonl or --format csv".into(),
    )
}

/// The prefix of a Delta Lake table --output.
pub(super) const DELTA_PREFIX: &str = "delta:";

/// Checks the Parquet output flags against the output (a Delta table's folder if `delta`) and
/// mode, and plans the output.
fn parquet_plan(
    args: &RunArgs,
    output_format: Format,
    output: Option<&Path>,
    delta: bool,
) -> Result<Option<ParquetPlan>, Error> {
    if output_format != Format::Parquet {
        let flag = [
            ("--column-type", !args.column_types.is_empty()),
            ("--parquet-compression", args.parquet_compression.is_some()),
            (
                "--parquet-row-group-rows",
                args.parquet_row_group_rows.is_some(),
            ),
        ]
        .into_iter()
        .find(|(_, given)| *given);
        if let Some((flag, _)) = flag {
            return Err(Error::Config(format!(
                "{flag}: only with --output-format parquet"
            )));
        }
        return Ok(None);
    }
    if output.is_none() {
        return Err(Error::Config(
            "--output-format: parquet writes into a directory: pass --output DIR (not standard output or a Kafka topic)".into(),
        ));
    }
    if delta && args.mode == Mode::Update {
        return Err(Error::Config(
            "--mode: a delta: --output takes append or complete mode; update rows would need a MERGE on (key, window), which tideflow does not do (write them to JSON lines, Parquet or Kafka)".into(),
        ));
    }
    if args.mode == Mode::Complete && !delta {
        return Err(Error::Config(
            "--mode: a parquet --output takes append or update mode (complete mode rewrites its whole table each time: use a JSON lines or CSV --output)".into(),
        ));
    }
    let (key, types) = column_types(&args.aggs, &args.column_types)?;
    Ok(Some(ParquetPlan {
        delta,
        key,
        types,
        declared: args.column_types.clone(),
        compression: match args.parquet_compression.unwrap_or(ParquetCodec::Snappy) {
            ParquetCodec::Snappy => ParquetCompression::Snappy,
            ParquetCodec::Zstd => ParquetCompression::Zstd(3),
            ParquetCodec::None => ParquetCompression::None,
        },
        row_group_rows: args
            .parquet_row_group_rows
            .map_or(1 << 20, |rows| usize::try_from(rows).unwrap_or(usize::MAX)),
    }))
}

impl Plan {
    /// Checks the flags of `run` (and `explain`) and plans the job.
    pub(crate) fn new(args: RunArgs) -> Result<Self, Error> {
        // What the job reads and writes, checked once every other flag is (below).
        let (reads, writes) = paths_of(&args);
        let input = Input::new(args.input.clone())?;
        let format = match &input {
            Input::Rate(_) => Format::Jsonl,
            Input::Kafka(_) => args.format.unwrap_or(Format::Jsonl),
            Input::Path(path) => match args.format {
                Some(format) => format,
                None => Format::of_input(path)?,
            },
            Input::Tcp(_) | Input::Stdin => args.format.ok_or_else(|| {
                Error::Config("--format: required with a tcp:// or - input; pass --format jsonl or --format csv".into())
            })?,
        };
        if format == Format::Parquet && !matches!(input, Input::Path(_)) {
            return Err(parquet_input_refused());
        }
        if args.trigger.finishes_when_idle() && matches!(input, Input::Tcp(_) | Input::Stdin) {
            return Err(Error::Config(
                "--trigger: available-now and once read the input there is at start, which a tcp:// or - input does not have; use continuous or interval:DUR".into(),
            ));
        }
        if let Some(interval) = args.watch {
            check_watch(&input, interval)?;
        }
        let kafka_output = match args.output.starts_with(KAFKA_PREFIX) {
            true => Some(KafkaAddress::parse(&args.output, "--output")?),
            false => None,
        };
        let late_kafka = match args.late_output.as_deref().and_then(|p| p.to_str()) {
            Some(text) if text.starts_with(KAFKA_PREFIX) => {
                Some(KafkaAddress::parse(text, "--late-output")?)
            }
            _ => None,
        };
        if late_kafka.is_some()
            && late_kafka.as_ref().map(|a| &a.topic) == kafka_output.as_ref().map(|a| &a.topic)
        {
            return Err(Error::Config(
                "--late-output: the same Kafka topic as --output; late records need a topic of their own".into(),
            ));
        }
        let starting_offsets = check_kafka_flags(
            &args,
            &input,
            format,
            kafka_output.is_some(),
            late_kafka.is_some(),
        )?;
        let mut columns = HashSet::new();
        for spec in &args.aggs {
            if !columns.insert(spec.column()) {
                return Err(Error::Config(format!(
                    "--agg: {} is given twice",
                    spec.column()
                )));
            }
        }
        // Numeric fields (sum, avg, min, max) and scalar fields (first, last,
        // count_distinct), each without repeats.
        let (mut value_fields, mut scalar_fields): (Vec<String>, Vec<String>) =
            (Vec::new(), Vec::new());
        for spec in &args.aggs {
            let Some(field) = &spec.field else { continue };
            let fields = if spec.kind.reads_scalars() {
                &mut scalar_fields
            } else {
                &mut value_fields
            };
            if !fields.contains(field) {
                fields.push(field.clone());
            }
        }
        if args.window.is_none() {
            if args.mode == Mode::Append {
                return Err(Error::Config(
                    "--window: required in append mode; without --window, pass --mode update or --mode complete for running aggregates per key".into(),
                ));
            }
            for (flag, given) in [
                ("--allowed-lateness", args.allowed_lateness.is_some()),
                ("--late-output", args.late_output.is_some()),
            ] {
                if given {
                    return Err(Error::Config(format!(
                        "{flag}: only with --window (running aggregates take every record)"
                    )));
                }
            }
        }
        let complete_interval = match (args.mode, args.complete_interval) {
            (Mode::Complete, None) => Duration::from_secs(1),
            (Mode::Complete, Some(Duration::ZERO)) => {
                return Err(Error::Config(
                    "--complete-interval: must be longer than 0ms".into(),
                ))
            }
            (Mode::Complete, Some(interval)) => interval,
            (_, Some(_)) => {
                return Err(Error::Config(
                    "--complete-interval: only with --mode complete".into(),
                ))
            }
            (_, None) => Duration::ZERO,
        };
        if args.join_static.is_none() {
            // Without a table, `table.F` would read an input field of that name: a column
            // of nulls, silently.
            let table_field = (value_fields.iter().chain(&scalar_fields))
                .find(|field| field.starts_with(TABLE_PREFIX));
            if let Some(field) = table_field {
                return Err(Error::Config(format!(
                    "--agg: {field} reads a column of the --join-static table, and there is none; pass --join-static PATH --join-key FIELD"
                )));
            }
        }
        let delta = args.output.strip_prefix(DELTA_PREFIX).map(PathBuf::from);
        if delta
            .as_ref()
            .is_some_and(|path| path.as_os_str().is_empty())
        {
            return Err(Error::Config(
                "--output: delta: needs the table's folder, e.g. delta:lake/clicks".into(),
            ));
        }
        if delta.is_some() && args.output_format.is_some_and(|f| f != Format::Parquet) {
            return Err(Error::Config(
                "--output-format: a delta: --output writes Parquet files; leave --output-format out".into(),
            ));
        }
        let output = match &delta {
            Some(path) => Some(path.clone()),
            None => {
                (args.output != "-" && kafka_output.is_none()).then(|| PathBuf::from(&args.output))
            }
        };
        let output_format = args
            .output_format
            .or_else(|| delta.as_ref().map(|_| Format::Parquet))
            .or_else(|| output.as_deref().and_then(Format::from_extension))
            .unwrap_or(Format::Jsonl);
        let parquet = parquet_plan(&args, output_format, output.as_deref(), delta.is_some())?;
        let join = match (args.join_static, args.join_key) {
            (Some(path), Some(join_key)) => {
                if args.key_field.is_none() {
                    return Err(Error::Config(
                        "--join-static: needs --key-field, the record field matched against the table's --join-key".into(),
                    ));
                }
                let kind = args.join_type.unwrap_or(JoinType::Inner);
                Some(TableJoin::new(
                    path,
                    join_key,
                    kind,
                    &value_fields,
                    &scalar_fields,
                )?)
            }
            _ => None,
        };
        // The input's rows hold its own fields; the table's (`table.F`) are appended after
        // them by the join, so the aggregates read the input's fields, then the table's.
        let agg_value_fields = table_last(&value_fields, join.is_some());
        let agg_scalar_fields = table_last(&scalar_fields, join.is_some());
        if join.is_some() {
            value_fields.retain(|field| !field.starts_with(TABLE_PREFIX));
            scalar_fields.retain(|field| !field.starts_with(TABLE_PREFIX));
        }
        let checkpoint = match args.checkpoint_dir {
            None => None,
            Some(dir) => {
                let refused = [
                    (
                        matches!(input, Input::Tcp(_) | Input::Stdin),
                        "a tcp:// or - input cannot be replayed after a crash; read files or rate:...",
                    ),
                    (args.watch.is_some(), "--watch is not supported with snapshots yet"),
                    (
                        args.mode == Mode::Complete,
                        "--mode complete is not supported with snapshots yet; use append or update",
                    ),
                    (
                        args.idle_timeout.is_some() || args.heartbeat.is_some(),
                        "--idle-timeout and --heartbeat make stamps depend on timing, which a replay cannot repeat",
                    ),
                ];
                if let Some((_, reason)) = refused.iter().find(|(given, _)| *given) {
                    return Err(Error::Config(format!("--checkpoint-dir: {reason}")));
                }
                let mut checkpoint = Checkpoint::new(dir);
                if let Some(interval) = args.snapshot_interval {
                    if interval.is_zero() {
                        return Err(Error::Config(
                            "--snapshot-interval: must be longer than 0ms".into(),
                        ));
                    }
                    checkpoint.interval = interval;
                }
                if let Some(keep) = args.keep_snapshots {
                    checkpoint.keep = usize::try_from(keep).unwrap_or(usize::MAX);
                }
                Some(checkpoint)
            }
        };
        let cluster = args.cluster.cluster()?;
        let stateful = stateful_operators(join.is_some(), args.window, args.mode);
        let mut plan = Plan {
            input,
            watch: args.watch,
            format,
            schema: Schema {
                time_field: args.time_field,
                key_field: args.key_field,
                value_fields,
                scalar_fields,
            },
            join,
            agg_value_fields,
            agg_scalar_fields,
            window: args.window,
            aggs: args.aggs,
            watermark: watermark_strategy(
                args.watermark_delay,
                args.idle_timeout,
                args.heartbeat,
                args.max_future_skew,
                stamp_granularity(
                    args.window,
                    args.mode,
                    args.allowed_lateness.unwrap_or(Duration::ZERO),
                    args.late_output.is_some(),
                ),
            )?,
            lateness: args.allowed_lateness.unwrap_or(Duration::ZERO),
            late_output: args.late_output.filter(|_| late_kafka.is_none()),
            late_kafka,
            mode: args.mode,
            complete_interval,
            trigger: args.trigger,
            output,
            kafka_output,
            output_format,
            parquet,
            csv_header: args.csv_header,
            starting_offsets,
            kafka_options: args.kafka_options,
            on_error: args.on_error,
            max_record_bytes: usize::try_from(args.max_record_bytes).unwrap_or(usize::MAX),
            split_size: args.split_size,
            workers: usize::from(args.workers),
            progress: ProgressPlan::new(
                args.progress.as_deref(),
                args.progress_interval,
                args.metrics_addr.as_deref(),
                args.ui.ui.is_some(),
            )?,
            stateful,
            checkpoint,
            cluster,
            stages: None,
        };
        if let Input::Rate(rate) = &plan.input {
            // The rate source is built when the dataflow starts: check its fields now.
            rate.source(&plan.schema)?;
        }
        check_outputs(&reads, &writes, plan.watch.is_some())?;
        // Kept in every snapshot: a resume with a changed query is refused, naming the flag.
        let job = fingerprint::of(&plan);
        if let Some(checkpoint) = plan.checkpoint.as_mut() {
            checkpoint.job = job;
        }
        Ok(plan)
    }

    /// The plan with a query's `stages` around the aggregation. With `reads`, the stages
    /// rewrite the rows: the source decodes those fields as scalars (and the time field), and
    /// the stages make the rows the aggregation reads.
    pub(crate) fn with_stages(
        mut self,
        reads: Option<Vec<String>>,
        stages: Arc<dyn Stages>,
    ) -> Result<Self, Error> {
        if let Some(reads) = reads {
            self.schema.value_fields = Vec::new();
            self.schema.scalar_fields = reads;
            self.schema.key_field = None;
        }
        if let Input::Rate(rate) = &self.input {
            rate.source(&self.schema)?;
        }
        let job = fingerprint::of(&self).field("query", stages.fingerprint());
        if let Some(checkpoint) = self.checkpoint.as_mut() {
            checkpoint.job = job;
        }
        self.stages = Some(stages);
        Ok(self)
    }

    /// The ids of the stateful operators the job builds, in dataflow order (the names
    /// [`tideflow::JobReport::state`] and the snapshots know them by).
    pub fn stateful_operators(&self) -> &[&'static str] {
        &self.stateful
    }

    /// The id of the aggregation (the last stateful operator).
    pub(super) fn aggregation_id(&self) -> &'static str {
        self.stateful.last().copied().unwrap_or("running_aggregate")
    }
}

/// The files the job reads (the `--input` file or directory, the `--join-static` table) and
/// the files it writes (`--output`, `--late-output`, the `--on-error` dead-letter file and the
/// `--progress` file), each with its flag; `-` and `tcp://`/`rate:` inputs are none.
fn paths_of(args: &RunArgs) -> (Vec<FlagPath>, Vec<FlagPath>) {
    let mut reads = Vec::new();
    let input = args.input.to_string_lossy();
    let not_a_path = ["tcp://", RATE_PREFIX, KAFKA_PREFIX];
    if input != "-" && !not_a_path.iter().any(|prefix| input.starts_with(prefix)) {
        reads.push(("--input", args.input.clone()));
    }
    if let Some(table) = &args.join_static {
        reads.push(("--join-static", table.clone()));
    }
    let mut writes = Vec::new();
    if args.output != "-" && !args.output.starts_with(KAFKA_PREFIX) {
        let path = args
            .output
            .strip_prefix(DELTA_PREFIX)
            .unwrap_or(&args.output);
        writes.push(("--output", PathBuf::from(path)));
    }
    if let Some(late) = args
        .late_output
        .as_ref()
        .filter(|late| !late.to_string_lossy().starts_with(KAFKA_PREFIX))
    {
        writes.push(("--late-output", late.clone()));
    }
    if let OnError::DeadLetter(path) = &args.on_error {
        writes.push(("--on-error", path.clone()));
    }
    if let Some(progress) = args.progress.as_deref().filter(|p| *p != "-") {
        writes.push(("--progress", PathBuf::from(progress)));
    }
    (reads, writes)
}

/// Checks the Kafka flags against the input, its `format` and whether the output and the late
/// output are Kafka topics, and returns where a Kafka input starts.
fn check_kafka_flags(
    args: &RunArgs,
    input: &Input,
    format: Format,
    kafka_output: bool,
    late_kafka: bool,
) -> Result<StartingOffsets, Error> {
    let kafka_input = matches!(input, Input::Kafka(_));
    let only_kafka_input =
        |flag: &str| Error::Config(format!("{flag}: only with a kafka:// --input"));
    if !args.kafka_options.is_empty() && !kafka_input && !kafka_output && !late_kafka {
        return Err(Error::Config(
            "--kafka-option: only with a kafka:// --input, --output or --late-output".into(),
        ));
    }
    let kafka_csv = kafka_input && format == Format::Csv;
    if !args.csv_header.is_empty() && !kafka_csv {
        return Err(Error::Config(
            "--csv-header: only with a kafka:// --input and --format csv (files and sockets have a header row)".into(),
        ));
    }
    if kafka_csv && args.csv_header.is_empty() {
        return Err(Error::Config(
            "--csv-header: required with a kafka:// --input and --format csv: name the columns of each message's row, e.g. --csv-header ts,user,amount".into(),
        ));
    }
    if kafka_output && args.output_format == Some(Format::Csv) {
        return Err(Error::Config(
            "--output-format: a kafka:// --output takes JSON values only; pass --output-format jsonl or leave it out".into(),
        ));
    }
    let Input::Kafka(address) = input else {
        if args.starting_offsets.is_some() {
            return Err(only_kafka_input("--starting-offsets"));
        }
        return Ok(StartingOffsets::Earliest);
    };
    match &args.starting_offsets {
        None => Ok(StartingOffsets::Earliest),
        Some(text) => StartingOffsets::parse_for_topic(text, &address.topic).map_err(|e| {
            let message = e.to_string();
            let why = message
                .strip_prefix("starting offsets: ")
                .unwrap_or(&message);
            Error::Config(format!("--starting-offsets: {why}"))
        }),
    }
}

/// The ids of the stateful operators of a job with a `--join-static` table (`join`), `window`
/// and `mode`, in dataflow order: each operator's default name.
fn stateful_operators(join: bool, window: Option<Window>, mode: Mode) -> Vec<&'static str> {
    let keyed = match window {
        None => "running_aggregate",
        Some(Window::Tumbling { .. }) => "tumbling",
        // Append mode merges contributions; update and complete modes keep each window (as
        // tumbling windows do, which they are when the slide is the size).
        Some(Window::Sliding { .. }) if mode == Mode::Append => "sliding",
        Some(Window::Sliding { size, slide }) if size == slide => "tumbling",
        Some(Window::Sliding { .. }) => "sliding-update",
        Some(Window::Session { .. }) => "session",
    };
    let mut ids = Vec::new();
    if join {
        ids.push("static_join");
    }
    ids.push(keyed);
    ids
}

/// How coarsely records may be stamped without changing any result
/// ([`WatermarkStrategy::granularity`]): for aligned windows in append mode, the largest step
/// that divides the size, the slide and the allowed lateness, so every close time is a multiple
/// of it. Exact stamps otherwise: sessions end at any millisecond, update and complete mode
/// emit as each stamp passes, and the late output shows the watermark a record arrived behind.
fn stamp_granularity(
    window: Option<Window>,
    mode: Mode,
    lateness: Duration,
    late_output: bool,
) -> Option<Duration> {
    if mode != Mode::Append || late_output {
        return None;
    }
    let (size, slide) = match window? {
        Window::Tumbling { size } => (size, size),
        Window::Sliding { size, slide } => (size, slide),
        Window::Session { .. } => return None,
    };
    let lateness = u64::try_from(lateness.as_millis()).ok()?;
    let granule = gcd(gcd(size, slide), lateness);
    (granule > 1).then(|| Duration::from_millis(granule))
}

/// The watermark strategy of `--watermark-delay`, `--idle-timeout`, `--heartbeat` and
/// `--max-future-skew`, with stamps as coarse as `granularity`.
fn watermark_strategy(
    delay: Duration,
    idle_timeout: Option<Duration>,
    heartbeat: Option<Duration>,
    max_future_skew: Option<Duration>,
    granularity: Option<Duration>,
) -> Result<WatermarkStrategy, Error> {
    for (flag, value) in [("--idle-timeout", idle_timeout), ("--heartbeat", heartbeat)] {
        if value == Some(Duration::ZERO) {
            return Err(Error::Config(format!("{flag}: must be longer than 0ms")));
        }
    }
    Ok(WatermarkStrategy {
        delay,
        idle_timeout,
        heartbeat,
        max_future_skew,
        granularity,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stateful_operators_are_named_as_the_job_reports_their_state() {
        let tumbling = Window::tumbling(Duration::from_secs(10)).ok();
        let sliding = Window::sliding(Duration::from_secs(10), Duration::from_secs(5)).ok();
        let hopping_by_size = Window::sliding(Duration::from_secs(5), Duration::from_secs(5)).ok();
        let session = Window::session(Duration::from_secs(5)).ok();
        let cases = [
            (false, None, Mode::Update, vec!["running_aggregate"]),
            (
                true,
                None,
                Mode::Complete,
                vec!["static_join", "running_aggregate"],
            ),
            (false, tumbling, Mode::Append, vec!["tumbling"]),
            (false, sliding, Mode::Append, vec!["sliding"]),
            (false, sliding, Mode::Update, vec!["sliding-update"]),
            (false, hopping_by_size, Mode::Complete, vec!["tumbling"]),
            (true, session, Mode::Update, vec!["static_join", "session"]),
        ];
        for (join, window, mode, expected) in cases {
            assert_eq!(
                stateful_operators(join, window, mode),
                expected,
                "{window:?} {mode:?}"
            );
        }
    }
}

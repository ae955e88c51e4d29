//! `tideflow run`: windows over a file or directory of JSON lines or CSV, a TCP socket or
//! standard input, optionally enriched from a static table (`--join-static`).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, ValueEnum};
use timely::ExchangeData;

use super::columns::{ColumnEncoder, ColumnTypeArg, RowShape};
use super::output::{write_key, LateEncoder, OutputRow, RowEncoder};
use super::{duration_arg, spec_arg, trigger_arg};
use crate::progress::{CliProgress, ProgressPlan};
use crate::record::{
    decode_csv, decode_json, AggSpec, Aggregates, CsvColumns, CsvOriginal, Key, Row, RowAggregator,
    Schema,
};
use crate::signals::{self, SignalStop};
use crate::ui::{Graph, InputSize, UiArgs, Watch};
use tideflow::sink::parquet::arrow_schema::TimeUnit;
use tideflow::sink::{
    CompleteSink, ConsoleSink, DeltaSink, Encoder, FileSink, KafkaSink, OrderedSink, ParquetSink,
    TableChange,
};
use tideflow::source::Source;
use tideflow::source::{
    Csv, FileFormat, FileSource, JsonLines, KafkaMessage, KafkaSource, OnError, Parquet,
    SocketSource, StdinSource, DEFAULT_MAX_RECORD_BYTES, DEFAULT_SPLIT_BYTES,
};
use tideflow::Error;
use tideflow::Stream;
use tideflow::Window;
use tideflow::{execute, Config, Flow, JobReport, StopHandle};
use tideflow::{Change, LateRecord, Trigger, WindowResult};
use tideflow::{Cluster, SECRET_VAR};

pub(crate) mod explain;
mod fingerprint;
mod join;
mod kafka;
mod paths;
mod plan;
mod rate;
pub(crate) mod stages;

use join::JoinType;
use plan::Input;
pub use plan::Plan;
use stages::PlanEncoder;

/// A record or output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// One JSON object per line.
    Jsonl,
    /// Comma-separated values with a header row.
    Csv,
    /// Apache Parquet: as --input, a .parquet file or a directory of them (each file a
    /// partition; nested columns cannot be read); as --output, a directory of Parquet files
    /// with a commit log.
    Parquet,
}

impl Format {
    /// The format a file name suggests, if any.
    fn from_extension(path: &Path) -> Option<Format> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "jsonl" | "ndjson" | "json" => Some(Format::Jsonl),
            "csv" => Some(Format::Csv),
            "parquet" => Some(Format::Parquet),
            _ => None,
        }
    }

    /// The format of an input without --format: from the file's extension, or for a
    /// directory from its files' extensions, which must all name one format.
    fn of_input(path: &Path) -> Result<Format, Error> {
        let unknown = |file: &Path| {
            Error::Config(format!(
                "--format: cannot tell the format of {} from its name; pass --format jsonl or --format csv",
                file.display()
            ))
        };
        if !path.is_dir() {
            return Format::from_extension(path).ok_or_else(|| unknown(path));
        }
        let files = tideflow::source::input_files(path)?;
        let mut first: Option<(&PathBuf, Format)> = None;
        for file in &files {
            let format = Format::from_extension(file).ok_or_else(|| unknown(file))?;
            match first {
                None => first = Some((file, format)),
                Some((one, seen)) if seen != format => {
                    return Err(Error::Config(format!(
                        "--format: the files of {} are not of one format ({} and {}); pass --format jsonl or --format csv",
                        path.display(),
                        one.display(),
                        file.display()
                    )))
                }
                Some(_) => {}
            }
        }
        first.map(|(_, format)| format).ok_or_else(|| {
            Error::Config(format!(
                "--format: {} has no files to tell the format from; pass --format jsonl or --format csv",
                path.display()
            ))
        })
    }
}

/// How a Parquet output compresses its column chunks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum ParquetCodec {
    /// Snappy: fast, moderate ratio (Spark's default).
    Snappy,
    /// Zstandard, level 3: smaller files, slower to write.
    Zstd,
    /// Not compressed.
    None,
}

/// Which rows `tideflow run` writes (DESIGN.md "Output modes").
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Mode {
    /// Each window's row once, when the watermark passes its end (plus the allowed lateness).
    Append,
    /// A row whenever a window's result changes as the watermark advances, then its final
    /// row; each row has "final": true|false, and a session that grows or merges retracts its
    /// earlier rows ("retract": true).
    Update,
    /// The whole result table every --complete-interval while it changes, and at the end;
    /// each row has its table's "batch" number and "final". An --output file is replaced by
    /// each new table.
    Complete,
}

/// Arguments of `tideflow run`.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// Input file, or a directory whose files are all read (each file is one partition);
    /// tcp://HOST:PORT to read from a server (until it closes the connection); - for standard
    /// input (until end of file); kafka://HOST:PORT[,HOST:PORT]/TOPIC for a Kafka topic (each
    /// partition is one partition, with its own watermark; a message's value is one record,
    /// and its kafka_timestamp, kafka_key, kafka_partition, kafka_offset and kafka_topic can be
    /// read as fields); rate:rows_per_sec=N[,keys=K][,count=C][,seed=S][,partitions=P]
    /// [,disorder=MS] for generated records with the fields ts, key and value. tcp:// and - need
    /// --format: jsonl, or csv with a header row.
    #[arg(long, value_name = "PATH")]
    input: PathBuf,
    /// Keep watching the --input directory, listing it again every DUR (at least 10ms) and
    /// reading new files, until the process is stopped (Ctrl-C). A file --input is refused:
    /// lines appended to a file are not followed.
    #[arg(long, value_name = "DUR", value_parser = duration_arg)]
    watch: Option<Duration>,
    /// Input format. By default, from the input's extension (.jsonl/.ndjson/.json or .csv),
    /// or for a directory from its files' extensions, which must agree; jsonl for kafka://.
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// The column names of a kafka:// input's CSV values, comma-separated: a message holds one
    /// row and no header.
    #[arg(long, value_name = "NAMES", value_delimiter = ',')]
    csv_header: Vec<String>,
    /// Where a kafka:// input starts when the job has no snapshot to resume from (a resumed job
    /// starts at its snapshot's offsets): earliest (the default, as Flink's Kafka source),
    /// latest, or as in Spark a JSON object with an offset for every partition,
    /// {"TOPIC":{"0":23,"1":-2}}, where -2 is earliest and -1 latest.
    #[arg(long, value_name = "WHERE")]
    starting_offsets: Option<String>,
    /// A librdkafka property for the Kafka clients of kafka:// inputs and outputs, as
    /// KEY=VALUE, e.g. security.protocol=ssl; repeat for several.
    #[arg(long = "kafka-option", value_name = "KEY=VALUE", value_parser = kafka::option_arg)]
    kafka_options: Vec<(String, String)>,
    /// Field holding the event time: integer ms since the epoch, or an RFC 3339 string.
    #[arg(long, value_name = "FIELD")]
    time_field: String,
    /// Field to group by. Without it every record has the key null.
    #[arg(long, value_name = "FIELD")]
    key_field: Option<String>,
    /// Enrich each record with the rows of a static table, a JSON lines or CSV file (format
    /// from its extension) read whole before any record is joined: the rows whose --join-key
    /// field equals the record's --key-field (compared as text; null matches nothing). Aggregates
    /// read the table's columns as table.F, e.g. sum:table.credit or count_distinct:table.segment.
    /// A bad table line stops the job.
    #[arg(long, value_name = "PATH", requires = "join_key")]
    join_static: Option<PathBuf>,
    /// The --join-static table's field matched against --key-field.
    #[arg(long, value_name = "FIELD", requires = "join_static")]
    join_key: Option<String>,
    /// Which records --join-static keeps (as in SQL, a record counts once per table row with its
    /// key). Default inner.
    #[arg(long, value_enum, value_name = "TYPE", requires = "join_static")]
    join_type: Option<JoinType>,
    /// tumbling:SIZE, sliding:SIZE,SLIDE or session:GAP, e.g. tumbling:10s. Without it, each
    /// key's aggregates run over all its records (--mode update or complete).
    #[arg(long, value_name = "SPEC", value_parser = spec_arg::<Window>)]
    window: Option<Window>,
    /// count, sum:F, avg:F, min:F, max:F, first:F, last:F or count_distinct:F; repeat for
    /// several.
    #[arg(long = "agg", value_name = "AGG", required = true, value_parser = spec_arg::<AggSpec>)]
    aggs: Vec<AggSpec>,
    /// How far out of order events may arrive (per input file), e.g. 5s.
    #[arg(long, value_name = "DUR", default_value = "0ms", value_parser = duration_arg)]
    watermark_delay: Duration,
    /// How long after its end a window still takes late records, e.g. 30s (Flink's allowed
    /// lateness). The window's row is written once, when the watermark passes end + lateness.
    /// Default 0ms.
    #[arg(long, value_name = "DUR", value_parser = duration_arg)]
    allowed_lateness: Option<Duration>,
    /// Write records too late for every window they belong to here (a file, or a Kafka topic
    /// kafka://HOST:PORT/TOPIC, exactly-once with --checkpoint-dir), instead of dropping them:
    /// JSON lines with their event time, the watermark they arrived behind, the reason, and the
    /// whole record as read (a JSON line as it was; a CSV row as an object of its cells, as
    /// strings, by header name), so that they can be replayed.
    #[arg(long, value_name = "PATH")]
    late_output: Option<PathBuf>,
    /// Output mode: append, update or complete.
    #[arg(long, value_enum, default_value = "append")]
    mode: Mode,
    /// In complete mode, how often the result table is written while it changes, e.g. 500ms.
    /// Default 1s.
    #[arg(long, value_name = "DUR", value_parser = duration_arg)]
    complete_interval: Option<Duration>,
    /// Where results go: a file path, - for standard output, kafka://HOST:PORT[,...]/TOPIC
    /// for a Kafka topic (an existing one; JSON values keyed by the row's key; exactly-once
    /// with --checkpoint-dir, in one Kafka transaction per snapshot, else at-least-once), or
    /// delta:PATH for a Delta Lake table (created if missing; append mode adds one table
    /// version per snapshot, exactly-once with --checkpoint-dir; complete mode overwrites the
    /// table each time; update mode is refused).
    #[arg(long, value_name = "PATH", default_value = "-")]
    output: String,
    /// Output format. By default, from the output's extension, else JSON lines. parquet
    /// writes typed columns into the --output directory: one Parquet file per snapshot with
    /// --checkpoint-dir (exactly-once), listed in its commit log _tideflow_log/ when committed.
    #[arg(long, value_enum)]
    output_format: Option<Format>,
    /// With --output-format parquet: the type of the key or of a sum, min, max, first or last
    /// column, COLUMN=TYPE with TYPE int64, float64, string or bool (by default float64 for
    /// sum, min and max, string for the key, first and last); repeat for several. A value the
    /// type cannot hold stops the job.
    #[arg(long = "column-type", value_name = "COLUMN=TYPE", value_parser = spec_arg::<ColumnTypeArg>)]
    column_types: Vec<ColumnTypeArg>,
    /// With --output-format parquet: how column chunks are compressed. Default snappy.
    #[arg(long, value_enum)]
    parquet_compression: Option<ParquetCodec>,
    /// With --output-format parquet: the most rows in a row group. Default 1048576.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    parquet_row_group_rows: Option<u64>,
    /// When results leave: continuous (as soon as the watermark passes them), interval:DUR
    /// (micro-batches: the watermark advances every DUR), available-now (read the input there
    /// is at start, in batches, then stop) or once (all of it as one batch, then stop). The
    /// final results are the same.
    #[arg(long, value_name = "TRIGGER", default_value = "continuous", value_parser = trigger_arg)]
    trigger: Trigger,
    /// Worker threads (in each process of a cluster); at most 256 over all processes, the
    /// number of key groups keyed state is spread over.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    workers: u16,
    #[command(flatten)]
    cluster: ClusterArgs,
    /// What to do with a record that cannot be decoded: fail (stop with its file and line),
    /// skip (drop and count it) or dead-letter:PATH (write it to PATH as a JSON line, count it).
    #[arg(long, value_name = "POLICY", default_value = "fail", value_parser = spec_arg::<OnError>)]
    on_error: OnError,
    /// The longest record accepted, in bytes; a longer one is a bad record (see --on-error).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_RECORD_BYTES as u64, value_parser = clap::value_parser!(u64).range(1..))]
    max_record_bytes: u64,
    /// Cut an input file longer than this many bytes into chunks at line starts, each read by
    /// its own worker as its own partition (with its own watermark), as Spark splits files; 0
    /// never splits. CSV files with a double quote anywhere are not split (a quoted field may
    /// hold a line break). The chunks do not depend on --workers, so neither do the results.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_SPLIT_BYTES)]
    split_size: u64,
    /// An input file (partition) that sends nothing for DUR stops holding the watermark back
    /// until it sends again; its records may then be late depending on timing.
    #[arg(long, value_name = "DUR", value_parser = duration_arg)]
    idle_timeout: Option<Duration>,
    /// While no record arrives for DUR, move the watermark with the wall clock (from where it
    /// was), re-checked every DUR, so that windows close on a quiet input.
    #[arg(long, value_name = "DUR", value_parser = duration_arg)]
    heartbeat: Option<Duration>,
    /// A record more than DUR ahead of the wall clock is still aggregated but does not advance
    /// the watermark; such records are counted at exit.
    #[arg(long, value_name = "DUR", value_parser = duration_arg)]
    max_future_skew: Option<Duration>,
    /// Take a snapshot of the job's state here every --snapshot-interval, and resume from the
    /// newest one when the same command runs again: after a crash the --output and
    /// --late-output files hold every row exactly once (they grow by whole snapshots). Needs a
    /// replayable input: files (not --watch), rate:... or kafka://... (offsets in the
    /// snapshots; a kafka:// --output is then exactly-once too)
    #[arg(long, value_name = "DIR")]
    checkpoint_dir: Option<PathBuf>,
    /// Processing time between snapshots, e.g. 500ms. Default 1s.
    #[arg(long, value_name = "DUR", value_parser = duration_arg, requires = "checkpoint_dir")]
    snapshot_interval: Option<Duration>,
    /// How many complete snapshots to keep. Default 2.
    #[arg(long, value_name = "N", requires = "checkpoint_dir", value_parser = clap::value_parser!(u64).range(1..=1000))]
    keep_snapshots: Option<u64>,
    /// Write a progress report every --progress-interval as one JSON line to PATH, or to
    /// standard error for - (apart from the rows on standard output): input and processed
    /// rows/s, watermark and event-time lag, windows emitted, late rows, state, snapshots and
    /// latency percentiles.
    #[arg(long, value_name = "PATH")]
    progress: Option<String>,
    /// How often progress reports are taken, for --progress and --metrics-addr. Default 1s.
    #[arg(long, value_name = "DUR", value_parser = duration_arg)]
    progress_interval: Option<Duration>,
    /// Serve the latest progress report in Prometheus text format at http://HOST:PORT/metrics.
    /// Binds exactly there; a PORT alone binds 127.0.0.1 (localhost only). Keep it on
    /// localhost or a trusted network.
    #[arg(long, value_name = "[HOST:]PORT")]
    metrics_addr: Option<String>,
    #[command(flatten)]
    ui: UiArgs,
}

/// The cluster flags of `tideflow run`.
#[derive(Debug, Args)]
pub(crate) struct ClusterArgs {
    /// Run as one of N processes of a cluster (with --process-id and --hosts or --hostfile);
    /// every process runs the same command with its own --process-id.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    processes: Option<u16>,
    /// This process's index in the cluster, from 0.
    #[arg(long, value_name = "I", requires = "processes")]
    process_id: Option<u16>,
    /// Every process's HOST:PORT, in process order, comma-separated; this process listens on
    /// its own. The port must not face an untrusted network.
    #[arg(
        long,
        value_name = "HOST:PORT,...",
        value_delimiter = ',',
        requires = "processes",
        conflicts_with = "hostfile"
    )]
    hosts: Vec<String>,
    /// A file with one HOST:PORT per line, in process order (instead of --hosts).
    #[arg(long, value_name = "FILE", requires = "processes")]
    hostfile: Option<PathBuf>,
    /// The cluster's name: processes of another cluster are refused. Default "tideflow".
    #[arg(long, value_name = "ID", requires = "processes")]
    cluster_id: Option<String>,
    /// The secret every process proves it knows when it connects (better: set it in the
    /// TIDEFLOW_CLUSTER_SECRET environment variable, which is not visible in `ps`).
    #[arg(long, value_name = "SECRET", requires = "processes")]
    cluster_secret: Option<String>,
}

impl RunArgs {
    /// Whether the rows go to standard output (`--output -`, the default).
    pub(crate) fn writes_stdout(&self) -> bool {
        self.output == "-"
    }
}

impl ClusterArgs {
    /// The cluster this process joins, if the flags ask for one.
    pub(crate) fn cluster(&self) -> Result<Option<Cluster>, Error> {
        let Some(processes) = self.processes.map(usize::from) else {
            return Ok(None);
        };
        let process = self
            .process_id
            .map(usize::from)
            .ok_or_else(|| Error::Config("--process-id: required with --processes".into()))?;
        let addresses: Vec<String> = match &self.hostfile {
            Some(path) => std::fs::read_to_string(path)
                .map_err(|e| Error::io(format!("--hostfile: cannot read {}", path.display()), e))?
                .lines()
                .map(str::trim)
                .filter(|line| !line.is_empty() && !line.starts_with('#'))
                .map(str::to_string)
                .collect(),
            None => self.hosts.iter().map(|h| h.trim().to_string()).collect(),
        };
        if addresses.is_empty() {
            return Err(Error::Config(
                "--hosts: required with --processes (or --hostfile)".into(),
            ));
        }
        if addresses.len() != processes {
            return Err(Error::Config(format!(
                "--hosts: {} addresses for --processes {processes}",
                addresses.len()
            )));
        }
        let secret = match (&self.cluster_secret, std::env::var(SECRET_VAR)) {
            (Some(secret), _) => secret.clone(),
            (None, Ok(secret)) => secret,
            (None, Err(_)) => String::new(),
        };
        let cluster = Cluster::new(
            process,
            addresses,
            self.cluster_id.clone().unwrap_or_else(|| "tideflow".into()),
            secret,
        );
        if processes == 1 {
            return Ok(None);
        }
        cluster.validate()?;
        Ok(Some(cluster))
    }
}

impl Plan {
    /// Reads the input file or directory in `format`, with the bad-input policy and record
    /// size limit, watching it with `--watch`.
    fn file_source<F: FileFormat>(&self, path: &Path, format: F) -> FileSource<F> {
        let source = FileSource::new(path, format)
            .on_error(self.on_error.clone())
            .max_record_bytes(self.max_record_bytes)
            .split_bytes(self.split_size);
        match self.watch {
            Some(poll_interval) => source.watch(poll_interval),
            None => source,
        }
    }

    /// Reads the topic at `address`, decoding each message with `decode`, from the
    /// --starting-offsets (or a snapshot's offsets), to the end offsets at start under
    /// --trigger available-now or once.
    fn kafka_source(
        &self,
        address: &kafka::KafkaAddress,
        decode: impl Fn(&KafkaMessage<'_>) -> Result<Row, String> + Send + Sync + 'static,
    ) -> KafkaSource<Row> {
        let mut source = KafkaSource::new(address.brokers.clone(), address.topic.clone(), decode)
            .starting_offsets(self.starting_offsets.clone())
            .on_error(self.on_error.clone())
            .max_record_bytes(self.max_record_bytes);
        for (key, value) in &self.kafka_options {
            source = source.option(key.clone(), value.clone());
        }
        if self.trigger.finishes_when_idle() {
            source = source.until_end_offsets();
        }
        source
    }

    /// The Kafka sink of a --output kafka://... topic: JSON values keyed by the row's key.
    fn kafka_sink<R: OutputRow>(&self, address: &kafka::KafkaAddress) -> KafkaSink<R, PlanEncoder> {
        let mut sink = KafkaSink::new(
            address.brokers.clone(),
            address.topic.clone(),
            self.encoder(),
        )
        .with_key(|row: &R, out: &mut Vec<u8>| row.write_kafka_key(out));
        for (key, value) in &self.kafka_options {
            sink = sink.option(key.clone(), value.clone());
        }
        sink
    }

    /// Writes the records too late for every window to the --late-output file or topic.
    fn write_late(&self, late: Stream<'_, LateRecord<Key, Row>>) {
        let encoder = LateEncoder::new(self.lateness);
        if let Some(address) = &self.late_kafka {
            let mut sink = KafkaSink::new(address.brokers.clone(), address.topic.clone(), encoder)
                .with_key(|late: &LateRecord<Key, Row>, out: &mut Vec<u8>| {
                    write_key(&late.key, late.data.key_kind, out)
                });
            for (key, value) in &self.kafka_options {
                sink = sink.option(key.clone(), value.clone());
            }
            late.sink(sink);
        } else if let Some(path) = &self.late_output {
            // Late records are raw input: owner only, as dead letters.
            late.sink(FileSink::new(path, encoder).owner_only());
        }
    }

    /// The input rows as a stream.
    fn rows<'scope>(&self, flow: &mut Flow<'scope>) -> Result<Stream<'scope, Row>, Error> {
        // Late records are written whole: their rows keep the record they were read as.
        let keep_original = self.late_output.is_some() || self.late_kafka.is_some();
        let schema = self.schema.clone();
        let json = move || {
            let schema = schema.clone();
            JsonLines::with_decoder(move |line| {
                let mut row = decode_json(&schema, line)?;
                if keep_original {
                    row.original = Some(line.into());
                }
                Ok(row)
            })
        };
        let schema = self.schema.clone();
        let csv = move || {
            let schema = schema.clone();
            Csv::with_decoder(move |header| {
                let schema = schema.clone();
                let columns = CsvColumns::new(&schema, header)?;
                let original = keep_original.then(|| CsvOriginal::new(header));
                Ok(Box::new(move |record: &csv::ByteRecord| {
                    let mut row = decode_csv(&schema, &columns, record)?;
                    if let Some(original) = &original {
                        row.original = Some(original.encode(record));
                    }
                    Ok(row)
                }))
            })
        };
        let (on_error, max) = (self.on_error.clone(), self.max_record_bytes);
        Ok(match (&self.input, self.format) {
            (Input::Rate(rate), _) => {
                let source = rate.source(&self.schema)?.keep_original(keep_original);
                self.timed(flow, source)
            }
            (Input::Tcp(address), Format::Jsonl) => {
                let source = SocketSource::connect(address.clone(), json());
                self.timed(flow, source.on_error(on_error).max_record_bytes(max))
            }
            (Input::Tcp(address), Format::Csv) => {
                let source = SocketSource::connect_csv(address.clone(), csv());
                self.timed(flow, source.on_error(on_error).max_record_bytes(max))
            }
            (Input::Stdin, Format::Jsonl) => {
                let source = StdinSource::new(json());
                self.timed(flow, source.on_error(on_error).max_record_bytes(max))
            }
            (Input::Stdin, Format::Csv) => {
                let source = StdinSource::csv(csv());
                self.timed(flow, source.on_error(on_error).max_record_bytes(max))
            }
            (Input::Kafka(address), format @ (Format::Jsonl | Format::Csv)) => {
                let schema = self.schema.clone();
                match format {
                    Format::Jsonl => {
                        let decode = kafka::json_decoder(schema, keep_original);
                        self.timed(flow, self.kafka_source(address, decode))
                    }
                    _ => {
                        let decode = kafka::csv_decoder(schema, &self.csv_header, keep_original)?;
                        self.timed(flow, self.kafka_source(address, decode))
                    }
                }
            }
            (Input::Path(path), Format::Jsonl) => self.timed(flow, self.file_source(path, json())),
            (Input::Path(path), Format::Csv) => self.timed(flow, self.file_source(path, csv())),
            (Input::Path(path), Format::Parquet) => {
                let parquet = parquet_rows(self.schema.clone(), keep_original);
                self.timed(flow, self.file_source(path, parquet))
            }
            (_, Format::Parquet) => return Err(plan::parquet_input_refused()),
        })
    }

    /// Reads `source` with the rows' event time and the query's watermark strategy.
    fn timed<'scope, S: Source<Item = Row>>(
        &self,
        flow: &mut Flow<'scope>,
        source: S,
    ) -> Stream<'scope, Row> {
        flow.source(source)
            .with_event_time(|row: &Row| row.time)
            .with_watermark(self.watermark)
    }

    fn encoder(&self) -> PlanEncoder {
        if let Some(stages) = &self.stages {
            return PlanEncoder::Query(stages.clone());
        }
        let columns = self.aggs.iter().map(AggSpec::column).collect();
        PlanEncoder::Rows(match self.output_format {
            // A Parquet output writes through `parquet_sink`; standard output and Kafka
            // outputs are refused with it (plan.rs).
            Format::Jsonl | Format::Parquet => RowEncoder::json(columns),
            Format::Csv => RowEncoder::csv(columns),
        })
    }

    /// The result rows a query's HAVING keeps (all of them without a query).
    fn having<'scope, R: OutputRow>(&self, rows: Stream<'scope, R>) -> Stream<'scope, R> {
        match &self.stages {
            None => rows,
            Some(stages) => {
                let stages = stages.clone();
                rows.filter(move |row| stages.keep(row.parts().0))
            }
        }
    }

    /// The encoder of the Parquet files of a Parquet or Delta output, window bounds in `unit`.
    fn column_encoder(&self, parquet: &plan::ParquetPlan, unit: TimeUnit) -> ColumnEncoder {
        let names = self.aggs.iter().map(AggSpec::column).collect();
        let mode = self
            .mode
            .to_possible_value()
            .map(|v| v.get_name().to_string());
        let shape = RowShape::of(mode.as_deref().unwrap_or("append"), self.window.is_some());
        ColumnEncoder::new(names, parquet.key, parquet.types.clone(), shape, unit)
    }

    /// The sink of a delta:PATH --output table.
    fn delta_sink<R: OutputRow>(
        &self,
        dir: &Path,
        parquet: &plan::ParquetPlan,
    ) -> DeltaSink<R, ColumnEncoder> {
        DeltaSink::new(dir, self.column_encoder(parquet, TimeUnit::Microsecond))
            .compression(parquet.compression)
            .row_group_rows(parquet.row_group_rows)
    }

    /// The sink of a Parquet --output directory.
    fn parquet_sink<R: OutputRow>(
        &self,
        dir: &Path,
        parquet: &plan::ParquetPlan,
    ) -> ParquetSink<R, ColumnEncoder> {
        ParquetSink::new(dir, self.column_encoder(parquet, TimeUnit::Millisecond))
            .compression(parquet.compression)
            .row_group_rows(parquet.row_group_rows)
    }

    /// Writes update-mode rows as they come (the rows of one window or key come from one
    /// worker, in order), or, in complete mode, the whole table every --complete-interval.
    fn write_changes<C>(&self, changes: Stream<'_, C>)
    where
        C: TableChange + ExchangeData + OutputRow,
        C::Row: OutputRow,
        PlanEncoder: Encoder<C> + Encoder<C::Row>,
    {
        let changes = self.having(changes);
        let interval = self.complete_interval;
        if let Some(address) = &self.kafka_output {
            match self.mode {
                Mode::Complete => changes.sink(CompleteSink::new(
                    interval,
                    self.kafka_sink::<C::Row>(address),
                )),
                _ => changes.sink(self.kafka_sink::<C>(address)),
            }
            return;
        }
        match (&self.output, self.mode) {
            (None, Mode::Complete) => changes.sink(CompleteSink::new(
                interval,
                ConsoleSink::new(self.encoder()),
            )),
            (Some(path), Mode::Complete) => match &self.parquet {
                Some(delta) => changes.sink(CompleteSink::new(
                    interval,
                    self.delta_sink(path, delta).overwrite_on_write(),
                )),
                None => changes.sink(CompleteSink::new(
                    interval,
                    FileSink::new(path, self.encoder()).replace_on_write(),
                )),
            },
            (None, _) => changes.sink(ConsoleSink::new(self.encoder())),
            (Some(path), _) => match &self.parquet {
                Some(parquet) => changes.sink(self.parquet_sink(path, parquet)),
                None => changes.sink(FileSink::new(path, self.encoder())),
            },
        }
    }

    /// Opens the progress outputs and runs the job, until its input ends or `stop` stops it.
    fn execute(self, stop: StopHandle) -> Result<JobReport, Error> {
        let mut config = Config::workers(self.workers).trigger(self.trigger);
        config.stop = stop;
        config.checkpoint = self.checkpoint.clone();
        // Served until the job ends.
        let progress = self.progress.as_ref().map(CliProgress::open).transpose()?;
        if let Some(progress) = &progress {
            config = progress.configure(config);
        }
        config.cluster = self.cluster.clone();
        execute(config, move |flow| {
            let aggregator =
                RowAggregator::new(&self.aggs, &self.agg_value_fields, &self.agg_scalar_fields);
            let mut rows = self.rows(flow)?;
            if let Some(stages) = self.stages.clone().filter(|s| s.stateless()) {
                let lines = stages::RowLines(stages.clone());
                let rows = rows.flat_map(move |row| stages.before(row));
                match &self.output {
                    None => rows.sink(ConsoleSink::new(lines)),
                    Some(path) => rows.sink(FileSink::new(path, lines)),
                }
                return Ok(());
            }
            if let Some(stages) = self.stages.clone().filter(|s| s.rewrites_rows()) {
                rows = rows.flat_map(move |row| stages.before(row));
            }
            let keyed = match &self.join {
                None => rows
                    .map(|mut row| (std::mem::replace(&mut row.key, Key::Null), row))
                    .into_keyed(),
                Some(join) => join.enrich(flow, rows, self.max_record_bytes, self.stateful[0]),
            };
            let keyed = keyed.named(self.aggregation_id());
            let Some(window) = self.window else {
                // Upserts on the key: a retraction is superseded by the insertion after it.
                let inserts = keyed
                    .running_aggregate(aggregator)
                    .filter(|row| row.change == Change::Insert);
                self.write_changes(inserts);
                return Ok(());
            };
            let windowed = keyed.window(window).allowed_lateness(self.lateness);
            let late_output = self.late_output.is_some() || self.late_kafka.is_some();
            if self.mode == Mode::Append {
                let results = match late_output {
                    false => windowed.aggregate(aggregator),
                    true => {
                        let (results, late) = windowed.aggregate_with_late(aggregator);
                        self.write_late(late);
                        results
                    }
                };
                let results = self.having(results);
                // Rows are released in (window end, key) order once the watermark passes
                // them, so the output does not depend on the worker count.
                // A row orders by its key first: its key's prefix orders rows.
                let prefix = |row: &WindowResult<Key, Aggregates>| row.key.sort_prefix();
                if let Some(address) = &self.kafka_output {
                    results.sink(OrderedSink::new(self.kafka_sink(address)).with_prefix(prefix));
                    return Ok(());
                }
                match (&self.output, &self.parquet) {
                    (None, _) => results.sink(
                        OrderedSink::new(ConsoleSink::new(self.encoder())).with_prefix(prefix),
                    ),
                    (Some(path), Some(delta)) if delta.delta => results
                        .sink(OrderedSink::new(self.delta_sink(path, delta)).with_prefix(prefix)),
                    (Some(path), Some(parquet)) => results.sink(
                        OrderedSink::new(self.parquet_sink(path, parquet)).with_prefix(prefix),
                    ),
                    (Some(path), None) => results.sink(
                        OrderedSink::new(FileSink::new(path, self.encoder())).with_prefix(prefix),
                    ),
                }
                return Ok(());
            }
            let updates = match late_output {
                false => windowed.aggregate_updates(aggregator),
                true => {
                    let (updates, late) = windowed.aggregate_updates_with_late(aggregator);
                    self.write_late(late);
                    updates
                }
            };
            self.write_changes(updates);
            Ok(())
        })
    }
}

/// Parquet rows decoded as the JSON object of the fields the query reads (so with the rules
/// of a JSON lines input: keys, numbers, times), keeping it as the record for `--late-output`
/// if `keep_original`.
fn parquet_rows(schema: Schema, keep_original: bool) -> Parquet<Row> {
    Parquet::with_decoder(move |row| {
        let mut json = Vec::new();
        row.write_json(|name| schema.reads(name), &mut json)?;
        let line = String::from_utf8(json).map_err(|e| e.to_string())?;
        let mut decoded = decode_json(&schema, &line)?;
        if keep_original {
            decoded.original = Some(line.into());
        }
        Ok(decoded)
    })
}

/// Runs `tideflow run`; SIGINT or SIGTERM stops it gracefully (exit code 130 or 143).
pub(crate) fn run(args: RunArgs) -> Result<ExitCode, Error> {
    let ui = args.ui.clone();
    let size = InputSize::of(&args.input, args.watch.is_some());
    let stdout_rows = args.writes_stdout();
    let mut plan = Plan::new(args)?;
    let watch = watch(&mut plan, ui, size, stdout_rows)?;
    run_watched(plan, watch)
}

/// Runs `plan` (of `tideflow sql`), shown as `ui` asks; SIGINT or SIGTERM stops it gracefully.
pub(crate) fn run_plan(mut plan: Plan, ui: UiArgs) -> Result<ExitCode, Error> {
    let stdout_rows = plan.output.is_none() && plan.kafka_output.is_none();
    let watch = watch(&mut plan, ui, None, stdout_rows)?;
    run_watched(plan, watch)
}

/// [`run_plan`], shown by `watch` (`--ui`, the status line).
fn run_watched(plan: Plan, watch: Watch) -> Result<ExitCode, Error> {
    let rows = match plan.mode {
        Mode::Append => "window rows written",
        Mode::Update => "update rows written",
        Mode::Complete => "updates applied to the result table",
    };
    // In a cluster every process reports what it read and wrote itself.
    let who = match &plan.cluster {
        Some(cluster) => format!("process {} of {}: ", cluster.process, cluster.processes()),
        None => String::new(),
    };
    let checkpoints = plan.checkpoint.is_some();
    let stop = StopHandle::new();
    let handle = stop.clone();
    // A live, replayable input: the stop snapshot waits for its watermark (docs/KAFKA.md).
    let live_snapshots = checkpoints && matches!(plan.input, plan::Input::Kafka(_));
    let asked = std::sync::atomic::AtomicBool::new(false);
    let signals = SignalStop::install(move |_| {
        if live_snapshots && !asked.swap(true, std::sync::atomic::Ordering::SeqCst) {
            errln!("tideflow: the stop waits for one more snapshot, which needs the Kafka input's watermark to pass the newest record read: on a quiet topic that is when new records come; send the signal again to stop now (the same command then resumes from the last snapshot, exactly once)");
        }
        handle.stop()
    })?;
    let report = plan.execute(stop).inspect_err(|e| watch.on_error(e))?;
    let code = match signals.received() {
        Some(signal) => ExitCode::from(signals::exit_code(signal)),
        None => ExitCode::SUCCESS,
    };
    if report.snapshots.already_complete {
        errln!("tideflow: the job in the checkpoint directory has already completed (its final output is committed); nothing to do");
        return Ok(code);
    }
    // Late records routed to --late-output are sink writes too; the rest are window rows.
    let window_rows = report.records_out - report.late_routed;
    errln!(
        "tideflow: {who}{} records read, {} bad records skipped, {} bad records dead-lettered, {} {rows}, {} late records dropped, {} written to the late output (late: they arrived after every window they belong to had closed), {} future records kept from the watermark",
        report.records_in, report.records_skipped, report.records_dead_lettered, window_rows, report.late_dropped, report.late_routed, report.future_events
    );
    let snapshots = &report.snapshots;
    if snapshots.completed > 0 {
        errln!(
            "tideflow: {} snapshots committed (the last {} bytes; the longest took {:.1} ms)",
            snapshots.completed,
            snapshots.last_bytes,
            snapshots.max_duration.as_secs_f64() * 1e3
        );
    }
    if let Some(signal) = signals.received().filter(|_| report.stopped) {
        let rest = if checkpoints {
            "the snapshot it stopped at is committed, with the open windows in it: run the same command again to resume there"
        } else {
            "every window the watermark had closed is written; windows still open are not (as Spark's stop())"
        };
        errln!(
            "tideflow: {who}stopped by {}: {rest}",
            signals::name(signal)
        );
    }
    Ok(code)
}

/// Starts `--ui` (on process 0 of a cluster) and the status line for `plan`, fed its progress
/// reports. No status line where something else writes to the terminal: a cluster's other
/// processes, rows on standard output, or `--progress -`.
fn watch(
    plan: &mut Plan,
    mut ui: UiArgs,
    size: Option<InputSize>,
    stdout_rows: bool,
) -> Result<Watch, Error> {
    let processes = plan.cluster.as_ref().map_or(1, |c| c.processes());
    if plan.cluster.as_ref().is_some_and(|c| c.process != 0) {
        ui.ui = None;
    }
    let lines = explain::operator_lines(plan, plan.workers * processes);
    let graph = Graph::from_explain("tideflow run", lines, &plan.stateful);
    let status = plan.cluster.is_none()
        && !(stdout_rows && std::io::stdout().is_terminal())
        && (plan.progress.as_ref()).is_none_or(|p| p.lines.as_deref() != Some("-"));
    let watch = Watch::start(&ui, graph, status, size)?;
    plan.progress = ProgressPlan::watched(plan.progress.take(), watch.clone());
    Ok(watch)
}

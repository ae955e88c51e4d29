//! `tideflow bench nexmark`: the NEXMark queries q0, q1, q2, q3, q4, q5, q7, q8 and q11, as
//! Flink's suite defines them (the nexmark/nexmark repository's
//! `nexmark-flink/src/main/resources/queries/qN.sql`), written with Tideflow's Rust API and
//! timed on events generated beforehand.
//!
//! The events come from the `nexmark` crate ([`event`]), generated into memory before the clock
//! starts, and are read by a [`MemorySource`] with one partition per worker. Event times are
//! `1 / --rate` seconds apart (Flink's suite: 10 M/s) and never decrease, so each partition is
//! in order and the watermark follows the event times with no delay: no event is late (each
//! run checks it), and every window closes as Flink's would with its 4 s watermark delay, only
//! sooner. Stamps and the watermark go in steps as coarse as each query's windows allow
//! ([`Query::granularity`]), so that the records of a poll travel together. Rows go to a sink
//! that counts and drops them (Flink's suite writes to its `blackhole` connector).
//!
//! The queries are in [`stateless`] (q0, q1, q2), [`joins`] (q3, q4, q8) and [`windows`] (q5,
//! q7, q11); their module docs say how Tideflow expresses Flink's regular joins and updating
//! aggregates. Each query's rows are checked against a from-scratch oracle in `tests.rs`.
//! Run it with, e.g., `cargo run --release -- bench nexmark --query q5 --events 10000000`.

mod event;
mod joins;
#[cfg(test)]
mod oracle;
mod stateless;
#[cfg(test)]
mod tests;
mod windows;

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use serde::Serialize;
use tideflow::sink::Sink;
use tideflow::source::{MemorySource, WatermarkStrategy};
use tideflow::{Config, Error, JobReport, Stream};
use timely::ExchangeData;

use self::event::{Event, Events};
use super::report::{print, print_json};

/// The 10 s of q5's, q7's, q8's and q11's windows and sessions.
const TEN_SECONDS: Duration = Duration::from_secs(10);

/// Arguments of `tideflow bench nexmark`.
#[derive(Debug, Args)]
pub(crate) struct NexmarkArgs {
    /// The query.
    #[arg(long, value_enum, required_unless_present = "write_bids")]
    query: Option<Query>,
    /// Write the generated bids to PATH as JSON lines ({"auction", "bidder", "price",
    /// "channel", "url", "dateTime", "extra"}, dateTime in ms) instead of running a query:
    /// the input of the queries in SQL (docs/BENCHMARKS.md, "NEXMark in SQL").
    #[arg(long, value_name = "PATH", conflicts_with = "query")]
    write_bids: Option<std::path::PathBuf>,
    /// How many events to generate (people, auctions and bids, 1 : 3 : 46) before the clock
    /// starts.
    #[arg(long, value_name = "N", default_value_t = 10_000_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000_000))]
    events: u64,
    /// Worker threads.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=1024))]
    workers: u16,
    /// Events per second of event time: how far apart the generator spaces event times (not a
    /// pace; the events are read as fast as the job goes). Flink's suite uses 10,000,000.
    #[arg(long, value_name = "N", default_value_t = 10_000_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000_000))]
    rate: u64,
    /// How many times to run the query on the same events; the report gives each run and the
    /// median.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
    runs: u32,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

/// A NEXMark query.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Query {
    Q0,
    Q1,
    Q2,
    Q3,
    Q4,
    Q5,
    Q7,
    Q8,
    Q11,
}

impl Query {
    /// How coarse the source's stamps and watermark are for this query
    /// ([`WatermarkStrategy::granularity`]), so that the records of a poll share a stamp and
    /// travel in one container. It changes no row: q5's hop windows close at multiples of 2 s,
    /// q7's and q8's tumbling ones at multiples of 10 s, which is the rule
    /// `WatermarkStrategy::granularity` states. The other queries compare no window boundary
    /// with the watermark, and the generated stream is in event-time order, so a record's
    /// exact stamp is its event time and its rounded stamp is at or below it: no record
    /// becomes late, and q11's session closes only once every record that could extend it
    /// was applied. For those 100 ms, about as often as Flink's periodic watermarks; but q4
    /// keeps exact stamps: its `map_with_state` sorts each stamp's records (all the bids of
    /// the stamp), and a 100 ms stamp holds a million of them. The tests run every query at
    /// its granularity against the oracle.
    fn granularity(self) -> Duration {
        match self {
            Query::Q4 => Duration::from_millis(1),
            Query::Q5 => Duration::from_secs(2),
            Query::Q7 | Query::Q8 => TEN_SECONDS,
            Query::Q0 | Query::Q1 | Query::Q2 | Query::Q3 | Query::Q11 => {
                Duration::from_millis(100)
            }
        }
    }

    /// Flink's throughput per core on this query in the nexmark/nexmark suite's published
    /// results (GUIDE_V1.md: 100 M events at 10 M/s, 8 task managers), in events/s.
    fn flink_per_core(self) -> f64 {
        match self {
            Query::Q0 => 155_020.0,
            Query::Q1 => 157_940.0,
            Query::Q2 => 175_210.0,
            Query::Q3 => 152_120.0,
            Query::Q4 => 34_330.0,
            Query::Q5 => 22_140.0,
            Query::Q7 => 12_330.0,
            Query::Q8 => 146_140.0,
            Query::Q11 => 39_700.0,
        }
    }
}

/// One timed run of a query.
#[derive(Clone, Debug, Serialize)]
struct NexmarkRun {
    wall_s: f64,
    cpu_s: f64,
    events_per_s: f64,
    events_per_s_per_worker: f64,
    /// Events per second of CPU time of the whole process: Flink's "throughput per core"
    /// (events over cores used times time).
    events_per_cpu_s: f64,
    rows: u64,
}

/// What `bench nexmark --json` prints.
#[derive(Debug, Serialize)]
struct NexmarkReport {
    query: Query,
    events: u64,
    workers: u16,
    rate: u64,
    generate_s: f64,
    field_bytes: u64,
    runs: Vec<NexmarkRun>,
    /// The run of median wall time.
    median: NexmarkRun,
    flink_per_core: f64,
    /// The median's events per CPU-second over Flink's per core (the target: 10).
    times_flink_per_core: f64,
}

/// Runs `tideflow bench nexmark`.
pub(crate) fn nexmark(args: NexmarkArgs) -> Result<(), Error> {
    let count = usize::try_from(args.events)
        .map_err(|_| Error::Config(format!("--events: {} is too many", args.events)))?;
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let started = Instant::now();
    let events = Events::generate(count, args.rate as usize, threads);
    let query = match (args.query, &args.write_bids) {
        (Some(query), _) => query,
        (None, Some(path)) => return write_bids(&events, path),
        (None, None) => return Err(Error::Config("--query: required".into())),
    };
    let generate_s = started.elapsed().as_secs_f64();
    let field_bytes = events.field_bytes();
    let workers = usize::from(args.workers);
    if !args.json {
        outln!(
            "tideflow bench nexmark: {:?} on {} events ({:.0} MB of fields; event time {} \
             events/s), {} worker(s); generated in {:.1} s, before the clock starts",
            query,
            args.events,
            field_bytes as f64 / 1e6,
            args.rate,
            workers,
            generate_s
        )?;
        outln!(
            "{:>4} {:>8} {:>8} {:>12} {:>16} {:>16} {:>10}",
            "run",
            "wall s",
            "cpu s",
            "events/s",
            "events/s/worker",
            "events/cpu-s",
            "rows"
        )?;
    }
    let mut runs = Vec::new();
    for run in 1..=args.runs {
        let cpu = cpu_time();
        let report = run_query(&events.events, workers, query)?;
        let cpu_s = (cpu_time().saturating_sub(cpu)).as_secs_f64();
        if report.late_dropped > 0 {
            return Err(Error::Internal(format!(
                "{} events were late: the generated stream should be in event-time order",
                report.late_dropped
            )));
        }
        let wall_s = report.elapsed.as_secs_f64();
        let events_per_s = args.events as f64 / wall_s;
        let measured = NexmarkRun {
            wall_s,
            cpu_s,
            events_per_s,
            events_per_s_per_worker: events_per_s / workers as f64,
            events_per_cpu_s: args.events as f64 / cpu_s.max(1e-9),
            rows: report.records_out,
        };
        if !args.json {
            outln!("{:>4} {}", run, row(&measured))?;
        }
        runs.push(measured);
    }
    let mut by_wall = runs.clone();
    by_wall.sort_by(|a, b| a.wall_s.total_cmp(&b.wall_s));
    let median = by_wall[by_wall.len() / 2].clone();
    let flink = query.flink_per_core();
    let times_flink = median.events_per_cpu_s / flink;
    if args.json {
        return print_json(&NexmarkReport {
            query,
            events: args.events,
            workers: args.workers,
            rate: args.rate,
            generate_s,
            field_bytes,
            runs,
            median,
            flink_per_core: flink,
            times_flink_per_core: times_flink,
        });
    }
    let mut out = String::new();
    if args.runs > 1 {
        let _ = writeln!(out, "{:>4} {}", "med", row(&median));
    }
    let _ = writeln!(
        out,
        "per core: {:.0} events per CPU-second, {:.1}x Flink's published {:.0} (target 10x: {})",
        median.events_per_cpu_s,
        times_flink,
        flink,
        if times_flink >= 10.0 { "met" } else { "MISSED" }
    );
    print(&out)
}

/// A run's figures as a table row.
fn row(run: &NexmarkRun) -> String {
    format!(
        "{:>8.3} {:>8.3} {:>12.0} {:>16.0} {:>16.0} {:>10}",
        run.wall_s,
        run.cpu_s,
        run.events_per_s,
        run.events_per_s_per_worker,
        run.events_per_cpu_s,
        run.rows
    )
}

/// Runs `query` once over `events` on `workers` workers, its rows counted and dropped.
/// Writes the bids of `events` to `path` as JSON lines.
fn write_bids(events: &Events, path: &std::path::Path) -> Result<(), Error> {
    use std::io::Write as _;
    let failed = |e| Error::io(format!("--write-bids: cannot write {}", path.display()), e);
    let file = std::fs::File::create(path).map_err(failed)?;
    let mut out = std::io::BufWriter::new(file);
    for event in events.events.iter() {
        let Event::Bid(bid) = event else { continue };
        let (channel, url) = &events.channels[bid.channel as usize];
        let line = serde_json::json!({
            "auction": bid.auction,
            "bidder": bid.bidder,
            "price": bid.price,
            "channel": channel,
            "url": url,
            "dateTime": bid.date_time,
            "extra": &*bid.extra,
        });
        writeln!(out, "{line}").map_err(failed)?;
    }
    out.flush().map_err(failed)
}

fn run_query(events: &Arc<Vec<Event>>, workers: usize, query: Query) -> Result<JobReport, Error> {
    let events = Arc::clone(events);
    let granularity = query.granularity();
    match query {
        Query::Q0 => execute_query(events, workers, granularity, stateless::q0, Discard),
        Query::Q1 => execute_query(events, workers, granularity, stateless::q1, Discard),
        Query::Q2 => execute_query(events, workers, granularity, stateless::q2, Discard),
        Query::Q3 => execute_query(events, workers, granularity, joins::q3, Discard),
        Query::Q4 => execute_query(events, workers, granularity, joins::q4, Discard),
        Query::Q5 => execute_query(events, workers, granularity, windows::q5, Discard),
        Query::Q7 => execute_query(events, workers, granularity, windows::q7, Discard),
        Query::Q8 => execute_query(events, workers, granularity, joins::q8, Discard),
        Query::Q11 => execute_query(events, workers, granularity, windows::q11, Discard),
    }
}

/// Builds the dataflow of a query over the events, up to its rows.
type BuildQuery<R> = for<'scope> fn(Stream<'scope, Event>) -> Result<Stream<'scope, R>, Error>;

/// Runs the dataflow `query` builds over `events` (one memory partition per worker, event time
/// `date_time`, no watermark delay, stamps rounded down to `granularity`) into `sink`.
fn execute_query<R, S>(
    events: Arc<Vec<Event>>,
    workers: usize,
    granularity: Duration,
    query: BuildQuery<R>,
    sink: S,
) -> Result<JobReport, Error>
where
    R: ExchangeData,
    S: Sink<R> + Clone + Send + Sync,
{
    let source = MemorySource::partitioned(events, workers);
    let watermark = WatermarkStrategy::bounded_delay(Duration::ZERO).with_granularity(granularity);
    tideflow::execute(Config::workers(workers), move |flow| {
        let events = flow
            .source(source.clone())
            .with_event_time(Event::date_time)
            .with_watermark(watermark);
        query(events)?.sink(sink.clone());
        Ok(())
    })
}

/// A sink that drops every row (the sink driver counts them), as Flink's `blackhole`.
#[derive(Clone, Copy)]
struct Discard;

impl<D: 'static> Sink<D> for Discard {
    fn write(&mut self, batch: &mut Vec<tideflow::Event<D>>) -> Result<(), Error> {
        batch.clear();
        Ok(())
    }
}

/// The CPU time this process has used so far, all threads.
fn cpu_time() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `getrusage` writes a whole `rusage` into the pointer it is given, which points
    // at one; on failure (impossible for RUSAGE_SELF) the zeroed value stays.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let time = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    time(usage.ru_utime) + time(usage.ru_stime)
}

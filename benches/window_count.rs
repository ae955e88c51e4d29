//! Core throughput: a keyed 1 s tumbling count over 1,000 keys from an in-memory source, through
//! the Tideflow API, next to a hand-written raw timely operator doing the same count, in the same
//! run.
//!
//! What it isolates: the per-record cost of Tideflow's source → `key_by` → tumbling window →
//! `Count` → sink path (event envelope, partition watermarks, exchange by key hash, per-window
//! accumulators, result rows) against the floor set by timely itself: a `source` operator that
//! emits the same records at their event times, an `Exchange` on the same well-mixed key hash,
//! and a `unary_frontier` operator holding a `BTreeMap<window_end, (Capability, FxHashMap<key,
//! count>)>` that emits each window when the frontier passes its end. No I/O, no parsing,
//! no serialization (workers are threads of one process).
//!
//! Input: `EVENTS` records `(event_time_ms, key)`, generated once, in event-time order, 1,000
//! records per millisecond (so `EVENTS / 1_000_000` one-second windows), keys `0..1000` drawn by
//! a fixed SplitMix64 stream. Both paths must emit exactly `windows x keys` rows whose counts sum
//! to `EVENTS`; that is asserted once per configuration before timing.
//!
//! Run: `cargo bench --bench window_count` (under a minute). Criterion reports total elements/s
//! per benchmark; at the end the bench prints a table with events/s, events/s per worker and the
//! engine/raw ratio, from the median over every run criterion made (warm-up included).
//! Results and a profile: `docs/BENCHMARKS.md`.
//! `WINDOW_COUNT_EVENTS=n` overrides the input size (a multiple of 1,000,000 keeps whole windows).
//!
//! Profiling: `WINDOW_COUNT_PROFILE=engine` (or `raw_timely`) skips criterion and runs only that
//! path, `WINDOW_COUNT_RUNS` times (default 10) on `WINDOW_COUNT_WORKERS` workers (default 1),
//! printing each run's rate, e.g. under
//! `perf record -g target/release/deps/window_count-<hash>` or `valgrind --tool=callgrind`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use rustc_hash::FxHashMap;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::operator::source;
use timely::dataflow::operators::{Capability, Operator};

use tideflow::aggregate::Count;
use tideflow::sink::Sink;
use tideflow::source::MemorySource;
use tideflow::{Config, Event, Window, WindowResult};
use tideflow_operators::key_hash;

/// Records in the input (8 one-second windows).
const EVENTS: usize = 8_000_000;
/// Distinct keys.
const KEYS: u64 = 1_000;
/// Records per millisecond of event time.
const EVENTS_PER_MS: usize = 1_000;
/// Window size in ms.
const WINDOW_MS: u64 = 1_000;
/// Records the raw source emits per activation (the engine's `MemorySource` reads 1,024).
const RAW_BATCH: usize = 1_024;
/// Worker counts measured.
const WORKERS: &[usize] = &[1, 2];

type Input = Arc<Vec<(u64, u64)>>;

/// The input: in event-time order, keys well mixed.
fn generate(events: usize) -> Input {
    let mut state = 0x5eed_u64;
    let mut splitmix = move || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    Arc::new(
        (0..events)
            .map(|i| ((i / EVENTS_PER_MS) as u64, splitmix() % KEYS))
            .collect(),
    )
}

/// What a run produced: result rows, and the sum of their counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Output {
    rows: u64,
    total: u64,
}

#[derive(Clone, Default)]
struct Counters {
    rows: Arc<AtomicU64>,
    total: Arc<AtomicU64>,
}

impl Counters {
    fn add(&self, rows: usize, total: u64) {
        self.rows.fetch_add(rows as u64, Ordering::Relaxed);
        self.total.fetch_add(total, Ordering::Relaxed);
    }

    fn output(&self) -> Output {
        Output {
            rows: self.rows.load(Ordering::Relaxed),
            total: self.total.load(Ordering::Relaxed),
        }
    }
}

/// A sink that counts the rows it receives and sums their counts.
struct CountingSink(Counters);

impl Sink<WindowResult<u64, u64>> for CountingSink {
    fn write(
        &mut self,
        batch: &mut Vec<Event<WindowResult<u64, u64>>>,
    ) -> Result<(), tideflow::Error> {
        let total = batch.iter().map(|row| row.data.value).sum();
        self.0.add(batch.len(), total);
        batch.clear();
        Ok(())
    }
}

/// The Tideflow API path.
fn run_engine(events: &Input, workers: usize) -> Output {
    let counters = Counters::default();
    let sink = counters.clone();
    let events = Arc::clone(events);
    tideflow::execute(Config::workers(workers), move |flow| {
        flow.source(MemorySource::partitioned(Arc::clone(&events), workers))
            .with_event_time(|e: &(u64, u64)| e.0)
            .with_watermark(Duration::ZERO)
            .key_by(|e| e.1)
            .window(Window::tumbling(Duration::from_millis(WINDOW_MS))?)
            .aggregate(Count)
            .sink(CountingSink(sink.clone()));
        Ok(())
    })
    .expect("engine job failed");
    counters.output()
}

/// The same count as a hand-written timely dataflow: a source emitting this worker's share of
/// the records at their event times, holding the watermark as its capability, then an exchanged
/// `unary_frontier` window operator, then a row counter.
fn run_raw(events: &Input, workers: usize) -> Output {
    let counters = Counters::default();
    let sink = counters.clone();
    let events = Arc::clone(events);
    let config = if workers == 1 {
        timely::Config::thread()
    } else {
        timely::Config::process(workers)
    };
    let guards = timely::execute(config, move |worker| {
        let (index, peers) = (worker.index(), worker.peers());
        let events = Arc::clone(&events);
        let counters = sink.clone();
        worker.dataflow::<u64, _, _>(|scope| {
            // Record i belongs to worker i % peers, as with `MemorySource::partitioned(_, peers)`.
            let records = source::<_, CapacityContainerBuilder<Vec<(u64, u64)>>, _, _>(
                scope,
                "RawSource",
                |cap, info| {
                    let activator = scope.activator_for(info.address);
                    let mut cap = Some(cap);
                    let mut next = index;
                    move |output| {
                        let Some(watermark) = cap.as_mut() else {
                            return;
                        };
                        let mut sent = 0;
                        while next < events.len() && sent < RAW_BATCH {
                            // In order, no allowed lateness: the watermark is the event time.
                            let time = events[next].0;
                            watermark.downgrade(&time);
                            let mut session = output.session(&*watermark);
                            while next < events.len() && sent < RAW_BATCH && events[next].0 == time
                            {
                                session.give(events[next]);
                                next += peers;
                                sent += 1;
                            }
                        }
                        if next >= events.len() {
                            cap = None;
                        } else {
                            activator.activate();
                        }
                    }
                },
            );
            records
                .unary_frontier::<CapacityContainerBuilder<Vec<(u64, u64, u64)>>, _, _, _>(
                    Exchange::new(|record: &(u64, u64)| key_hash(&record.1)),
                    "RawWindowCount",
                    |_initial, _info| {
                        let mut open: BTreeMap<u64, (Capability<u64>, FxHashMap<u64, u64>)> =
                            BTreeMap::new();
                        move |(input, frontier), output| {
                            let port = output.output_index();
                            input.for_each_time(|time, data| {
                                for (ts, key) in data.flat_map(|d| d.drain(..)) {
                                    let end = (ts / WINDOW_MS + 1) * WINDOW_MS;
                                    let window = open.entry(end).or_insert_with(|| {
                                        (time.delayed(&(end - 1), port), FxHashMap::default())
                                    });
                                    *window.1.entry(key).or_default() += 1;
                                }
                            });
                            while let Some((&end, _)) = open.first_key_value() {
                                if frontier.less_equal(&(end - 1)) {
                                    break;
                                }
                                let (cap, counts) = open.remove(&end).expect("first window exists");
                                let mut session = output.session(&cap);
                                for (key, count) in counts {
                                    session.give((end - WINDOW_MS, key, count));
                                }
                            }
                        }
                    },
                )
                .sink(Pipeline, "RawCountRows", move |(input, _frontier)| {
                    input.for_each(|_, rows| {
                        counters.add(rows.len(), rows.iter().map(|row| row.2).sum());
                        rows.clear();
                    });
                });
        });
    })
    .expect("could not start timely");
    for result in guards.join() {
        result.expect("raw worker panicked");
    }
    counters.output()
}

type Runner = fn(&Input, usize) -> Output;

/// Per (path, workers), the wall time of every run criterion made.
static RUNS: Mutex<BTreeMap<(usize, &'static str), Vec<Duration>>> = Mutex::new(BTreeMap::new());

fn bench(c: &mut Criterion, events: &Input) {
    let expected = Output {
        rows: (events.len() as u64).div_ceil(WINDOW_MS * EVENTS_PER_MS as u64) * KEYS,
        total: events.len() as u64,
    };
    let paths: [(&'static str, Runner); 2] = [("engine", run_engine), ("raw_timely", run_raw)];
    for &workers in WORKERS {
        // Both paths do the whole job and agree, once, outside the timed loop.
        for (name, run) in paths {
            let output = run(events, workers);
            assert_eq!(
                output, expected,
                "{name} with {workers} worker(s): wrong result"
            );
        }
        let mut group = c.benchmark_group(format!("window_count/{workers}w"));
        group
            .sampling_mode(SamplingMode::Flat)
            .throughput(Throughput::Elements(events.len() as u64));
        for (name, run) in paths {
            group.bench_function(BenchmarkId::from_parameter(name), |b| {
                b.iter_custom(|iterations| {
                    let mut elapsed = Duration::ZERO;
                    for _ in 0..iterations {
                        let started = Instant::now();
                        let output = run(events, workers);
                        let took = started.elapsed();
                        assert_eq!(output.rows, expected.rows);
                        elapsed += took;
                        RUNS.lock()
                            .unwrap()
                            .entry((workers, name))
                            .or_default()
                            .push(took);
                    }
                    elapsed
                })
            });
        }
        group.finish();
    }
}

/// Runs made and the median run of one (workers, path), if it ran.
fn median_run(
    runs: &mut BTreeMap<(usize, &'static str), Vec<Duration>>,
    workers: usize,
    name: &'static str,
) -> Option<(usize, Duration)> {
    let runs = runs.get_mut(&(workers, name))?;
    runs.sort();
    Some((runs.len(), runs[runs.len() / 2]))
}

/// Prints events/s, events/s per worker and the engine/raw ratio from the median run.
fn summary(events: usize) {
    let mut runs = RUNS.lock().unwrap();
    if runs.is_empty() {
        return;
    }
    println!("\nwindow_count summary ({events} events, {KEYS} keys, {WINDOW_MS} ms tumbling windows; median run)");
    println!(
        "{:<12} {:>7} {:>6} {:>12} {:>14} {:>20} {:>12}",
        "path", "workers", "runs", "median", "events/s", "events/s/worker", "engine/raw"
    );
    let rate = |median: Duration| events as f64 / median.as_secs_f64();
    for &workers in WORKERS {
        let raw = median_run(&mut runs, workers, "raw_timely").map(|(_, median)| rate(median));
        for name in ["engine", "raw_timely"] {
            let Some((count, median)) = median_run(&mut runs, workers, name) else {
                continue;
            };
            let per_sec = rate(median);
            let ratio = raw.map_or(String::from("-"), |raw| format!("{:.2}", per_sec / raw));
            println!(
                "{:<12} {:>7} {:>6} {:>10.1}ms {:>12.2}M {:>18.2}M {:>12}",
                name,
                workers,
                count,
                median.as_secs_f64() * 1e3,
                per_sec / 1e6,
                per_sec / 1e6 / workers as f64,
                ratio
            );
        }
    }
}

/// Runs one path repeatedly, without criterion, for a profiler.
fn profile(path: &str, events: &Input) {
    let env = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(default)
    };
    let (workers, runs) = (env("WINDOW_COUNT_WORKERS", 1), env("WINDOW_COUNT_RUNS", 10));
    let run: Runner = match path {
        "engine" => run_engine,
        "raw_timely" => run_raw,
        other => panic!("WINDOW_COUNT_PROFILE must be engine or raw_timely, not {other:?}"),
    };
    for _ in 0..runs {
        let started = Instant::now();
        let output = run(events, workers);
        let took = started.elapsed();
        println!(
            "{path} {workers}w: {} rows in {:.1} ms, {:.2}M events/s per worker",
            output.rows,
            took.as_secs_f64() * 1e3,
            events.len() as f64 / took.as_secs_f64() / 1e6 / workers as f64
        );
    }
}

fn main() {
    let events: usize = std::env::var("WINDOW_COUNT_EVENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(EVENTS);
    let input = generate(events);
    if let Ok(path) = std::env::var("WINDOW_COUNT_PROFILE") {
        profile(&path, &input);
        return;
    }
    let mut criterion = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(8))
        .configure_from_args();
    bench(&mut criterion, &input);
    criterion.final_summary();
    summary(events);
}

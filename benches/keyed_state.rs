//! Keyed state without windows: events/s per worker of the running aggregate (`count` and
//! `sum` per key, as a changelog), the interval join and deduplication, over in-memory streams.
//!
//! - *running_aggregate*: the input below, keyed, into `running_aggregate((Count, Sum))`.
//! - *interval_join*: the same input as the left side and a second stream like it (another
//!   seed) as the right side, over `JOIN_KEYS` keys, joined with `b.time in [a.time - 2 ms,
//!   a.time + 2 ms]`: about 0.5 matches per left record. Events/s counts both sides.
//! - *dedup*: the input's keys as ids drawn from `EVENTS / 4` ids (so most records repeat an
//!   id, spread over the whole stream), `dedup_within(100 ms)`.
//!
//! Input: `EVENTS` records `(event_time_ms, key, value)`, in event-time order, 1,000 per
//! millisecond, keys `0..1000` drawn by a fixed SplitMix64 stream. Each run checks that the last
//! insertion per key counts every record. The changelog has one retraction/insertion pair per
//! key per millisecond in which the key changed (about 630 keys of 1,000 per millisecond here),
//! so the sink sees roughly 1.3 rows per input record: the bench measures the changelog too.
//!
//! Run: `cargo bench --bench keyed_state`. Results: `docs/BENCHMARKS.md`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};

use tideflow::aggregate::{Count, Sum};
use tideflow::sink::Sink;
use tideflow::source::MemorySource;
use tideflow::{Change, Config, Event, Flow, KeyedChange, KeyedStream};

/// Records in the input.
const EVENTS: usize = 4_000_000;
/// Distinct keys.
const KEYS: u64 = 1_000;
/// Records per millisecond of event time.
const EVENTS_PER_MS: usize = 1_000;
/// Distinct keys of the interval join's sides.
const JOIN_KEYS: u64 = 10_000;
/// Worker counts measured.
const WORKERS: &[usize] = &[1, 2];

type Input = Arc<Vec<(u64, u64, i64)>>;

fn generate(events: usize) -> Input {
    generate_with(events, 0x5eed, KEYS)
}

fn generate_with(events: usize, seed: u64, keys: u64) -> Input {
    let mut state = seed;
    let mut splitmix = move || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    Arc::new(
        (0..events)
            .map(|i| {
                let key = splitmix() % keys;
                ((i / EVENTS_PER_MS) as u64, key, (key % 7) as i64)
            })
            .collect(),
    )
}

/// A sink that adds up the insertions' counts minus the retractions'.
struct NetCount(Arc<AtomicU64>);

impl Sink<KeyedChange<u64, (u64, i64)>> for NetCount {
    fn write(
        &mut self,
        batch: &mut Vec<Event<KeyedChange<u64, (u64, i64)>>>,
    ) -> Result<(), tideflow::Error> {
        let mut net = 0i64;
        for row in batch.drain(..) {
            let count = row.data.value.0 as i64;
            net += match row.data.change {
                Change::Insert => count,
                Change::Retract => -count,
            };
        }
        self.0.fetch_add(net as u64, Ordering::Relaxed);
        Ok(())
    }
}

fn run_running(events: &Input, workers: usize) -> u64 {
    let net = Arc::new(AtomicU64::new(0));
    let sink = Arc::clone(&net);
    let events = Arc::clone(events);
    tideflow::execute(Config::workers(workers), move |flow| {
        flow.source(MemorySource::partitioned(Arc::clone(&events), workers))
            .with_event_time(|e: &(u64, u64, i64)| e.0)
            .with_watermark(Duration::ZERO)
            .map(|(_, key, value)| (key, value))
            .into_keyed()
            .running_aggregate((Count, Sum::of(|value: &i64| *value)))
            .sink(NetCount(Arc::clone(&sink)));
        Ok(())
    })
    .expect("running aggregate job failed");
    net.load(Ordering::Relaxed)
}

/// A sink that counts the records it receives.
struct Counting(Arc<AtomicU64>);

impl<D: 'static> Sink<D> for Counting {
    fn write(&mut self, batch: &mut Vec<Event<D>>) -> Result<(), tideflow::Error> {
        self.0.fetch_add(batch.len() as u64, Ordering::Relaxed);
        batch.clear();
        Ok(())
    }
}

/// `input` as a stream keyed by its second field, valued by its third.
fn keyed<'scope>(
    flow: &mut Flow<'scope>,
    input: &Input,
    workers: usize,
) -> KeyedStream<'scope, u64, i64> {
    flow.source(MemorySource::partitioned(Arc::clone(input), workers))
        .with_event_time(|e: &(u64, u64, i64)| e.0)
        .with_watermark(Duration::ZERO)
        .map(|(_, key, value)| (key, value))
        .into_keyed()
}

/// The interval join of `left` and `right`; returns the pairs found.
fn run_join(left: &Input, right: &Input, workers: usize) -> u64 {
    let pairs = Arc::new(AtomicU64::new(0));
    let sink = Arc::clone(&pairs);
    let (left, right) = (Arc::clone(left), Arc::clone(right));
    tideflow::execute(Config::workers(workers), move |flow| {
        let a = keyed(flow, &left, workers);
        let b = keyed(flow, &right, workers);
        a.interval_join(b, Duration::from_millis(2), Duration::from_millis(2))
            .sink(Counting(Arc::clone(&sink)));
        Ok(())
    })
    .expect("interval join job failed");
    pairs.load(Ordering::Relaxed)
}

/// Deduplication of `events` by id within 100 ms; returns the records kept.
fn run_dedup(events: &Input, workers: usize) -> u64 {
    let kept = Arc::new(AtomicU64::new(0));
    let sink = Arc::clone(&kept);
    let events = Arc::clone(events);
    tideflow::execute(Config::workers(workers), move |flow| {
        flow.source(MemorySource::partitioned(Arc::clone(&events), workers))
            .with_event_time(|e: &(u64, u64, i64)| e.0)
            .with_watermark(Duration::ZERO)
            .map(|(_, id, value)| (id, value))
            .into_keyed()
            .dedup_within(Duration::from_millis(100))
            .sink(Counting(Arc::clone(&sink)));
        Ok(())
    })
    .expect("dedup job failed");
    kept.load(Ordering::Relaxed)
}

fn main() {
    let events = std::env::var("KEYED_STATE_EVENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(EVENTS);
    let input = generate(events);
    for &workers in WORKERS {
        assert_eq!(
            run_running(&input, workers),
            events as u64,
            "{workers} workers"
        );
    }
    let right = generate_with(events, 0xfeed, JOIN_KEYS);
    let left = generate_with(events, 0x5eed, JOIN_KEYS);
    let pairs = run_join(&left, &right, 1);
    assert!(pairs > 0, "the join found no pairs");
    assert_eq!(
        run_join(&left, &right, 2),
        pairs,
        "the join differs on 2 workers"
    );
    let ids = generate_with(events, 0xd0d0, (events / 4) as u64);
    let kept = run_dedup(&ids, 1);
    assert!(
        kept > 0 && kept < events as u64,
        "dedup kept {kept} of {events}"
    );
    assert_eq!(run_dedup(&ids, 2), kept, "dedup differs on 2 workers");

    let mut criterion = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(8))
        .configure_from_args();
    let mut group = criterion.benchmark_group("keyed_state");
    group.sampling_mode(SamplingMode::Flat);
    for &workers in WORKERS {
        let id = format!("{workers}w");
        group.throughput(Throughput::Elements(events as u64));
        group.bench_with_input(
            BenchmarkId::new("running_aggregate", &id),
            &workers,
            |b, &workers| b.iter(|| run_running(&input, workers)),
        );
        group.bench_with_input(BenchmarkId::new("dedup", &id), &workers, |b, &workers| {
            b.iter(|| run_dedup(&ids, workers))
        });
        group.throughput(Throughput::Elements(2 * events as u64));
        group.bench_with_input(
            BenchmarkId::new("interval_join", &id),
            &workers,
            |b, &workers| b.iter(|| run_join(&left, &right, workers)),
        );
    }
    group.finish();
    criterion.final_summary();
}

//! Bytes of heap per live (key, window) of each window kind and keyed-state operator: the
//! operator alone on one timely worker, `N` distinct keys sent with one record each at stamp 0,
//! the input advanced to 1 (so that stashed records are applied) with every window still open,
//! and the live heap measured before and after by a counting global allocator.
//!
//! Two figures per row: *requested*, the bytes the program asked for (`Layout::size`), and
//! *malloc*, what the allocator holds for them (`malloc_usable_size + 8` per block: glibc's
//! size rounding and block header). Live heap, not RSS: freed memory the allocator keeps is not
//! counted, and neither are timely's buffers (they are there before the records are). The
//! types are the command line's (`tideflow run`: [`Key`] keys, [`Row`] records,
//! [`RowAggregator`] with `count` or `count,sum:value`) and the Rust API's (`u64` keys, `i64`
//! values, [`Count`] or `(Count, Sum)`).
//!
//! Run: `cargo bench -p tideflow-cli --bench state_memory` (`-- N` for another key count; by
//! default 1,000,000). Deterministic: the same build prints the same table. Results:
//! `docs/BENCHMARKS.md`, "Memory per key (issue 16)".

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use timely::communication::allocator::thread::Thread;
use timely::communication::Allocator;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::vec::Filter;
use timely::dataflow::operators::Probe;
use timely::dataflow::{InputHandle, ProbeHandle, StreamVec};
use timely::worker::Worker;
use timely::{ExchangeData, WorkerConfig};

use tideflow::aggregate::{Aggregator, Count, Sum};
use tideflow_cli::record::{AggSpec, Key, KeyKind, Num, Row, RowAggregator};
use tideflow_operators::keyed::dedup::DedupWithin;
use tideflow_operators::keyed::interval_join::{InnerJoin, IntervalJoin};
use tideflow_operators::keyed::map_with_state::{MapWithState, StateInput};
use tideflow_operators::keyed::running::RunningAggregate;
use tideflow_operators::stateful::StateConfig;
use tideflow_operators::window::{
    SessionWindow, SlidingWindow, TumblingWindow, WindowResult, WindowStreams, WindowUpdate,
};
use tideflow_operators::Event;

/// Counts the live heap: bytes requested, and bytes the allocator holds for them.
struct Counting;

static REQUESTED: AtomicIsize = AtomicIsize::new(0);
static HELD: AtomicIsize = AtomicIsize::new(0);

/// What glibc holds for the block at `ptr`: its usable size and its 8-byte header.
unsafe fn held(ptr: *mut u8) -> isize {
    (libc::malloc_usable_size(ptr.cast()) + 8) as isize
}

/// Counts the block `ptr` allocated for `layout`, if the allocation succeeded.
unsafe fn counted(ptr: *mut u8, layout: Layout) -> *mut u8 {
    if !ptr.is_null() {
        REQUESTED.fetch_add(layout.size() as isize, Ordering::Relaxed);
        HELD.fetch_add(held(ptr), Ordering::Relaxed);
    }
    ptr
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        counted(System.alloc(layout), layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        counted(System.alloc_zeroed(layout), layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        REQUESTED.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        HELD.fetch_sub(held(ptr), Ordering::Relaxed);
        System.dealloc(ptr, layout);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let before = held(ptr);
        let moved = System.realloc(ptr, layout, new_size);
        if !moved.is_null() {
            REQUESTED.fetch_add(
                new_size as isize - layout.size() as isize,
                Ordering::Relaxed,
            );
            HELD.fetch_add(held(moved) - before, Ordering::Relaxed);
        }
        moved
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The live heap: (requested, held).
fn live() -> (isize, isize) {
    (
        REQUESTED.load(Ordering::Relaxed),
        HELD.load(Ordering::Relaxed),
    )
}

/// Event time of every record: inside the first window of every kind below.
const TIME: u64 = 1_000;
/// Tumbling windows, and the sliding windows' size.
const SIZE: u64 = 60_000;
/// The sliding windows' slide: each record is in `SIZE / SLIDE` windows.
const SLIDE: u64 = 10_000;
/// The session gap (the `session:10m` job's), the dedup bound and the join's upper bound.
const GAP: u64 = 600_000;

type Input<K, D> = InputHandle<u64, CapacityContainerBuilder<Vec<Event<(K, D)>>>>;

/// Builds `operator` over an input, sends `n` records `record(i)` at stamp 0, advances the
/// input to 1 and steps until they are applied; returns the live heap they added, per record.
fn per_record<K, D>(
    n: u64,
    record: impl Fn(u64) -> (K, D),
    operator: impl FnOnce(StreamVec<'_, u64, Event<(K, D)>>, &ProbeHandle<u64>),
) -> (f64, f64)
where
    K: ExchangeData + Clone,
    D: ExchangeData + Clone,
{
    {
        // A worker on this thread (`execute_directly` wants `Send` closures).
        let allocator = Allocator::Thread(Thread::default());
        let mut worker = Worker::new(WorkerConfig::default(), allocator, None);
        let mut input: Input<K, D> = InputHandle::new();
        let probe = ProbeHandle::new();
        worker.dataflow(|scope| operator(input.to_stream(scope), &probe));
        for _ in 0..10 {
            worker.step();
        }
        let before = live();
        for i in 0..n {
            input.send(Event::new(TIME, record(i)));
            if i % 1024 == 1023 {
                worker.step();
            }
        }
        input.advance_to(1);
        worker.step_while(|| probe.less_than(&1));
        let after = live();
        let per = |a: isize, b: isize| (b - a) as f64 / n as f64;
        let figures = (per(before.0, after.0), per(before.1, after.1));
        // The state is freed with the worker, outside the measurement.
        drop(input);
        worker.step_while(|| !probe.done());
        figures
    }
}

/// The command line's key of record `i`: a string, as CSV keys are.
fn cli_key(i: u64) -> Key {
    Key::Str(compact_str::format_compact!("user{i:07}"))
}

/// The command line's row of record `i`, with `value` as its one numeric field.
fn cli_row(i: u64) -> Row {
    Row {
        key: Key::Null,
        key_kind: KeyKind::Text,
        time: TIME,
        values: vec![Some(Num::Int((i % 100) as i64))],
        scalars: Vec::new(),
        original: None,
    }
}

/// `tideflow run`'s aggregator for `--agg` flags `aggs`, reading the field `value`.
fn cli_aggregator(aggs: &[&str]) -> RowAggregator {
    let specs: Vec<AggSpec> = aggs
        .iter()
        .map(|agg| agg.parse().expect("a valid --agg"))
        .collect();
    RowAggregator::new(&specs, &["value".to_string()], &[])
}

/// [`per_record`] of the operator `build` makes over `aggregator`.
fn rows<K, D, A, R>(
    n: u64,
    record: impl Fn(u64) -> (K, D),
    aggregator: A,
    build: impl FnOnce(StreamVec<'_, u64, Event<(K, D)>>, A) -> StreamVec<'_, u64, Event<R>>,
) -> (f64, f64)
where
    K: ExchangeData + Clone,
    D: ExchangeData + Clone,
    R: 'static,
{
    per_record(n, record, move |stream, probe| {
        build(stream, aggregator).probe_with(probe);
    })
}

/// One row of the table.
struct Measured {
    operator: &'static str,
    types: &'static str,
    aggregate: &'static str,
    figures: (f64, f64),
}

/// The window operators over aggregator `A`: tumbling (append and update), sliding, session.
fn windows<K, D, A>(
    n: u64,
    types: &'static str,
    aggregate: &'static str,
    record: impl Fn(u64) -> (K, D) + Copy,
    aggregator: impl Fn() -> A,
) -> Vec<Measured>
where
    K: ExchangeData + std::hash::Hash + Eq + Clone,
    D: ExchangeData + Clone,
    A: Aggregator<D>,
    A::Output: PartialEq,
{
    let row = |operator, figures| Measured {
        operator,
        types,
        aggregate,
        figures,
    };
    let none = StateConfig::none;
    type Append<K, O> = WindowResult<K, O>;
    type Update<K, O> = WindowUpdate<K, O>;
    let tumbling = rows(n, record, aggregator(), |stream, aggregator| {
        (stream.tumbling_window_rows::<_, Append<K, A::Output>>(SIZE, 0, aggregator, none()))
            .results
    });
    let tumbling_updates = rows(n, record, aggregator(), |stream, aggregator| {
        (stream.tumbling_window_rows::<_, Update<K, A::Output>>(SIZE, 0, aggregator, none()))
            .results
    });
    let sliding = rows(n, record, aggregator(), |stream, aggregator| {
        let rows: WindowStreams<'_, K, D, Append<K, A::Output>> =
            stream.sliding_window_rows(SIZE, SLIDE, 0, aggregator, none());
        rows.results
    });
    let session = rows(n, record, aggregator(), |stream, aggregator| {
        (stream.session_window_rows::<_, Append<K, A::Output>>(GAP, 0, aggregator, none())).results
    });
    let running = {
        let aggregator = aggregator();
        per_record(n, record, move |stream, probe| {
            stream
                .running_aggregate_core(aggregator, none())
                .changes
                .probe_with(probe);
        })
    };
    vec![
        row("tumbling", tumbling),
        row("tumbling, update mode", tumbling_updates),
        row("sliding (contributions)", sliding),
        row("session", session),
        row("running_aggregate", running),
    ]
}

/// The keyed operators that hold no aggregate, at the API's types.
fn keyed(n: u64) -> Vec<Measured> {
    let record = |i: u64| (i, i as i64);
    let row = |operator, aggregate, figures| Measured {
        operator,
        types: "API (u64, i64)",
        aggregate,
        figures,
    };
    let dedup = per_record(n, record, |stream, probe| {
        stream
            .dedup_within_core(GAP, StateConfig::none())
            .kept
            .probe_with(probe);
    });
    let map_with_state = per_record(n, record, |stream, probe| {
        stream
            .map_with_state_core::<u64, u64, _>(
                None,
                |_, input, state, _| {
                    if let StateInput::Records(records) = input {
                        *state.get_or_insert(0) += records.count() as u64;
                    }
                },
                StateConfig::none(),
            )
            .output
            .probe_with(probe);
    });
    let join = per_record(n, record, |stream, probe| {
        // Even keys on the left, odd on the right: no matches, every record held.
        let left = stream.clone().filter(|event| event.data.0 % 2 == 0);
        let right = stream.filter(|event| event.data.0 % 2 == 1);
        left.interval_join_core(right, 0, GAP, InnerJoin, StateConfig::none(), |_| {})
            .probe_with(probe);
    });
    vec![
        row("dedup_within", "(id)", dedup),
        row("map_with_state", "u64 state", map_with_state),
        row("interval_join", "(row held)", join),
    ]
}

fn main() {
    let n: u64 = std::env::args()
        .skip(1)
        .find_map(|arg| arg.replace('_', "").parse().ok())
        .unwrap_or(1_000_000);
    let cli = |i| (cli_key(i), cli_row(i));
    let api = |i: u64| (i, i as i64);
    let mut rows = Vec::new();
    rows.extend(windows(n, "CLI (Key, Row)", "count", cli, || {
        cli_aggregator(&["count"])
    }));
    rows.extend(windows(n, "CLI (Key, Row)", "count,sum", cli, || {
        cli_aggregator(&["count", "sum:value"])
    }));
    rows.extend(windows(n, "API (u64, i64)", "Count", api, || Count));
    rows.extend(windows(n, "API (u64, i64)", "(Count, Sum)", api, || {
        (Count, Sum::of(|v: &i64| *v))
    }));
    rows.extend(keyed(n));
    println!("{n} live keys, one record each; bytes of live heap per (key, window):\n");
    println!("| operator | types | aggregate | requested | malloc |");
    println!("|---|---|---|---:|---:|");
    for row in rows {
        println!(
            "| {} | {} | {} | {:.0} | {:.0} |",
            row.operator, row.types, row.aggregate, row.figures.0, row.figures.1
        );
    }
}

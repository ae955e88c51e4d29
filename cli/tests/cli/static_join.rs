//! `KeyedStream::join_static` and `join_static_left` against a from-scratch oracle, records
//! that arrive before the table is loaded, and `tideflow run --join-static`.
//!
//! The oracle follows the operator's documentation, without engine code:
//! - record `i` belongs to partition `i % P`; its stamp is `max(t, max_seen_before - delay)`
//!   over the earlier records of its partition (just `t` for the first one);
//! - each record leaves once per table row with its key (the table a multiset: a row given
//!   twice joins twice), at its own stamp and with its own event time; in the left join a
//!   record whose key has no row leaves once with `None`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tideflow::sink::Sink;
use tideflow::source::{MemorySource, Source, SourceBatch, SourceContext, SourceStatus};
use tideflow::{Config, Error, Event, JobReport, Joined, Stream};
use timely::dataflow::operators::Inspect;

use crate::support::{fails, query_args, tideflow, write, SplitMix64};

const WORKERS: [usize; 3] = [1, 2, 4];
const SEEDS: [u64; 3] = [0x57a7_1c01, 0x0e11_c4ed, 0x7a_b1e5_eed5];

/// A stream record: its key is looked up in the table.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
struct Order {
    customer: u32,
    ts: u64,
    cents: u32,
}

/// One output row as the tests compare it: (stamp, event time, order, table value).
type Out = (u64, u64, Order, Option<u32>);

/// `events` orders over customers `0..keys`, times advancing by 0..=4 ms with one order in
/// three moved back by up to 300 ms; and a table over the same keys where a key has 0, 1 or
/// several rows (some of them duplicates of each other).
fn generate(seed: u64, events: usize, keys: u32) -> (Vec<Order>, Vec<(u32, u32)>) {
    let mut rng = SplitMix64(seed);
    let mut cursor = 1_700_000_000_000 + rng.below(1_000);
    let orders = (0..events)
        .map(|_| {
            cursor += rng.below(5);
            let jitter = if rng.below(3) == 0 { rng.below(301) } else { 0 };
            Order {
                customer: rng.below(u64::from(keys)) as u32,
                ts: cursor - jitter,
                cents: rng.below(10_000) as u32,
            }
        })
        .collect();
    let mut table = Vec::new();
    for key in 0..keys {
        match rng.below(6) {
            0 | 1 => {} // missing: a third of the keys
            2 => {
                // A duplicated row and another one.
                let value = rng.below(100) as u32;
                table.extend([(key, value), (key, value), (key, value + 1)]);
            }
            _ => {
                for _ in 0..1 + rng.below(2) {
                    table.push((key, rng.below(100) as u32));
                }
            }
        }
    }
    // Rows in no particular order.
    for i in (1..table.len()).rev() {
        table.swap(i, rng.below(i as u64 + 1) as usize);
    }
    (orders, table)
}

fn oracle(
    orders: &[Order],
    table: &[(u32, u32)],
    partitions: usize,
    delay: u64,
    left: bool,
) -> Vec<Out> {
    let mut rows: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for (key, value) in table {
        rows.entry(*key).or_default().push(*value);
    }
    let mut max_seen: Vec<Option<u64>> = vec![None; partitions];
    let mut out = Vec::new();
    for (i, order) in orders.iter().enumerate() {
        let seen = &mut max_seen[i % partitions];
        let stamp = order.ts.max(seen.map_or(0, |m| m.saturating_sub(delay)));
        *seen = Some(seen.map_or(order.ts, |m| m.max(order.ts)));
        match rows.get(&order.customer) {
            Some(values) => {
                for value in values {
                    out.push((stamp, order.ts, order.clone(), Some(*value)));
                }
            }
            None if left => out.push((stamp, order.ts, order.clone(), None)),
            None => {}
        }
    }
    out.sort();
    out
}

/// A sink that drops what it gets (rows are captured with their stamps before it).
#[derive(Clone, Copy)]
struct Discard;

impl<D: 'static> Sink<D> for Discard {
    fn write(&mut self, batch: &mut Vec<Event<D>>) -> Result<(), Error> {
        batch.clear();
        Ok(())
    }
}

/// Captures every row of `joined` with its stamp into `out`, and ends it in a sink.
fn capture(joined: Stream<'_, (Order, Option<u32>)>, out: &Arc<Mutex<Vec<Out>>>) {
    let out = Arc::clone(out);
    joined
        .clone()
        .into_inner()
        .inspect_batch(move |stamp, events| {
            let mut out = out.lock().expect("no panics");
            for event in events {
                let (order, value) = event.data.clone();
                out.push((*stamp, event.time, order, value));
            }
        });
    joined.sink(Discard);
}

struct Case {
    partitions: usize,
    delay: u64,
    batch: usize,
    left: bool,
}

/// Joins `orders` with `table`, each read from a memory source (the table from 3 partitions,
/// so several workers load it).
fn run<T>(orders: &Arc<Vec<Order>>, table: T, case: &Case, workers: usize) -> (Vec<Out>, JobReport)
where
    T: Source<Item = (u32, u32)> + Clone + Send + Sync,
{
    let out = Arc::new(Mutex::new(Vec::new()));
    let captured = Arc::clone(&out);
    let orders = Arc::clone(orders);
    let (partitions, delay, batch, left) = (case.partitions, case.delay, case.batch, case.left);
    let report = tideflow::execute(Config::workers(workers), move |flow| {
        let table = flow.static_table(table.clone());
        let keyed = flow
            .source(MemorySource::partitioned(Arc::clone(&orders), partitions).batch_size(batch))
            .with_event_time(|order: &Order| order.ts)
            .with_watermark(Duration::from_millis(delay))
            .key_by(|order| order.customer);
        let joined = if left {
            keyed
                .join_static_left(table)
                .map(|row: Joined<u32, Order, Option<u32>>| (row.left, row.right))
        } else {
            keyed
                .join_static(table)
                .map(|row: Joined<u32, Order, u32>| (row.left, Some(row.right)))
        };
        capture(joined, &captured);
        Ok(())
    })
    .expect("the job runs");
    let mut rows = std::mem::take(&mut *out.lock().expect("no panics"));
    rows.sort();
    (rows, report)
}

fn assert_same(rows: &[Out], expected: &[Out], context: &str) {
    if rows != expected {
        let missing: Vec<_> = expected
            .iter()
            .filter(|r| !rows.contains(r))
            .take(5)
            .collect();
        let extra: Vec<_> = rows
            .iter()
            .filter(|r| !expected.contains(r))
            .take(5)
            .collect();
        panic!(
            "{context}: {} rows, the oracle has {}; missing {missing:?}, unexpected {extra:?}",
            rows.len(),
            expected.len()
        );
    }
}

#[test]
fn static_join_matches_the_oracle_on_1_2_and_4_workers() {
    let (mut duplicates, mut missing, mut multiple) = (0, 0, 0);
    for (n, seed) in SEEDS.into_iter().enumerate() {
        let (orders, table) = generate(seed, 2_000, 80);
        let mut per_key: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
        for (key, value) in &table {
            per_key.entry(*key).or_default().push(*value);
        }
        multiple += per_key.values().filter(|values| values.len() > 1).count();
        duplicates += per_key
            .values()
            .filter(|values| (1..values.len()).any(|i| values[..i].contains(&values[i])))
            .count();
        missing += orders
            .iter()
            .filter(|order| !per_key.contains_key(&order.customer))
            .count();
        let orders = Arc::new(orders);
        let table_source = MemorySource::partitioned(table.clone(), 3).batch_size(5);
        for left in [false, true] {
            let case = Case {
                partitions: [1, 3, 2][n],
                delay: [0, 100, 400][n],
                batch: [1024, 7, 64][n],
                left,
            };
            let expected = oracle(&orders, &table, case.partitions, case.delay, left);
            for workers in WORKERS {
                let context = format!("seed={seed:#x} left={left} workers={workers}");
                let (rows, report) = run(&orders, table_source.clone(), &case, workers);
                assert_same(&rows, &expected, &context);
                assert_eq!(
                    report.records_in,
                    orders.len() as u64,
                    "{context}: table rows are not input"
                );
                let state = report.state["static_join"];
                // Every worker held its shard of the table; all let go at the end.
                assert!(state.peak >= table.len() as u64, "{context}: {state:?}");
                assert_eq!(state.rows, 0, "{context}");
            }
        }
    }
    // The inputs exercised duplicate rows, keys with several rows, and missing keys.
    assert!(
        duplicates > 10 && multiple > 30 && missing > 1_000,
        "{duplicates} {multiple} {missing}"
    );
}

/// A table that becomes readable only `after` the job starts (a slow file, say): worker 0
/// reads all of it, the others have none.
#[derive(Clone)]
struct SlowTable {
    rows: Vec<(u32, u32)>,
    after: Duration,
    started: Option<Instant>,
    mine: bool,
}

impl Source for SlowTable {
    type Item = (u32, u32);

    fn on_start(&mut self, context: &SourceContext) -> Result<(), Error> {
        self.started = Some(Instant::now());
        self.mine = context.worker_index == 0;
        Ok(())
    }

    fn read(&mut self, batch: &mut SourceBatch<(u32, u32)>) -> Result<SourceStatus, Error> {
        let waited = self.started.map_or(Duration::ZERO, |at| at.elapsed());
        if !self.mine {
            return Ok(SourceStatus::Done);
        }
        if waited < self.after {
            return Ok(SourceStatus::Wait(self.after - waited));
        }
        for row in self.rows.drain(..) {
            batch.push(0, row);
        }
        Ok(SourceStatus::Done)
    }
}

#[test]
fn records_that_arrive_before_the_table_is_loaded_still_join() {
    let (orders, table) = generate(0x51_0b0e, 1_000, 40);
    let orders = Arc::new(orders);
    for workers in [1, 2] {
        for left in [false, true] {
            let case = Case {
                partitions: 2,
                delay: 50,
                batch: 1024,
                left,
            };
            let slow = SlowTable {
                rows: table.clone(),
                after: Duration::from_millis(300),
                started: None,
                mine: false,
            };
            let context = format!("left={left} workers={workers}");
            let (rows, report) = run(&orders, slow, &case, workers);
            let expected = oracle(&orders, &table, case.partitions, case.delay, left);
            assert_same(&rows, &expected, &context);
            // The whole stream was read long before the table: every record waited for it.
            let state = report.state["static_join"];
            assert!(
                state.peak >= orders.len() as u64,
                "{context}: records did not wait: {state:?}"
            );
        }
    }
}

/// `tideflow run` over orders keyed by customer, joined with `table` on `id`, then `extra`
/// (the window or mode, and the aggregates); returns stdout.
fn run_cli(orders: &str, table: &str, extra: &[&str]) -> String {
    let mut args = vec![
        "run",
        "--input",
        orders,
        "--time-field",
        "ts",
        "--key-field",
        "customer",
        "--join-static",
        table,
        "--join-key",
        "id",
    ];
    args.extend_from_slice(extra);
    let out = tideflow(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

const ORDERS: &str = "\
{\"customer\":1,\"amount\":100,\"ts\":1000}
{\"customer\":2,\"amount\":50,\"ts\":1500}
{\"customer\":\"3\",\"amount\":70,\"ts\":2500}
{\"customer\":9,\"amount\":5,\"ts\":3000}
{\"customer\":null,\"amount\":1,\"ts\":3100}
{\"customer\":1,\"amount\":10,\"ts\":12000}
";

#[test]
fn cli_joins_json_lines_and_csv_tables() {
    let dir = tempfile::tempdir().unwrap();
    let orders = write(dir.path(), "orders.jsonl", ORDERS);
    // Customer 2 has two rows; 9 and null have none; keys match by canonical text ("3" and
    // 3.0); the key "3" sorts as the number 3 and is written as the string it was read as.
    let csv = write(
        dir.path(),
        "customers.csv",
        "id,segment,credit\n1,gold,1000\n2,silver,200\n3,gold,\n2,staff,50\n",
    );
    let jsonl = write(
        dir.path(),
        "customers.jsonl",
        "{\"id\":1,\"segment\":\"gold\",\"credit\":1000}\n\
         {\"id\":\"2\",\"segment\":\"silver\",\"credit\":200}\n\
         {\"id\":3.0,\"segment\":\"gold\",\"other\":[1,2]}\n\
         {\"id\":2,\"segment\":\"staff\",\"credit\":50}\n\
         {\"id\":null,\"segment\":\"nobody\",\"credit\":1}\n",
    );
    let aggs = [
        "--window",
        "tumbling:10s",
        "--agg",
        "count",
        "--agg",
        "sum:amount",
        "--agg",
        "sum:table.credit",
        "--agg",
        "count_distinct:table.segment",
    ];
    let inner = "\
{\"key\":1,\"window_start\":0,\"window_end\":10000,\"count\":1,\"sum_amount\":100,\"sum_table.credit\":1000,\"count_distinct_table.segment\":1}
{\"key\":2,\"window_start\":0,\"window_end\":10000,\"count\":2,\"sum_amount\":100,\"sum_table.credit\":250,\"count_distinct_table.segment\":2}
{\"key\":\"3\",\"window_start\":0,\"window_end\":10000,\"count\":1,\"sum_amount\":70,\"sum_table.credit\":null,\"count_distinct_table.segment\":1}
{\"key\":1,\"window_start\":10000,\"window_end\":20000,\"count\":1,\"sum_amount\":10,\"sum_table.credit\":1000,\"count_distinct_table.segment\":1}
";
    let left = "\
{\"key\":null,\"window_start\":0,\"window_end\":10000,\"count\":1,\"sum_amount\":1,\"sum_table.credit\":null,\"count_distinct_table.segment\":0}
{\"key\":1,\"window_start\":0,\"window_end\":10000,\"count\":1,\"sum_amount\":100,\"sum_table.credit\":1000,\"count_distinct_table.segment\":1}
{\"key\":2,\"window_start\":0,\"window_end\":10000,\"count\":2,\"sum_amount\":100,\"sum_table.credit\":250,\"count_distinct_table.segment\":2}
{\"key\":\"3\",\"window_start\":0,\"window_end\":10000,\"count\":1,\"sum_amount\":70,\"sum_table.credit\":null,\"count_distinct_table.segment\":1}
{\"key\":9,\"window_start\":0,\"window_end\":10000,\"count\":1,\"sum_amount\":5,\"sum_table.credit\":null,\"count_distinct_table.segment\":0}
{\"key\":1,\"window_start\":10000,\"window_end\":20000,\"count\":1,\"sum_amount\":10,\"sum_table.credit\":1000,\"count_distinct_table.segment\":1}
";
    for table in [&csv, &jsonl] {
        for workers in ["1", "3"] {
            let mut extra = aggs.to_vec();
            extra.extend(["--workers", workers]);
            assert_eq!(
                run_cli(&orders, table, &extra),
                inner,
                "{table} workers={workers}"
            );
            extra.extend(["--join-type", "left"]);
            assert_eq!(
                run_cli(&orders, table, &extra),
                left,
                "{table} workers={workers} left"
            );
        }
    }
    // Without a window: running aggregates per key over the enriched rows (upserts).
    let running = run_cli(
        &orders,
        &csv,
        &["--mode", "update", "--agg", "max:table.credit"],
    );
    let last_of_2 = running.lines().rfind(|line| line.contains("\"key\":2,"));
    assert!(
        last_of_2.is_some_and(|line| line.contains("\"max_table.credit\":200")),
        "{running}"
    );
}

#[test]
fn cli_join_errors_name_the_flag_or_the_table_line() {
    let dir = tempfile::tempdir().unwrap();
    let orders = write(dir.path(), "orders.jsonl", ORDERS);
    let query = |table: &str| -> Vec<String> {
        query_args(
            &orders,
            &["--window", "tumbling:10s", "--agg", "sum:table.credit"],
        )
        .into_iter()
        .map(str::to_string)
        .chain(["--join-static", table, "--join-key", "id"].map(str::to_string))
        .collect()
    };
    let cases: [(&str, &str, &str); 6] = [
        (
            "no_id.csv",
            "segment,credit\ngold,1\n",
            "no_id.csv:1: no column 'id' (--join-key)",
        ),
        (
            "no_credit.csv",
            "id,segment\n1,gold\n",
            "no column 'credit' (--agg table.credit)",
        ),
        (
            "bad.csv",
            "id,credit\n1,5\n2,lots\n",
            "bad.csv:3: field 'credit' must be a number",
        ),
        ("short.csv", "id,credit\n1,5\n2\n", "short.csv:3:"),
        (
            "no_id.jsonl",
            "{\"id\":1,\"credit\":5}\n{\"credit\":6}\n",
            "no_id.jsonl:2: missing join key field 'id'",
        ),
        (
            "bad.jsonl",
            "{\"id\":1,\"credit\":5}\n{\"id\":2,\n",
            "bad.jsonl:2:",
        ),
    ];
    for (name, contents, expected) in cases {
        let table = write(dir.path(), name, contents);
        for workers in ["1", "2"] {
            let mut args = query(&table);
            args.extend(["--workers".to_string(), workers.to_string()]);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let line = fails(&args, 2);
            assert!(line.contains(expected), "{name}: {line}");
        }
    }
    let missing = dir.path().join("nope.csv");
    let missing = missing.to_str().unwrap();
    let args = query(missing);
    let line = fails(&args.iter().map(String::as_str).collect::<Vec<_>>(), 2);
    assert!(
        line.contains("--join-static: table file") && line.contains("nope.csv does not exist"),
        "{line}"
    );
    let unknown = write(dir.path(), "customers.txt", "id\n1\n");
    let args = query(&unknown);
    let line = fails(&args.iter().map(String::as_str).collect::<Vec<_>>(), 2);
    assert!(
        line.contains("--join-static: cannot tell the format"),
        "{line}"
    );
    // Flags that need each other, or the stream's key field.
    let table = write(dir.path(), "customers.csv", "id,credit\n1,5\n");
    let base = [
        "run",
        "--input",
        &orders,
        "--time-field",
        "ts",
        "--window",
        "tumbling:10s",
        "--agg",
        "count",
    ];
    let line = fails(
        &[&base[..], &["--join-static", &table, "--join-key", "id"]].concat(),
        2,
    );
    assert!(line.contains("--join-static: needs --key-field"), "{line}");
    let line = fails(
        &[
            &base[..],
            &["--key-field", "customer", "--join-static", &table],
        ]
        .concat(),
        2,
    );
    assert!(line.contains("--join-key"), "{line}");
    let line = fails(
        &[&base[..], &["--key-field", "customer", "--join-key", "id"]].concat(),
        2,
    );
    assert!(line.contains("--join-static"), "{line}");
    let extra = [
        "--key-field",
        "customer",
        "--join-static",
        &table,
        "--join-key",
        "id",
        "--join-type",
        "outer",
    ];
    let line = fails(&[&base[..], &extra].concat(), 2);
    assert!(line.contains("--join-type"), "{line}");
}

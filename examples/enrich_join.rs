//! Enrichment with a stream-static join, then windows: Spark's
//! `orders.join(customers, "customer_id", "left").groupBy(window(ts, "10s"), "segment")`.
//!
//! A customer table is read once from a CSV file and arranged by customer id; every order
//! looks up its customer (orders of customers missing from the table count as "unknown"), and
//! the enriched orders are counted and summed per segment in 10 s tumbling windows. Orders
//! arrive up to 1.5 s out of order and wait for the table to be loaded before they join.
//!
//! Run it with `cargo run --release --example enrich_join`.

use std::time::Duration;

use tideflow::aggregate::{Count, Sum};
use tideflow::sink::MemorySink;
use tideflow::source::{Csv, FileSource, MemorySource};
use tideflow::{Config, Window};

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
struct Customer {
    id: u32,
    name: String,
    segment: String,
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct Order {
    customer: u32,
    cents: i64,
    ts: u64,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let customers = dir.path().join("customers.csv");
    std::fs::write(
        &customers,
        "id,name,segment\n1,Ann,gold\n2,Bob,silver\n3,Cat,gold\n4,Dan,bronze\n5,Eve,silver\n",
    )?;
    // Orders of customers 1..=6 (6 is not in the table), one every 700 ms, every fourth one
    // 1.5 s late.
    let orders: Vec<Order> = (0..60u64)
        .map(|i| Order {
            customer: (i * 7 % 6 + 1) as u32,
            cents: 100 * (i as i64 % 5 + 1),
            ts: 700 * i + 2_000 - if i % 4 == 3 { 1_500 } else { 0 },
        })
        .collect();

    let results = MemorySink::new();
    let output = results.clone();
    let report = tideflow::execute(Config::workers(2), move |flow| {
        let customers = flow.static_table_core(
            FileSource::new(&customers, Csv::<Customer>::serde()),
            |customer: Customer| Some((customer.id, customer)),
        );
        flow.source(MemorySource::partitioned(orders.clone(), 2).batch_size(8))
            .with_event_time(|order| order.ts)
            .with_watermark(Duration::from_millis(1_500))
            .key_by(|order| order.customer)
            .join_static_left(customers)
            .map(|row| {
                let segment = row.right.map_or("unknown".to_string(), |c| c.segment);
                (segment, row.left.cents)
            })
            .into_keyed()
            .window(Window::tumbling(Duration::from_secs(10))?)
            .aggregate((Count, Sum::of(|cents: &i64| *cents)))
            .sink(output.clone());
        Ok(())
    })?;

    let mut rows = results.take();
    rows.sort_by(|a, b| (a.start, &a.key).cmp(&(b.start, &b.key)));
    println!("window            segment  orders  cents");
    for row in rows {
        let (orders, cents) = row.value;
        println!(
            "[{:>5}, {:>5})  {:<8} {:>6} {:>6}",
            row.start, row.end, row.key, orders, cents
        );
    }
    let state = report.state["static_join"];
    println!(
        "{} orders read, {} late; join state at most {} rows (the table's, and orders waiting \
         for it), {} at the end",
        report.records_in, report.late_dropped, state.peak, state.rows
    );
    Ok(())
}

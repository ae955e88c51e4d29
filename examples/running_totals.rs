//! Running totals per customer, without windows: Spark's `groupBy("customer").agg(...)` on a
//! stream. Orders come out of order by up to 2 s; each time the watermark moves, the customers
//! whose totals changed get a retraction of their old row and an insertion of the new one.
//!
//! Run it with `cargo run --release --example running_totals`.

use std::time::Duration;

use tideflow::aggregate::{Count, Sum};
use tideflow::sink::{CompleteSink, ConsoleSink, MemorySink};
use tideflow::source::MemorySource;
use tideflow::{Change, Config};

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct Order {
    customer: String,
    cents: i64,
    ts: u64,
}

fn main() -> Result<(), tideflow::Error> {
    let customers = ["ann", "bob", "cat"];
    let orders: Vec<Order> = (0..12u64)
        .map(|i| Order {
            customer: customers[(i * 7 % 3) as usize].to_string(),
            cents: 250 * (i as i64 % 4 + 1),
            // One order a second, every third one a second and a half late.
            ts: 1_000 * i - if i % 3 == 2 { 1_500 } else { 0 },
        })
        .collect();

    let changelog = MemorySink::new();
    let output = changelog.clone();
    let report = tideflow::execute(Config::workers(2), move |flow| {
        let totals = flow
            .source(MemorySource::new(orders.clone()).batch_size(2))
            .with_event_time(|order| order.ts)
            .with_watermark(Duration::from_secs(2))
            .map(|order| (order.customer, order.cents))
            .into_keyed()
            .running_aggregate((Count, Sum::of(|cents: &i64| *cents)));
        totals.clone().sink(output.clone());
        // The whole table, once a second and at the end.
        totals.sink(CompleteSink::new(
            Duration::from_secs(1),
            ConsoleSink::debug(),
        ));
        Ok(())
    })?;

    println!("changelog (customer, (orders, cents)), as it happened:");
    for row in changelog.take() {
        let sign = match row.change {
            Change::Insert => '+',
            Change::Retract => '-',
        };
        println!("  {sign} {} {:?}", row.key, row.value);
    }
    println!(
        "{} orders read, state {:?}",
        report.records_in, report.state["running_aggregate"]
    );
    Ok(())
}

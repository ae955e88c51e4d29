//! Sensor readings, out of order, averaged per sensor in sliding and session windows.
//!
//! Run with `cargo run --example sensor_windows`.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tideflow::aggregate::{Avg, Count, Max};
use tideflow::sink::ConsoleSink;
use tideflow::source::MemorySource;
use tideflow::{Config, Window};

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Reading {
    sensor: String,
    celsius: f64,
    at_ms: u64,
}

fn readings() -> Vec<Reading> {
    // Three sensors reporting every 250 ms for a minute, delivered up to 2 s out of order, with
    // sensor c going quiet for 10 s in the middle (so its sessions split).
    let mut readings = Vec::new();
    for tick in 0..240u64 {
        for (index, sensor) in ["a", "b", "c"].iter().enumerate() {
            if *sensor == "c" && (80..120).contains(&tick) {
                continue;
            }
            let jitter = (tick * 7 + index as u64 * 3) % 9 * 250;
            readings.push(Reading {
                sensor: sensor.to_string(),
                celsius: 20.0 + (tick % 17) as f64 / 2.0 + index as f64,
                at_ms: 1_700_000_000_000 + tick * 250 - jitter.min(tick * 250),
            });
        }
    }
    readings
}

fn main() -> Result<(), tideflow::Error> {
    let readings = readings();
    let report = tideflow::execute(Config::workers(2), move |flow| {
        let stream = flow
            .source(MemorySource::new(readings.clone()))
            .with_event_time(|r| r.at_ms)
            .with_watermark(Duration::from_secs(2));
        stream
            .clone()
            .key_by(|r| r.sensor.clone())
            .window(Window::sliding(
                Duration::from_secs(20),
                Duration::from_secs(10),
            )?)
            .aggregate((Count, Avg::of(|r: &Reading| r.celsius)))
            .map(|row| {
                format!(
                    "sliding {} [{}, {}) readings={} mean={:.2}",
                    row.key, row.start, row.end, row.value.0, row.value.1
                )
            })
            .sink(ConsoleSink::display());
        stream
            .key_by(|r| r.sensor.clone())
            .window(Window::session(Duration::from_secs(5))?)
            .aggregate((Count, Max::of(|r: &Reading| r.celsius)))
            .map(|row| {
                format!(
                    "session {} [{}, {}) readings={} max={:?}",
                    row.key, row.start, row.end, row.value.0, row.value.1
                )
            })
            .sink(ConsoleSink::display());
        Ok(())
    })?;
    println!(
        "{} readings, {} rows, {} late",
        report.records_in, report.records_out, report.late_dropped
    );
    Ok(())
}

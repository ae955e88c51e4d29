//! Tideflow: a continuous stream-processing engine on timely dataflow.
//!
//! Records flow one event at a time through timely operators; the event-time frontier is the
//! watermark, so a window's result leaves the moment the watermark passes the window's end.
//! A job reads a [`source`], names each record's event time and allowed disorder, transforms
//! the [`Stream`], groups it by key into a [`Window`], aggregates, and writes to a [`sink`]:
//!
//! ```
//! use std::time::Duration;
//! use tideflow::{aggregate::{Avg, Count}, sink::MemorySink, source::MemorySource, Config, Window};
//!
//! #[derive(Clone, serde::Serialize, serde::Deserialize)]
//! struct Reading { sensor: u32, celsius: f64, at_ms: u64 }
//!
//! let readings: Vec<Reading> = (0..100)
//!     .map(|i| Reading { sensor: i % 3, celsius: 20.0 + f64::from(i % 7), at_ms: 1_000 * u64::from(i) })
//!     .collect();
//! let results = MemorySink::new();
//! let sink = results.clone();
//! let report = tideflow::execute(Config::workers(2), move |flow| {
//!     flow.source(MemorySource::new(readings.clone()))
//!         .with_event_time(|r| r.at_ms)
//!         .with_watermark(Duration::from_secs(2))
//!         .filter(|r| r.celsius > 21.0)
//!         .key_by(|r| r.sensor)
//!         .window(Window::tumbling(Duration::from_secs(10))?)
//!         .aggregate((Count, Avg::of(|r: &Reading| r.celsius)))
//!         .sink(sink.clone());
//!     Ok(())
//! })?;
//! assert_eq!(report.records_in, 100);
//! assert!(results.take().iter().all(|row| row.end - row.start == 10_000));
//! # Ok::<(), tideflow::Error>(())
//! ```
//!
//! Layers: `tideflow-operators` holds the timely operators (watermarks, windows, aggregates),
//! with no I/O; this crate holds the API ([`execute`], [`Flow`], [`Stream`]), sources, sinks,
//! the runtime and checkpointing; the `tideflow` binary is the crate `tideflow-cli` (`cli/`),
//! which holds the command line, its record model and the Prometheus endpoint.

#![deny(missing_docs)]

/// `eprintln!` in one write, never panicking: the processes of a cluster share standard error,
/// and a line written in pieces (as `eprintln!` writes it) can be cut by another process's.
macro_rules! note {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let mut line = format!($($arg)*);
        line.push('\n');
        let _ = std::io::stderr().write_all(line.as_bytes());
    }};
}

mod checkpoint;
mod cluster;
mod context;
mod coordination;
mod duration;
mod error;
mod flow;
mod metrics;
/// Mutations of valid inputs for the fuzz tests (`fuzz_*`).
#[cfg(test)]
#[path = "../tests/all/mutate.rs"]
mod mutate;
mod output_file;
mod position;
mod runtime;
pub mod sink;
pub mod source;
mod stream;
mod window;
mod worker;

/// Aggregators: built-ins and the trait for your own (re-exported from `tideflow-operators`).
pub mod aggregate {
    pub use tideflow_operators::aggregate::{
        Aggregator, Avg, Count, ExactSum, Max, Min, Sum, Summable,
    };
}

#[cfg(feature = "failpoints")]
pub use checkpoint::FAULT_VAR;
pub use checkpoint::{Checkpoint, JobFingerprint, ResumePositions, SnapshotReport, SourcePosition};
pub use cluster::{Cluster, PEER_TIMEOUT, SECRET_VAR};
pub use context::StopHandle;
pub use duration::parse_duration;
pub use error::{Error, ErrorKind, Result};
pub use flow::{Flow, RecordsInHandle};
pub use metrics::{
    ClusterProgress, Figures, LatencyPercentiles, OperatorState, ProcessProgress, Progress,
    ProgressListener, SnapshotProgress, SourcePartition, STATE_BYTES_PER_ROW,
};
pub use runtime::{execute, Config, JobReport, MAX_WORKERS};
pub use stream::{KeyedStream, ResultsAndLate, StaticTable, Stream, WindowedStream};
pub use tideflow_operators::keyed::interval_join::Joined;
pub use tideflow_operators::keyed::map_with_state::{Records, StateContext, StateInput};
pub use tideflow_operators::keyed::running::{Change, KeyedChange};
pub use tideflow_operators::window::{LateRecord, UpdateKind, WindowResult, WindowUpdate};
pub use tideflow_operators::{Event, Trigger};
pub use window::Window;

/// The README's examples, compiled and run as doctests so that they stay true.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

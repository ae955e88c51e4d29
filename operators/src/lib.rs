//! Timely dataflow operators for Tideflow.
//!
//! This crate is the bottom layer of Tideflow: pure operators on timely dataflow streams whose
//! timestamps are **event time in milliseconds** (`u64`). It holds watermark assignment
//! ([`watermark`], [`source`]), window assignment ([`window::assign`]), the window operators
//! ([`window::tumbling`], [`window::sliding`], [`window::session`]) and the aggregators they fold
//! records with ([`aggregate`]). Nothing here touches files, sockets or clocks: sources are given
//! a poll function, so every operator runs in a `timely::example`-style harness.
//!
//! Every stream here carries [`Event`]s: a record together with its own event time. The timely
//! timestamp of an event is its event time, or, when the event arrived behind its partition's
//! watermark, that watermark; the frontier of a stream is therefore its watermark.

#![deny(missing_docs)]

pub mod aggregate;
mod container;
pub mod event;
pub mod keyed;
pub mod snapshot;
pub mod source;
pub mod state;
pub mod stateful;
pub mod trigger;
pub mod watermark;
pub mod window;

pub use aggregate::Aggregator;
pub use event::{key_hash, Event};
pub use trigger::Trigger;

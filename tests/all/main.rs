//! Tideflow's integration tests, in one binary to keep link time down.

mod clocks;
mod cluster_metrics;
mod dedup;
mod interval_join;
mod kafka;
mod kafka_broker;
mod map_with_state;
mod named_state;
mod oracle;
mod runtime;
mod snapshots;
mod support;
mod two_phase;

//! Tideflow's integration tests, in one binary to keep link time down.

mod bad_input;
mod cli;
mod cli_bench;
mod cli_explain;
mod cli_modes;
mod cli_spark;
mod cli_triggers;
mod clocks;
mod cluster;
mod crash;
mod dedup;
mod interval_join;
mod live_csv;
mod live_sources;
mod map_with_state;
mod metrics;
mod named_state;
mod oracle;
mod runtime;
mod snapshots;
mod static_join;
mod support;

//! The command line's integration tests: each runs the real `tideflow` binary, in one test
//! binary to keep link time down.

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
mod live_csv;
mod live_sources;
mod metrics;
mod operating;
mod paths;
mod resume;
mod static_join;
mod stop;
mod support;
mod workspace;

//! Tideflow's integration tests, in one binary to keep link time down.

mod bad_input;
mod cli;
mod cli_modes;
mod cli_spark;
mod cli_triggers;
mod clocks;
mod live_csv;
mod live_sources;
mod oracle;
mod runtime;
mod support;

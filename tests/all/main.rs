//! Tideflow's integration tests, in one binary to keep link time down.

mod bad_input;
mod cli;
mod cli_modes;
mod cli_spark;
mod clocks;
mod live_sources;
mod oracle;
mod runtime;
mod support;

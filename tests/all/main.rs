//! Tideflow's integration tests, in one binary to keep link time down.

mod cli_spark;

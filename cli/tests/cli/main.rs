//! The command line's integration tests: each runs the real `tideflow` binary, in one test
//! binary to keep link time down.

mod bad_input;
mod changed_job;
mod cli;
mod cli_bench;
mod cli_explain;
mod cli_modes;
mod cli_spark;
mod cli_triggers;
mod clocks;
mod cluster;
mod cluster_metrics;
mod cluster_restart;
mod cluster_strangers;
mod crash;
mod csv_rules;
mod damaged_output;
mod delta;
mod kafka;
#[path = "../../../tests/all/kafka_broker.rs"]
mod kafka_broker;
mod lake;
mod late_output;
mod live_csv;
mod live_sources;
mod metrics;
mod netns;
mod operating;
mod output_errors;
mod parquet;
mod parquet_input;
mod paths;
mod resume;
mod split;
mod sql;
mod static_join;
mod stop;
mod support;
mod ui;
mod values;
mod workspace;

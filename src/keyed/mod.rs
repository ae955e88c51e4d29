//! Keyed state on [`KeyedStream`](crate::KeyedStream): running aggregates, deduplication within
//! a time bound, and interval joins.

mod dedup;
mod interval_join;
mod running;

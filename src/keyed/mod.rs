//! Keyed state on [`KeyedStream`](crate::KeyedStream): running aggregates, deduplication within
//! a time bound, interval joins, stream-static joins and `map_with_state`, and the names of
//! their state.

mod dedup;
mod interval_join;
mod map_with_state;
mod named;
mod running;
pub(crate) mod static_join;

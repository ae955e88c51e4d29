//! Keyed state without windows: running aggregates, deduplication within a time bound, interval
//! joins, stream-static joins and arbitrary keyed state with timers (`map_with_state`). Each operator exchanges its input by [`key_group`](crate::snapshot::key_group) of the
//! key, keeps per-key state that the watermark expires, and reports the rows it holds through a
//! [`StateRows`](crate::state::StateRows) gauge.

pub mod dedup;
pub mod interval_join;
pub mod map_with_state;
pub mod running;
pub mod static_join;

//! Where a replayable source's reading stands ([`Position`]): reported by sources, stored in
//! snapshots by the checkpoint coordinator, handed back to sources to resume. A leaf: sources
//! (`crate::source`, which re-exports it) and checkpoints both build on it, neither on the
//! other.

use serde::{Deserialize, Serialize};

/// Where a replayable partition's reading stands: enough to resume reading at one record
/// ([`Source::seek`](crate::source::Source::seek)). Its meaning is the source's: a byte offset
/// and line number for files, a record index for generated and in-memory input.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Position {
    /// A byte offset, or a record index.
    pub offset: u64,
    /// A 1-based line number where the source has lines (to name lines in errors), else 0.
    pub line: u64,
}

//! Local pre-aggregation before the exchange (two-phase aggregation: Flink's local-global
//! aggregation, Spark's partial aggregates): each worker folds the records it read into one
//! accumulator per (key, bucket) for each stamp, and only these [`Piece`]s cross to the worker
//! that owns the key, which merges them into its windows with [`Folding`].
//!
//! A bucket is a span of event time `[b * width, (b + 1) * width)` whose records all belong to
//! the same windows: for windows of `size` every `slide` it is `gcd(size, slide)` wide. The
//! records of one bucket folded together also share their stamp (the timely time they travel
//! at), and the window operator decides lateness from the stamp and the windows only
//! (`window/mod.rs`), so a folded piece is on time, or late, exactly when each of its records
//! would have been. The piece travels at the records' stamp with the earliest event time among
//! them, which falls in the same windows.
//!
//! Folding changes the order in which a window's accumulator sees its records (the window
//! operator already merges records from several workers in any order), so it needs an
//! aggregator whose [`merge`](Aggregator::merge) is what adding the other's records would
//! have been, as session windows already do.
//!
//! A stamp's groups are held until the frontier passes the stamp (or until they are many, see
//! [`MAX_GROUPS`]): no record of that stamp can come after, and the window operator cannot
//! close a window, emit an early row or save a snapshot part before its own frontier passes
//! the stamp, which waits for these pieces. So holding them changes no output, and nothing
//! held is ever part of a snapshot: a snapshot at epoch `e` is saved once the frontier is at
//! `e`, when every stamp below it has left, and records stamped at or after `e` are replayed
//! from the sources on recovery.

use std::hash::Hash;
use std::rc::Rc;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::operator::Operator;
use timely::dataflow::operators::Capability;
use timely::dataflow::StreamVec;

use crate::aggregate::Aggregator;
use crate::event::Event;

/// What the window operator folds: one record, or several records of one key and bucket
/// folded already by the worker that read them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Piece<D, Acc> {
    /// One record, as read.
    One(D),
    /// The accumulator of `records` records.
    Folded {
        /// Their accumulator.
        acc: Acc,
        /// How many records it holds (for the late count).
        records: u64,
    },
}

impl<D, Acc> Piece<D, Acc> {
    /// The records this piece stands for.
    #[inline]
    pub fn records(&self) -> u64 {
        match self {
            Piece::One(_) => 1,
            Piece::Folded { records, .. } => *records,
        }
    }
}

/// The aggregator `A` over [`Piece`]s: a record is added, a folded piece merged.
pub struct Folding<A>(pub Rc<A>);

impl<D: 'static, A: Aggregator<D>> Aggregator<Piece<D, A::Acc>> for Folding<A> {
    type Acc = A::Acc;
    type Output = A::Output;

    #[inline]
    fn init(&self) -> A::Acc {
        self.0.init()
    }

    #[inline]
    fn add(&self, acc: &mut A::Acc, input: &Piece<D, A::Acc>) {
        match input {
            Piece::One(record) => self.0.add(acc, record),
            Piece::Folded { acc: folded, .. } => self.0.merge(acc, folded.clone()),
        }
    }

    #[inline]
    fn merge(&self, acc: &mut A::Acc, other: A::Acc) {
        self.0.merge(acc, other)
    }

    #[inline]
    fn finish(&self, acc: &A::Acc) -> A::Output {
        self.0.finish(acc)
    }

    fn invertible(&self) -> bool {
        self.0.invertible()
    }

    fn retract(&self, acc: &mut A::Acc, other: &A::Acc) {
        self.0.retract(acc, other)
    }
}

/// The records of `stream` folded with `aggregator` per stamp, key and bucket of `width` ms
/// (at least 1).
pub fn fold_locally<'scope, K, D, A>(
    stream: StreamVec<'scope, u64, Event<(K, D)>>,
    width: u64,
    aggregator: Rc<A>,
) -> PieceStream<'scope, K, D, A::Acc>
where
    K: Hash + Eq + 'static,
    D: 'static,
    A: Aggregator<D>,
{
    type Out<K, D, Acc> = CapacityContainerBuilder<Vec<Event<(K, Piece<D, Acc>)>>>;
    let width = width.max(1);
    stream.unary_frontier::<Out<K, D, A::Acc>, _, _, _>(Pipeline, "FoldLocally", move |_, _| {
        // Per stamp still open: a capability at it and its groups. Few stamps are open at once
        // (the sources' stamps advance together), so a vector suffices.
        let mut open: Vec<OpenStamp<K, A::Acc>> = Vec::new();
        // Emptied maps, kept for their allocation.
        let mut spare: Vec<Groups<K, A::Acc>> = Vec::new();
        move |(input, frontier), output| {
            input.for_each_time(|time, containers| {
                let at = match open.iter().position(|(held, _)| held.time() == time.time()) {
                    Some(at) => at,
                    None => {
                        let groups = spare.pop().unwrap_or_default();
                        open.push((time.retain(output.output_index()), groups));
                        open.len() - 1
                    }
                };
                let (held, groups) = &mut open[at];
                for events in containers {
                    for event in events.drain(..) {
                        let (key, record) = event.data;
                        let group = groups
                            .entry((key, event.time / width))
                            .or_insert_with(|| (event.time, aggregator.init(), 0));
                        group.0 = group.0.min(event.time);
                        aggregator.add(&mut group.1, &record);
                        group.2 += 1;
                    }
                }
                if groups.len() >= MAX_GROUPS {
                    output.session(&*held).give_iterator(pieces(groups));
                }
            });
            // A stamp the frontier has passed receives no more records: its pieces leave.
            let mut at = 0;
            while at < open.len() {
                if frontier.less_equal(open[at].0.time()) {
                    at += 1;
                    continue;
                }
                let (held, mut groups) = open.swap_remove(at);
                output.session(&held).give_iterator(pieces(&mut groups));
                spare.push(groups);
            }
        }
    })
}

/// A stream of keyed pieces.
pub type PieceStream<'scope, K, D, Acc> = StreamVec<'scope, u64, Event<(K, Piece<D, Acc>)>>;

/// Per (key, bucket): the earliest event time, the accumulator and the record count.
type Groups<K, Acc> = FxHashMap<(K, u64), (u64, Acc, u64)>;

/// A stamp still open: a capability at it, and its groups.
type OpenStamp<K, Acc> = (Capability<u64>, Groups<K, Acc>);

/// The groups a stamp holds before they leave early, bounding the memory of a stamp that
/// many keys share (about 100 bytes a group): Flink's `table.exec.mini-batch.size`.
const MAX_GROUPS: usize = 1 << 16;

/// Empties `groups` into pieces.
fn pieces<'a, K, D, Acc>(
    groups: &'a mut Groups<K, Acc>,
) -> impl Iterator<Item = Event<(K, Piece<D, Acc>)>> + 'a {
    groups.drain().map(|((key, _), (at, acc, records))| Event {
        time: at,
        data: (key, Piece::Folded { acc, records }),
    })
}

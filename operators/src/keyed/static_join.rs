//! Stream-static join (enrichment, Spark's stream-static join): each record of a keyed stream
//! looks its key up in a static table of `(K, V)` rows, arranged once with differential
//! dataflow, and leaves with every row of that key (inner) or with `None` when there is none
//! (left outer).
//!
//! **Table.** [`ArrangedTable::arrange`] arranges a differential collection of rows by key into
//! a trace (`ValSpine`), the rows exchanged by [`key_group`] of their key, as every keyed
//! operator here exchanges its records: the shard of a key is on the worker its stream records
//! go to. One arrangement serves any number of joins ([`ArrangedTable`] is `Clone`). The table
//! is what the collection holds once its input has ended: every update, at any time, is
//! accumulated, and a `(key, value)` row whose diffs sum to `n > 0` is `n` rows (duplicates
//! join once each); rows that sum to zero or less are not there.
//!
//! **Waiting for the table.** A stream batch is joined only once the frontier of the
//! arrangement is empty: the table is then complete on this worker. Until then every batch
//! waits in a stash with a capability at its stamp, so the result never depends on whether a
//! record arrived before or after the table finished loading. Joined rows leave at the stamp
//! of their record, with the record's own event time. A table whose input never ends (a live
//! source) therefore holds the stream back for ever.
//!
//! **Lookup.** The stream side is not arranged (that would keep every record for ever): each
//! batch is sorted by key, and one cursor over the trace seeks each distinct key once, forward.
//! Nothing of a stream record is kept after its lookup.
//!
//! **Compaction and state.** The operator holds a trace handle and advances its logical and
//! physical compaction frontiers to the stream's frontier (its watermark) after every
//! activation, so the handle never holds the trace back; a static table is one batch anyway.
//! When the stream ends, the handle is dropped and the table's memory freed. The
//! [`StateRows`](crate::state::StateRows) gauge counts the table rows held on this worker plus the records waiting for
//! the table; [`StaticJoinHandle::rows`] lists the rows (for snapshots).
//!
//! [`key_group`]: crate::snapshot::key_group

use std::cell::RefCell;
use std::hash::Hash;
use std::rc::Rc;

use differential_dataflow::operators::arrange::arrangement::arrange_core;
use differential_dataflow::operators::arrange::{Arranged, TraceAgent};
use differential_dataflow::trace::implementations::{
    ContainerChunker, ValBatcher, ValBuilder, ValSpine,
};
use differential_dataflow::trace::{Cursor, TraceReader};
use differential_dataflow::VecCollection;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::StreamVec;
use timely::progress::frontier::AntichainRef;

use crate::event::Event;
use crate::keyed::interval_join::{InnerJoin, JoinKind, Joined, LeftJoin};
use crate::snapshot::key_group;
use crate::stateful::{EventStash, Harness, StampStash, StateConfig};

/// The trace of a static table: its rows by key, at `u64` times, with `isize` multiplicities.
pub type TableTrace<K, V> = TraceAgent<ValSpine<K, V, u64, isize>>;

/// A table of `(K, V)` rows arranged by key, each row on the worker that owns
/// [`key_group`](crate::snapshot::key_group) of its key; the table side of [`StaticJoin`].
pub struct ArrangedTable<'scope, K: Ord + Clone + 'static, V: Ord + Clone + 'static> {
    arranged: Arranged<'scope, TableTrace<K, V>>,
}

impl<K, V> Clone for ArrangedTable<'_, K, V>
where
    K: Ord + Clone + 'static,
    V: Ord + Clone + 'static,
{
    fn clone(&self) -> Self {
        ArrangedTable {
            arranged: self.arranged.clone(),
        }
    }
}

impl<'scope, K, V> ArrangedTable<'scope, K, V>
where
    K: differential_dataflow::ExchangeData + Hash,
    V: differential_dataflow::ExchangeData,
{
    /// Arranges `rows` by key, exchanging each row by `key_hash` of its key (differential's
    /// `arrange_by_key` with Tideflow's routing). Rows must be at times no earlier than the
    /// timely time of their batch (differential's rule); a table loaded once puts them all at
    /// time 0.
    pub fn arrange(rows: VecCollection<'scope, u64, (K, V), isize>) -> Self {
        let route = |update: &((K, V), u64, isize)| key_group(&(update.0).0);
        let arranged = arrange_core::<
            _,
            _,
            ContainerChunker<Vec<((K, V), u64, isize)>>,
            ValBatcher<K, V, u64, isize>,
            ValBuilder<K, V, u64, isize>,
            ValSpine<K, V, u64, isize>,
        >(rows.inner, Exchange::new(route), "StaticTable");
        ArrangedTable { arranged }
    }

    /// The differential arrangement, to share with other differential operators. A trace
    /// handle cloned from it holds back compaction until it is advanced or dropped.
    pub fn arrangement(&self) -> &Arranged<'scope, TableTrace<K, V>> {
        &self.arranged
    }
}

/// The joined stream and a handle on this worker's table.
pub struct StaticJoinStreams<'scope, K: Ord + Clone + 'static, V: Ord + Clone + 'static, R> {
    /// The joined rows, each at its stream record's stamp with the record's event time.
    pub joined: StreamVec<'scope, u64, Event<R>>,
    /// This worker's shard of the table, to read between steps.
    pub table: StaticJoinHandle<K, V>,
}

/// Joins a keyed stream with an [`ArrangedTable`]: see the [module documentation](self).
pub trait StaticJoin<'scope, K, D>
where
    K: Ord + Clone + 'static,
{
    /// The inner join: for each record `(key, d)` and each table row `(key, v)`, a row
    /// `Joined { key, left: d, right: v }`; records whose key is not in the table are dropped.
    ///
    /// # Examples
    /// ```
    /// use differential_dataflow::AsCollection;
    /// use timely::dataflow::operators::{Capture, capture::Extract, ToStream};
    /// use timely::dataflow::operators::vec::{Delay, Map};
    /// use tideflow_operators::keyed::static_join::{ArrangedTable, StaticJoin};
    /// use tideflow_operators::Event;
    ///
    /// let captured = timely::example(|scope| {
    ///     // (customer, segment) rows, all at time 0.
    ///     let customers = vec![(1u32, "gold"), (2, "silver"), (2, "staff")]
    ///         .to_stream(scope).container::<Vec<_>>()
    ///         .map(|(id, segment): (u32, &str)| ((id, segment.to_string()), 0u64, 1isize))
    ///         .as_collection();
    ///     let table = ArrangedTable::arrange(customers);
    ///     // (time, customer, cents) orders, each stamped at its event time.
    ///     vec![(1_000u64, 1u32, 250u64), (2_000, 2, 900), (3_000, 3, 100)]
    ///         .to_stream(scope).container::<Vec<_>>()
    ///         .map(|(t, customer, cents)| Event::new(t, (customer, cents)))
    ///         .delay(|event, _| event.time)
    ///         .join_static(table)
    ///         .joined
    ///         .capture()
    /// });
    /// let mut rows: Vec<(u64, u32, u64, String)> = captured.extract().into_iter()
    ///     .flat_map(|(_, rows)| rows)
    ///     .map(|e| (e.time, e.data.key, e.data.left, e.data.right))
    ///     .collect();
    /// rows.sort();
    /// // Customer 2 has two rows; customer 3 none.
    /// assert_eq!(rows, vec![
    ///     (1_000, 1, 250, "gold".to_string()),
    ///     (2_000, 2, 900, "silver".to_string()),
    ///     (2_000, 2, 900, "staff".to_string()),
    /// ]);
    /// ```
    fn join_static<V>(
        self,
        table: ArrangedTable<'scope, K, V>,
    ) -> StaticJoinStreams<'scope, K, V, Joined<K, D, V>>
    where
        V: differential_dataflow::ExchangeData;

    /// The left outer join: the inner join's rows with `Some(v)`, and each record whose key
    /// is not in the table once, with `None`.
    ///
    /// # Examples
    /// ```
    /// use differential_dataflow::AsCollection;
    /// use timely::dataflow::operators::{Capture, capture::Extract, ToStream};
    /// use timely::dataflow::operators::vec::Map;
    /// use tideflow_operators::keyed::static_join::{ArrangedTable, StaticJoin};
    /// use tideflow_operators::Event;
    ///
    /// let captured = timely::example(|scope| {
    ///     let rates = vec![("EUR", 108u32)].to_stream(scope).container::<Vec<_>>()
    ///         .map(|(currency, rate): (&str, u32)| ((currency.to_string(), rate), 0u64, 1isize))
    ///         .as_collection();
    ///     vec![(5u64, "EUR", 10u32), (7, "XYZ", 3)].to_stream(scope).container::<Vec<_>>()
    ///         .map(|(t, currency, amount)| Event::new(t, (currency.to_string(), amount)))
    ///         .join_static_left(ArrangedTable::arrange(rates))
    ///         .joined
    ///         .capture()
    /// });
    /// let mut rows: Vec<(String, u32, Option<u32>)> = captured.extract().into_iter()
    ///     .flat_map(|(_, rows)| rows)
    ///     .map(|e| (e.data.key, e.data.left, e.data.right))
    ///     .collect();
    /// rows.sort();
    /// assert_eq!(rows, vec![("EUR".into(), 10, Some(108)), ("XYZ".into(), 3, None)]);
    /// ```
    fn join_static_left<V>(
        self,
        table: ArrangedTable<'scope, K, V>,
    ) -> StaticJoinStreams<'scope, K, V, Joined<K, D, Option<V>>>
    where
        V: differential_dataflow::ExchangeData;

    /// The join of kind `kind` ([`InnerJoin`] or [`LeftJoin`]); the gauge of `config` is set to
    /// the table rows held on this worker plus the records waiting for the table, after each
    /// activation. The join holds no state of its own in snapshots (the table is read again on
    /// resume, and a record waiting for it holds back every later operator): with a snapshot
    /// port, its parts are empty.
    fn join_static_core<V, J>(
        self,
        table: ArrangedTable<'scope, K, V>,
        kind: J,
        config: StateConfig,
    ) -> StaticJoinStreams<'scope, K, V, J::Row>
    where
        V: differential_dataflow::ExchangeData,
        J: JoinKind<K, D, V>;
}

impl<'scope, K, D> StaticJoin<'scope, K, D> for StreamVec<'scope, u64, Event<(K, D)>>
where
    K: differential_dataflow::ExchangeData + Hash,
    D: timely::ExchangeData + Clone,
{
    fn join_static<V>(
        self,
        table: ArrangedTable<'scope, K, V>,
    ) -> StaticJoinStreams<'scope, K, V, Joined<K, D, V>>
    where
        V: differential_dataflow::ExchangeData,
    {
        self.join_static_core(table, InnerJoin, StateConfig::none())
    }

    fn join_static_left<V>(
        self,
        table: ArrangedTable<'scope, K, V>,
    ) -> StaticJoinStreams<'scope, K, V, Joined<K, D, Option<V>>>
    where
        V: differential_dataflow::ExchangeData,
    {
        self.join_static_core(table, LeftJoin, StateConfig::none())
    }

    fn join_static_core<V, J>(
        self,
        table: ArrangedTable<'scope, K, V>,
        _kind: J,
        config: StateConfig,
    ) -> StaticJoinStreams<'scope, K, V, J::Row>
    where
        V: differential_dataflow::ExchangeData,
        J: JoinKind<K, D, V>,
    {
        let Arranged { stream, trace } = table.arranged;
        let shard = Rc::new(RefCell::new(TableShard {
            trace: Some(trace),
            loaded: false,
            rows: 0,
        }));
        let handle = StaticJoinHandle {
            shard: Rc::clone(&shard),
        };
        let route: fn(&Event<(K, D)>) -> u64 = |event| key_group(&event.data.0);
        // Batches waiting for the table, by stamp.
        let mut stash: EventStash<(K, D)> = StampStash::default();
        let mut harness = Harness::new(config);
        let mut stashed: u64 = 0;
        // The rows of the key looked up last (reused).
        let mut matches: Vec<(V, usize)> = Vec::new();
        let joined = self
            .binary_frontier::<_, CapacityContainerBuilder<Vec<Event<J::Row>>>, _, _, _, _>(
                stream,
                Exchange::new(route),
                Pipeline,
                "StaticJoin",
                move |initial, _info| {
                    // Every output capability is minted from input capabilities.
                    drop(initial);
                    move |(records, records_frontier), (batches, table_frontier), output| {
                        let port = output.output_index();
                        // The batches themselves are in the trace; only their frontier matters.
                        batches.for_each(|_, batches| batches.clear());
                        let mut shard = shard.borrow_mut();
                        if !shard.loaded && table_frontier.is_empty() {
                            shard.loaded = true;
                            shard.rows = shard.count_rows();
                        }
                        let loaded = shard.loaded;
                        records.for_each_time(|capability, containers| {
                            if loaded {
                                let mut session = output.session(&capability);
                                for container in containers {
                                    shard.lookup::<D, J>(container, &mut matches, |row| {
                                        session.give(row)
                                    });
                                }
                            } else {
                                let waiting = stash.at(&capability, port);
                                for container in containers {
                                    stashed += container.len() as u64;
                                    waiting.push(std::mem::take(container));
                                }
                            }
                        });
                        if loaded {
                            while let Some((_, capability, mut containers)) = stash.pop_first() {
                                let mut session = output.session(&capability);
                                for container in containers.iter_mut() {
                                    stashed -= container.len() as u64;
                                    shard.lookup::<D, J>(container, &mut matches, |row| {
                                        session.give(row)
                                    });
                                }
                            }
                        }
                        // The handle never holds the trace back past the stream's watermark,
                        // and lets it go once no record can come.
                        match records_frontier.frontier().first() {
                            Some(watermark) => {
                                if let Some(trace) = shard.trace.as_mut() {
                                    let frontier = [*watermark];
                                    trace.set_logical_compaction(AntichainRef::new(&frontier));
                                    trace.set_physical_compaction(AntichainRef::new(&frontier));
                                }
                            }
                            None if stash.is_empty() => {
                                shard.trace = None;
                                shard.rows = 0;
                            }
                            None => {}
                        }
                        let frontier = records_frontier.frontier().first().copied();
                        for step in harness.steps(frontier) {
                            if let Some(epoch) = step.save {
                                harness.save(epoch, std::iter::empty::<(u64, ())>());
                            }
                        }
                        harness.settle(shard.rows + stashed, records_frontier.is_empty());
                    }
                },
            );
        StaticJoinStreams {
            joined,
            table: handle,
        }
    }
}

/// One worker's shard of a static table, shared by the join operator and its handle.
struct TableShard<K: Ord + Clone + 'static, V: Ord + Clone + 'static> {
    /// The trace, until the stream ends.
    trace: Option<TableTrace<K, V>>,
    /// Whether the table's frontier has passed: every row is in the trace.
    loaded: bool,
    /// The rows held, counted once the table is loaded.
    rows: u64,
}

impl<K, V> TableShard<K, V>
where
    K: Ord + Clone + 'static,
    V: Ord + Clone + 'static,
{
    /// Every row in the trace with its multiplicity (the sum of its diffs, if positive).
    fn for_each_row(&mut self, mut each: impl FnMut(&K, &V, usize)) {
        let Some(trace) = self.trace.as_mut() else {
            return;
        };
        let (mut cursor, storage) = trace.cursor();
        while let Some(key) = cursor.get_key(&storage) {
            while let Some(value) = cursor.get_val(&storage) {
                let mut count = 0isize;
                cursor.map_times(&storage, |_, diff| count += *diff);
                if count > 0 {
                    each(key, value, count.unsigned_abs());
                }
                cursor.step_val(&storage);
            }
            cursor.step_key(&storage);
        }
    }

    fn count_rows(&mut self) -> u64 {
        let mut rows = 0u64;
        self.for_each_row(|_, _, count| rows += count as u64);
        rows
    }

    /// Joins each record of `container` (drained, reordered by key) with its rows, handing
    /// each output row to `emit`. `matches` is scratch space.
    fn lookup<D: Clone, J: JoinKind<K, D, V>>(
        &mut self,
        container: &mut Vec<Event<(K, D)>>,
        matches: &mut Vec<(V, usize)>,
        mut emit: impl FnMut(Event<J::Row>),
    ) {
        let trace = self
            .trace
            .as_mut()
            .expect("the table is held while records can arrive");
        let (mut cursor, storage) = trace.cursor();
        container.sort_unstable_by(|a, b| a.data.0.cmp(&b.data.0));
        let mut looked_up: Option<K> = None;
        for Event { time, data } in container.drain(..) {
            let (key, record) = data;
            if looked_up.as_ref() != Some(&key) {
                matches.clear();
                cursor.seek_key(&storage, &key);
                if cursor.get_key(&storage) == Some(&key) {
                    while let Some(value) = cursor.get_val(&storage) {
                        let mut count = 0isize;
                        cursor.map_times(&storage, |_, diff| count += *diff);
                        if count > 0 {
                            matches.push((value.clone(), count.unsigned_abs()));
                        }
                        cursor.step_val(&storage);
                    }
                }
                looked_up = Some(key.clone());
            }
            let total: usize = matches.iter().map(|(_, count)| count).sum();
            if total == 0 {
                if let Some(row) = J::unmatched(key, record) {
                    emit(Event::new(time, row));
                }
                continue;
            }
            let mut rows = matches
                .iter()
                .flat_map(|(value, count)| std::iter::repeat_n(value, *count));
            for _ in 1..total {
                let value = rows.next().expect("total counts the rows").clone();
                emit(Event::new(
                    time,
                    J::matched(key.clone(), record.clone(), value),
                ));
            }
            let value = rows.next().expect("total counts the rows").clone();
            emit(Event::new(time, J::matched(key, record, value)));
        }
    }
}

/// A handle on one worker's shard of a static join's table, for reading it between steps of
/// the worker (for example to snapshot it).
pub struct StaticJoinHandle<K: Ord + Clone + 'static, V: Ord + Clone + 'static> {
    shard: Rc<RefCell<TableShard<K, V>>>,
}

impl<K, V> Clone for StaticJoinHandle<K, V>
where
    K: Ord + Clone + 'static,
    V: Ord + Clone + 'static,
{
    fn clone(&self) -> Self {
        StaticJoinHandle {
            shard: Rc::clone(&self.shard),
        }
    }
}

impl<K, V> StaticJoinHandle<K, V>
where
    K: Ord + Clone + 'static,
    V: Ord + Clone + 'static,
{
    /// Whether the whole table is in this worker's shard (its input has ended); records are
    /// joined only from then on.
    pub fn is_loaded(&self) -> bool {
        self.shard.borrow().loaded
    }

    /// The table rows this worker holds, each with its multiplicity, in key then value order:
    /// the rows loaded so far before [`is_loaded`](Self::is_loaded), none once the stream has
    /// ended and the table was let go. Call it between steps of the worker.
    pub fn rows(&self) -> Vec<(K, V, usize)> {
        let mut rows = Vec::new();
        self.shard
            .borrow_mut()
            .for_each_row(|key, value, count| rows.push((key.clone(), value.clone(), count)));
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use differential_dataflow::AsCollection;
    use timely::dataflow::operators::Probe;

    use crate::state::StateRows;
    use timely::dataflow::{InputHandle, ProbeHandle};

    type Row = Joined<u32, u32, Option<u32>>;

    /// Records sent before the table is complete wait for it; the handle lists the rows and
    /// compaction follows the stream's frontier.
    #[test]
    fn records_wait_for_the_table_and_the_handle_lists_its_rows() {
        timely::execute_directly(|worker| {
            let mut records =
                InputHandle::<u64, CapacityContainerBuilder<Vec<Event<(u32, u32)>>>>::new();
            let mut table =
                InputHandle::<u64, CapacityContainerBuilder<Vec<((u32, u32), u64, isize)>>>::new();
            let probe = ProbeHandle::new();
            let out = Rc::new(RefCell::new(Vec::new()));
            let seen = Rc::clone(&out);
            let gauge = StateRows::default();
            let reader = gauge.clone();
            let handle = worker.dataflow(|scope| {
                let rows = table.to_stream(scope).as_collection();
                let streams = records.to_stream(scope).join_static_core(
                    ArrangedTable::arrange(rows),
                    LeftJoin,
                    StateConfig::gauged(gauge),
                );
                streams
                    .joined
                    .probe_with(&probe)
                    .sink(Pipeline, "Collect", move |(input, _)| {
                        input.for_each(|time, rows| {
                            for row in rows.drain(..) {
                                seen.borrow_mut().push((*time.time(), row));
                            }
                        })
                    });
                streams.table
            });
            let steps = |worker: &mut timely::worker::Worker| {
                for _ in 0..20 {
                    worker.step();
                }
            };
            records.send(Event::new(10, (1, 100)));
            records.send(Event::new(12, (2, 200)));
            table.send(((1, 7), 0, 1));
            table.send(((1, 7), 0, 1));
            table.send(((1, 8), 0, 1));
            records.advance_to(20);
            steps(worker);
            // The table's input is open: nothing joins yet, both records wait.
            assert!(!handle.is_loaded());
            assert!(out.borrow().is_empty());
            assert_eq!(reader.get().rows, 2);
            drop(table);
            steps(worker);
            assert!(handle.is_loaded());
            assert_eq!(handle.rows(), vec![(1, 7, 2), (1, 8, 1)]);
            assert_eq!(reader.get().rows, 3);
            let mut rows: Vec<(u64, Row)> = out
                .borrow_mut()
                .drain(..)
                .map(|(stamp, e)| {
                    assert_eq!(stamp, 0, "rows leave at their record's stamp");
                    (e.time, e.data)
                })
                .collect();
            rows.sort();
            let row = |key, left, right| Joined { key, left, right };
            assert_eq!(
                rows,
                vec![
                    (10, row(1, 100, Some(7))),
                    (10, row(1, 100, Some(7))),
                    (10, row(1, 100, Some(8))),
                    (12, row(2, 200, None)),
                ]
            );
            // The handle follows the stream's watermark.
            records.advance_to(50);
            steps(worker);
            if let Some(trace) = handle.shard.borrow_mut().trace.as_mut() {
                assert_eq!(trace.get_logical_compaction().to_vec(), vec![50]);
                assert_eq!(trace.get_physical_compaction().to_vec(), vec![50]);
            }
            // Once the stream ends, the table is let go.
            drop(records);
            worker.step_while(|| !probe.done());
            steps(worker);
            assert!(handle.rows().is_empty());
            assert_eq!((reader.get().rows, reader.get().peak), (0, 3));
        });
    }
}

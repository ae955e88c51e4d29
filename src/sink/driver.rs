//! The sink driver: the timely operator behind [`Stream::sink`](crate::Stream::sink). It routes
//! records to the workers that drive the sink, counts them and their latency for progress
//! reports, calls the sink's lifecycle hooks (`on_start`, `write`, `on_watermark`, `on_tick`,
//! `on_close`), and, for a sink with a [`Committer`](super::Committer) in a job with
//! snapshots, stages its input per epoch and pre-commits it at each snapshot ([`Staging`];
//! the protocol is in `commit.rs` and docs/ARCHITECTURE.md "Snapshots").

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use tideflow_operators::Event;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::{ProbeHandle, StreamVec};
use timely::progress::frontier::AntichainRef;
use timely::scheduling::Activator;
use timely::ExchangeData;

use super::{Parallelism, Sink, SinkContext};
use crate::checkpoint::{Checkpointer, SinkHook};
use crate::context::{LatencyRecorder, SharedJob};
use crate::error::Error;

/// What a sink instance is driven with: where it runs and the job it reports into (passed
/// explicitly by the API, as the source driver's are).
pub(crate) struct SinkDriver {
    /// Where the instance runs.
    pub(crate) context: SinkContext,
    /// The job context the instance counts into and stops with.
    pub(crate) shared: Arc<SharedJob>,
    /// The snapshot coordinator, when the job takes snapshots.
    pub(crate) checkpointer: Option<Arc<Checkpointer>>,
    /// The sink's terminal flag: set once its input has ended (or the sink failed), or, under
    /// a graceful stop, once the sink has written and closed all it will receive.
    pub(crate) done: Rc<Cell<bool>>,
    /// The frontier of the sources' output: under a graceful stop, a sink whose input frontier
    /// has caught up with it, after the sources stopped, has received everything.
    pub(crate) sources: ProbeHandle<u64>,
    /// Whether a graceful stop ends at a snapshot (snapshots are taken, and the trigger is
    /// not [`Trigger::Once`](tideflow_operators::Trigger::Once), which takes none before the
    /// end).
    pub(crate) stop_at_snapshot: bool,
    /// Where the sink's activator goes, for the worker to wake it while a graceful stop
    /// takes effect.
    pub(crate) wakers: Rc<RefCell<Vec<Activator>>>,
}

/// When a sink closes under a graceful stop ([`StopHandle`](crate::StopHandle)).
struct GracefulClose {
    shared: Arc<SharedJob>,
    sources: ProbeHandle<u64>,
    /// The snapshot coordinator, when the stop ends at a snapshot.
    checkpointer: Option<Arc<Checkpointer>>,
}

impl GracefulClose {
    /// Whether a stop was asked for.
    fn requested(&self) -> bool {
        self.shared.graceful.requested()
    }

    /// Whether a sink without staging, its input at `frontier`, has received all it will:
    /// the sources have stopped reading and the input frontier has caught up with theirs, so
    /// every row the windows the watermark closed gave has arrived.
    fn caught_up(&self, frontier: AntichainRef<'_, u64>) -> bool {
        if !self.shared.graceful.sources_stopped() {
            return false;
        }
        let sources = self.sources.with_frontier(|f| f.first().copied());
        match (sources, frontier.first().copied()) {
            (_, None) => true,
            (None, Some(_)) => false,
            (Some(sources), Some(input)) => input >= sources,
        }
    }

    /// Whether a staging sink is done: the snapshot the job stops at is committed (what it
    /// staged past that snapshot is not committed, and a resumed job writes it again); when
    /// the stop ends at no snapshot, once the sources have stopped (nothing is committed).
    fn committed(&self) -> bool {
        match &self.checkpointer {
            Some(checkpointer) => checkpointer.stop_snapshot_committed(),
            None => self.shared.graceful.sources_stopped(),
        }
    }
}

/// Builds the operator that writes `stream` to `sink` on this worker.
pub(crate) fn drive<D: ExchangeData, S: Sink<D>>(
    stream: StreamVec<'_, u64, Event<D>>,
    driver: SinkDriver,
    mut sink: S,
) {
    let SinkDriver {
        context,
        shared,
        checkpointer,
        done,
        sources,
        stop_at_snapshot,
        wakers,
    } = driver;
    let stop = GracefulClose {
        shared: Arc::clone(&shared),
        sources,
        checkpointer: checkpointer.clone().filter(|_| stop_at_snapshot),
    };
    let route = match sink.parallelism() {
        Parallelism::PerWorker => context.worker_index as u64,
        Parallelism::Single => 0,
    };
    let active = sink.parallelism() == Parallelism::PerWorker || context.worker_index == 0;
    // Progress reports (src/metrics): the latency of each row this sink receives.
    let latency = active.then(|| shared.metrics.latency_recorder()).flatten();
    let output = Output { shared, latency };
    let mut started = false;
    let mut watermark = Some(0);
    let scope = stream.scope();
    let mut builder = OperatorBuilder::new("Sink".to_owned(), scope);
    let activator = scope.activator_for(builder.operator_info().address);
    wakers.borrow_mut().push(activator.clone());
    let mut input = builder.new_input(stream, Exchange::new(move |_: &Event<D>| route));
    // With snapshots, a sink with a committer commits its output exactly once.
    let staging = match &checkpointer {
        Some(checkpointer) if active && sink.parallelism() == Parallelism::Single => sink
            .committer()
            .map(|committer| SinkHook::register(checkpointer, committer)),
        // Each epoch is committed once, by one committer: a per-worker sink cannot commit.
        Some(_) if sink.parallelism() == Parallelism::PerWorker => sink.committer().map(|_| {
            Err(Error::Config(
                "a sink with a Committer must be Parallelism::Single (its rows are committed once, on worker 0): this one is PerWorker".into(),
            ))
        }),
        _ => None,
    };
    let staging = match staging.transpose() {
        Ok(hook) => hook.map(|hook| {
            sink.begin_staging(&hook.recovered());
            Staging::new(hook)
        }),
        Err(error) => {
            // Recovery failed: the job stops; the sink is never started.
            output.shared.fail(error);
            done.set(true);
            None
        }
    };
    if let Some(mut staging) = staging {
        builder.build(move |_capabilities| {
            move |frontiers| {
                let frontier = frontiers[0].frontier().first().copied();
                let mut step = || -> Result<(), Error> {
                    if !started {
                        started = true;
                        sink.on_start(&context)?;
                    }
                    input.for_each(|capability, data| staging.stash(*capability.time(), data));
                    staging.step(&mut sink, frontier, &output)
                };
                let mut ended = step().map(|()| frontier.is_none());
                if matches!(ended, Ok(false)) && stop.requested() && stop.committed() {
                    ended = Ok(true);
                }
                output.settle(ended, &done);
            }
        });
        return;
    }
    builder.build(move |_capabilities| {
        move |frontiers| {
            let frontier = &frontiers[0];
            if done.get() || !active {
                input.for_each(|_, data| data.clear());
                let stopped = stop.requested() && stop.caught_up(frontier.frontier());
                done.set(done.get() || frontier.is_empty() || stopped);
                return;
            }
            let mut step = || -> Result<(), Error> {
                if !started {
                    started = true;
                    sink.on_start(&context)?;
                }
                let mut result = Ok(());
                input.for_each(|_, data| {
                    output.count(data);
                    if result.is_ok() {
                        result = sink.write(data);
                    }
                    data.clear();
                });
                result?;
                let now = frontier.frontier().first().copied();
                if now != watermark {
                    watermark = now;
                    match now {
                        Some(time) => sink.on_watermark(time)?,
                        None => sink.on_close()?,
                    }
                }
                if watermark.is_some() {
                    if let Some(wait) = sink.on_tick(Instant::now())? {
                        activator.activate_after(wait);
                    }
                }
                Ok(())
            };
            let mut ended = step().map(|()| watermark.is_none());
            if matches!(ended, Ok(false)) && stop.requested() && stop.caught_up(frontier.frontier())
            {
                // Stopping, and all it will receive is in: everything it holds is written (an
                // ordered sink's rows the frontier has not passed too) and it is closed.
                ended = sink.on_close().map(|()| true);
            }
            output.settle(ended, &done);
        }
    });
}

/// Counts the batches a sink receives: the job's `records_out` and their latency.
struct Output {
    shared: Arc<SharedJob>,
    /// Progress reports (src/metrics): the latency of each row written.
    latency: Option<LatencyRecorder>,
}

impl Output {
    /// After an activation: `ended` says whether the input has ended; an error stops the
    /// job. Sets the sink's terminal flag.
    fn settle(&self, ended: Result<bool, Error>, done: &Cell<bool>) {
        match ended {
            Ok(ended) => done.set(ended),
            Err(error) => {
                self.shared.fail(error);
                done.set(true);
            }
        }
    }

    fn count<D>(&self, batch: &[Event<D>]) {
        self.shared
            .records_out
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        if let Some(latency) = &self.latency {
            latency.record(batch);
        }
    }
}

/// A committing sink's side of snapshots: its input in stamp order, cut at each epoch
/// (docs/ARCHITECTURE.md "Snapshots").
struct Staging<D> {
    hook: SinkHook,
    /// Rows stamped below this were committed before the job resumed: dropped.
    committed: u64,
    /// Received containers by stamp, until the frontier passes them.
    stash: BTreeMap<u64, Vec<Vec<Event<D>>>>,
    /// The last watermark given to the sink.
    watermark: u64,
    /// The epoch whose part was saved last.
    saved: Option<u64>,
    finished: bool,
}

impl<D> Staging<D> {
    fn new(hook: SinkHook) -> Self {
        Staging {
            committed: hook.recovered().epoch,
            hook,
            stash: BTreeMap::new(),
            watermark: 0,
            saved: None,
            finished: false,
        }
    }

    fn stash(&mut self, stamp: u64, data: &mut Vec<Event<D>>) {
        if stamp < self.committed {
            data.clear();
            return;
        }
        self.stash
            .entry(stamp)
            .or_default()
            .push(std::mem::take(data));
    }

    /// Writes the stashed rows stamped below `limit` (all of them for `None`) in stamp order.
    fn release<S: Sink<D>>(
        &mut self,
        sink: &mut S,
        limit: Option<u64>,
        output: &Output,
    ) -> Result<(), Error> {
        while let Some(entry) = self.stash.first_entry() {
            if limit.is_some_and(|limit| *entry.key() >= limit) {
                break;
            }
            for mut batch in entry.remove() {
                output.count(&batch);
                sink.write(&mut batch)?;
            }
        }
        Ok(())
    }

    fn advance<S: Sink<D>>(&mut self, sink: &mut S, to: u64) -> Result<(), Error> {
        if to > self.watermark {
            self.watermark = to;
            sink.on_watermark(to)?;
        }
        Ok(())
    }

    /// Releases what the frontier passed; at a pending epoch the frontier reached, pre-commits
    /// the output stamped below it and hands it to the checkpointer first; at the end,
    /// pre-commits and hands in the rest.
    fn step<S: Sink<D>>(
        &mut self,
        sink: &mut S,
        frontier: Option<u64>,
        output: &Output,
    ) -> Result<(), Error> {
        if self.finished {
            return Ok(());
        }
        if let Some(epoch) = self.hook.pending().filter(|&e| self.saved != Some(e)) {
            if frontier.is_none_or(|time| time >= epoch) {
                self.release(sink, Some(epoch), output)?;
                self.advance(sink, epoch)?;
                let prepared = sink.pre_commit(epoch)?;
                self.hook.save(epoch, prepared)?;
                self.saved = Some(epoch);
            }
        }
        self.release(sink, frontier, output)?;
        match frontier {
            Some(time) => self.advance(sink, time),
            None => {
                sink.on_close()?;
                self.finished = true;
                let prepared = sink.pre_commit(u64::MAX)?;
                self.hook.finish(prepared)
            }
        }
    }
}

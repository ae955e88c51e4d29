//! One worker's view of a running job ([`WorkerJob`]): its index among the workers, the job
//! context it reports into, its checkpointer, the terminal operators it waits for and the
//! stateful operators it built.
//!
//! The runtime (`runtime.rs`) makes one per worker thread; the API (`flow.rs`, `stream/`,
//! `source/`) carries it to every operator it builds. It sits below both, so that the API
//! need not import the runtime, which imports the API's `Flow` (docs/ARCHITECTURE.md
//! "Layers").

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;

use tideflow_operators::state::StateRows;
use tideflow_operators::stateful::StateConfig;
use tideflow_operators::Trigger;

use timely::dataflow::ProbeHandle;
use timely::scheduling::Activator;

use crate::checkpoint::{Checkpointer, WorkerRegistry};
use crate::context::SharedJob;
use crate::error::Error;

/// One worker's view of the job: its identity, the shared state, and the terminal operators it
/// waits for.
pub(crate) struct WorkerJob {
    pub(crate) index: usize,
    pub(crate) peers: usize,
    pub(crate) trigger: Trigger,
    pub(crate) shared: Arc<SharedJob>,
    pub(crate) checkpointer: Option<Arc<Checkpointer>>,
    terminals: RefCell<Vec<Rc<Cell<bool>>>>,
    /// The frontier of every source's output, for a graceful stop.
    pub(crate) source_probe: ProbeHandle<u64>,
    /// The sinks' terminal flags (also in `terminals`): under a graceful stop, a sink sets its
    /// flag once it has written and closed everything it will receive.
    sinks: RefCell<Vec<Rc<Cell<bool>>>>,
    /// The sinks' activators: while a graceful stop takes effect, each step wakes the sinks
    /// not yet closed, so they look whether they may close.
    pub(crate) sink_wakers: Rc<RefCell<Vec<Activator>>>,
    /// The stateful operators built on this worker: id, kind, gauge.
    state: RefCell<Vec<(String, &'static str, StateRows)>>,
    /// How many sources with an idle timeout this worker has built.
    idle_sources: Cell<usize>,
}

impl WorkerJob {
    /// Worker `index` of `peers`, with no terminal or stateful operator yet.
    pub(crate) fn new(
        index: usize,
        peers: usize,
        trigger: Trigger,
        shared: Arc<SharedJob>,
        checkpointer: Option<Arc<Checkpointer>>,
    ) -> Self {
        WorkerJob {
            index,
            peers,
            trigger,
            shared,
            checkpointer,
            terminals: RefCell::new(Vec::new()),
            source_probe: ProbeHandle::new(),
            sinks: RefCell::new(Vec::new()),
            sink_wakers: Rc::default(),
            state: RefCell::new(Vec::new()),
            idle_sources: Cell::new(0),
        }
    }

    /// The ordinal of the next source with an idle timeout built on this worker: the same
    /// source has the same ordinal on every worker, which build the same dataflow.
    pub(crate) fn next_idle_source(&self) -> usize {
        let ordinal = self.idle_sources.get();
        self.idle_sources.set(ordinal + 1);
        ordinal
    }

    /// Registers a terminal operator; it sets the returned flag once its input has ended.
    pub(crate) fn terminal(&self) -> Rc<Cell<bool>> {
        let done = Rc::new(Cell::new(false));
        self.terminals.borrow_mut().push(Rc::clone(&done));
        done
    }

    /// Registers a sink's terminal flag: set once its input has ended, or, under a graceful
    /// stop, once it has closed ([`SinkDriver`](crate::sink::SinkDriver)).
    pub(crate) fn sink_terminal(&self) -> Rc<Cell<bool>> {
        let done = self.terminal();
        self.sinks.borrow_mut().push(Rc::clone(&done));
        done
    }

    /// What a stateful operator of kind `kind` built now is given: a gauge, reported in
    /// [`JobReport::state`](crate::JobReport::state) under the operator's id, and with
    /// `snapshots` and a checkpoint, a snapshot port whose parts are named by the id. The id is
    /// `name`, or by default `kind`, then `kind#2`, `kind#3`... for later operators of the kind
    /// (every worker builds the same operators in the same order). An empty id, or one another
    /// operator of the job has, stops the job before any data flows.
    pub(crate) fn state_config(
        &self,
        kind: &'static str,
        name: Option<String>,
        snapshots: bool,
    ) -> StateConfig {
        let mut operators = self.state.borrow_mut();
        let id = name.unwrap_or_else(|| {
            match operators
                .iter()
                .filter(|(_, other, _)| *other == kind)
                .count()
            {
                0 => kind.to_string(),
                n => format!("{kind}#{}", n + 1),
            }
        });
        if id.is_empty() {
            self.shared
                .fail(Error::Config("a stateful operator's name is empty".into()));
        } else if operators.iter().any(|(other, _, _)| *other == id) {
            self.shared.fail(Error::Config(format!(
                "two stateful operators are named \"{id}\"; give each its own name"
            )));
        }
        let gauge = StateRows::default();
        self.shared.metrics.register_state(&id, &gauge);
        let port = match &self.checkpointer {
            Some(checkpointer) if snapshots => {
                let registry = WorkerRegistry {
                    checkpointer,
                    shared: &self.shared,
                    worker: self.index,
                };
                Some(registry.port(&id, kind))
            }
            _ => None,
        };
        operators.push((id, kind, gauge.clone()));
        StateConfig {
            port,
            gauge: Some(gauge),
        }
    }

    /// Adds this worker's state gauges to the job's totals.
    pub(crate) fn report_state(&self) {
        for (name, _, gauge) in self.state.borrow().iter() {
            self.shared.add_state(name, gauge.get());
        }
    }

    /// Whether every terminal operator of this worker has seen the end of its input.
    pub(crate) fn finished(&self) -> bool {
        self.terminals.borrow().iter().all(|done| done.get())
    }

    /// Under a graceful stop ([`StopHandle`](crate::StopHandle)), whether it has taken effect
    /// and this worker may end: every sink of this worker has written and closed what it will
    /// receive (the sink driver closes a sink once the sources have stopped and its input
    /// frontier has caught up with theirs, so every window the watermark closed is written),
    /// and, with snapshots, the snapshot the job stops at is committed (except under
    /// [`Trigger::Once`], which takes none before the end).
    pub(crate) fn stop_took_effect(&self) -> bool {
        let sinks_closed = self.sinks.borrow().iter().all(|done| done.get());
        if !sinks_closed {
            self.sink_wakers
                .borrow()
                .iter()
                .for_each(Activator::activate);
        }
        match &self.checkpointer {
            Some(checkpointer) if self.trigger != Trigger::Once => {
                sinks_closed && checkpointer.stop_snapshot_committed()
            }
            _ => sinks_closed && self.shared.graceful.sources_stopped(),
        }
    }
}

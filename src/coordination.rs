//! The coordination dataflow of a cluster job: how one process's mail ([`PostOffice`]: the
//! snapshot protocol, progress figures) reaches another, on timely's own connections.
//!
//! Every worker builds it before the job's dataflow (so its dataflow index is the same in every
//! worker). On the first worker of each process a source sends the letters its post office
//! queued (on a process other than 0, with its progress figures when they are due:
//! [`FiguresSender`]), each exchanged to the first worker of the process it is for, where a
//! sink hands it to that process's snapshot coordinator or keeps it for its progress reports.
//! Its stamps mean nothing (every letter is sent at time 0): only delivery matters. The source holds its capability until the
//! process will send nothing more (its workers have left the job's dataflow and its snapshot
//! coordinator, if any, is over: the final snapshot is committed), so the dataflow ends once
//! every process is through.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::operator::source;
use timely::dataflow::operators::Operator;
use timely::worker::Worker;

use crate::checkpoint::Checkpointer;
use crate::context::{Letter, Mail, PostOffice, SharedJob};
use crate::metrics::FiguresSender;

/// How often the sending source looks at its post office without being woken (a safety net:
/// every letter and the closing wake it).
const RECHECK: Duration = Duration::from_millis(100);

/// Builds the coordination dataflow on worker `index` of the job (global index), which runs
/// `post`'s process's workers from `post.process * workers`.
pub(crate) fn build(
    worker: &mut Worker,
    index: usize,
    workers: usize,
    post: &Arc<PostOffice>,
    shared: &Arc<SharedJob>,
    checkpointer: Option<&Arc<Checkpointer>>,
) {
    let first = index == post.process * workers;
    let address: Rc<RefCell<Option<Vec<usize>>>> = Rc::default();
    let sending = Arc::clone(post);
    let sending_checkpointer = checkpointer.cloned();
    let receiving_shared = Arc::clone(shared);
    let receiving = checkpointer.cloned();
    let mut figures = first.then(|| FiguresSender::new(post, shared)).flatten();
    let wanted = Rc::clone(&address);
    worker.dataflow::<u64, _, _>(move |scope| {
        let activator_scope = scope;
        source::<_, CapacityContainerBuilder<Vec<Letter>>, _, _>(
            scope,
            "ClusterMail",
            move |capability, info| {
                let activator = activator_scope.activator_for(Rc::clone(&info.address));
                // Only the process's first worker sends: the others let go at once.
                let mut capability = first.then_some(capability);
                if first {
                    *wanted.borrow_mut() = Some(info.address.to_vec());
                }
                move |output| {
                    let Some(held) = capability.as_ref() else {
                        return;
                    };
                    // Looked at before taking the letters, so that none queued before the
                    // end is left behind.
                    let closed = sending.workers_done()
                        && sending_checkpointer.as_ref().is_none_or(|c| c.over());
                    // The final figures go once the workers are done: at the latest now.
                    let figures_due = figures.as_mut().and_then(FiguresSender::poll);
                    let letters = sending.take();
                    if !letters.is_empty() {
                        let mut session = output.session(held);
                        for letter in letters {
                            session.give(letter);
                        }
                    }
                    if closed {
                        capability = None;
                    } else {
                        activator.activate_after(figures_due.map_or(RECHECK, |d| d.min(RECHECK)));
                    }
                }
            },
        )
        .sink(
            Exchange::new(|(to, _): &Letter| *to),
            "ClusterInbox",
            move |(input, _frontier)| {
                input.for_each(|_, letters| {
                    for (_, mail) in letters.drain(..) {
                        deliver(mail, receiving.as_deref(), &receiving_shared);
                    }
                });
            },
        );
    });
    if let Some(address) = address.take() {
        post.set_activator(worker.sync_activator_for(address));
    }
}

/// Hands a letter to the part of this process it is for.
fn deliver(mail: Mail, checkpointer: Option<&Checkpointer>, shared: &SharedJob) {
    match mail {
        Mail::Figures { from, body } => {
            if let Some(post) = shared.post.get() {
                post.receive_figures(from, body);
            }
        }
        Mail::Snapshot(body) => {
            let delivered = match checkpointer {
                Some(checkpointer) => checkpointer.deliver(&body),
                None => Err(crate::error::Error::Internal(
                    "snapshot mail reached a process that takes no snapshots".into(),
                )),
            };
            if let Err(error) = delivered {
                shared.fail(error);
            }
        }
    }
}

//! Reading a bounded source to its end as the rows of a static table: the table side of a
//! stream-static join ([`Flow::static_table`](crate::Flow::static_table)).
//!
//! Unlike [`EventTimeBuilder::with_watermark`](super::EventTimeBuilder::with_watermark), the
//! table has no event time and no watermark: every row is a differential update at time 0, and
//! the operator holds its capability at 0 until the source is done on this worker, so the
//! table's frontier passes only once every worker has read all of its share. Rows are not
//! counted as records read; bad rows skipped or dead-lettered by the source's policy are.

use std::rc::Rc;
use std::sync::atomic::Ordering;

use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::generic::operator::source as timely_source;
use timely::dataflow::{Scope, StreamVec};

use super::{Source, SourceBatch, SourceContext, SourceStatus};
use crate::worker::WorkerJob;

/// Reads `source` on every worker to its end, turning each record into a row with `row`
/// (`None` drops it), and emits each row as the update `(row, 0, +1)`. An error from the
/// source stops the job, and the capability is kept, so nothing treats the table as complete.
pub(crate) fn read_table<'scope, S, T>(
    scope: Scope<'scope, u64>,
    job: &Rc<WorkerJob>,
    mut source: S,
    mut row: impl FnMut(S::Item) -> Option<T> + 'static,
) -> StreamVec<'scope, u64, (T, u64, isize)>
where
    S: Source,
    T: 'static,
{
    let job = Rc::clone(job);
    let context = SourceContext {
        worker_index: job.index,
        peers: job.peers,
    };
    let mut halted = match source.on_start(&context) {
        Ok(()) => false,
        Err(error) => {
            job.shared.fail(error);
            true
        }
    };
    let mut batch = SourceBatch::new();
    timely_source::<_, CapacityContainerBuilder<Vec<(T, u64, isize)>>, _, _>(
        scope,
        "StaticTableSource",
        move |capability, info| {
            let activator = scope.activator_for(info.address);
            let mut capability = Some(capability);
            move |output| {
                let Some(held) = capability.as_ref() else {
                    return;
                };
                if halted || job.shared.stopped() {
                    return;
                }
                let status = source.read(&mut batch);
                let shared = &job.shared;
                shared
                    .records_skipped
                    .fetch_add(std::mem::take(&mut batch.skipped), Ordering::Relaxed);
                shared
                    .records_dead_lettered
                    .fetch_add(std::mem::take(&mut batch.dead_lettered), Ordering::Relaxed);
                if !batch.records.is_empty() {
                    let mut session = output.session(held);
                    for (_, record) in batch.records.drain(..) {
                        if let Some(row) = row(record) {
                            session.give((row, 0, 1));
                        }
                    }
                }
                // A table has no watermark: partitions matter only to the source.
                batch.finished.clear();
                batch.added = 0;
                match status {
                    Ok(SourceStatus::Ready) => activator.activate(),
                    Ok(SourceStatus::Wait(delay)) => activator.activate_after(delay),
                    Ok(SourceStatus::Done) => capability = None,
                    Ok(SourceStatus::Halt) => halted = true,
                    Err(error) => {
                        shared.fail(error);
                        halted = true;
                    }
                }
            }
        },
    )
}

//! [`KeyedStream`]: a stream whose records have a key. This file holds the type and its core
//! methods (windows, back to a plain stream); each keyed-state operator has its own file:
//! running aggregates (`running.rs`), deduplication within a time bound (`dedup.rs`), interval
//! joins (`interval_join.rs`), stream-static joins (`static_join.rs`) and `map_with_state`
//! (`map_with_state.rs`), and the names of their state (`named.rs`).

mod dedup;
mod interval_join;
mod map_with_state;
mod named;
mod running;
pub(crate) mod static_join;

use std::rc::Rc;

use tideflow_operators::Event;
use timely::dataflow::StreamVec;

use crate::stream::{Stream, WindowedStream};
use crate::window::Window;
use crate::worker::WorkerJob;

/// A stream whose records have a key of type `K`; windows and keyed state start here.
pub struct KeyedStream<'scope, K, D> {
    pub(crate) inner: StreamVec<'scope, u64, Event<(K, D)>>,
    pub(crate) job: Rc<WorkerJob>,
    /// The id of the stateful operator built on this stream, if the job gave one.
    pub(crate) name: Option<String>,
}

impl<'scope, K: 'static, D: 'static> KeyedStream<'scope, K, D> {
    /// Groups each key's records into windows; finish with [`WindowedStream::aggregate`].
    pub fn window(self, window: Window) -> WindowedStream<'scope, K, D> {
        WindowedStream {
            keyed: self,
            window,
            lateness: 0,
        }
    }

    /// Back to a plain stream of `(key, record)` pairs.
    pub fn into_stream(self) -> Stream<'scope, (K, D)> {
        Stream {
            inner: self.inner,
            job: self.job,
        }
    }
}

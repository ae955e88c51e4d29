//! Lost-peer detection, per job. When a peer of a cluster dies, timely's network threads for
//! it panic with "timely communication error: ..."; a job learns of it from its own
//! [`PeerWatch`], never from process-wide state.
//!
//! Which job a panicking thread belongs to is told by a thread-local tag: timely calls the
//! job's [`PeerWatch::hooks`] log function first thing in each network thread it starts (with
//! the peer's index), and the runtime tags its worker threads
//! ([`PeerWatch::tag_worker_thread`]) and the thread that joins them
//! ([`PeerWatch::tag_thread`]).
//!
//! What remains process-wide is the panic hook itself (Rust has one per process):
//! [`PanicRouting`] installs a hook while at least one cluster job runs, and restores the
//! previous hook when the last one ends. The hook only reads the panicking thread's tag: a
//! network thread's communication error is recorded in its job's watch and not printed; a panic
//! in a thread of a job that lost a peer (a worker on a queue the lost peer poisoned) is not
//! news and is not printed either; every other panic goes to the previous hook, as it would
//! without a cluster job.

use std::cell::RefCell;
use std::panic::{self, PanicHookInfo};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use timely::communication::Hooks;

/// The panic text of timely's network threads when a connection breaks.
const COMMUNICATION_ERROR: &str = "timely communication error";
/// The panic text of a timely thread that finds a queue another thread's panic poisoned.
const POISONED: &str = "MergeQueue poisoned";

/// The peer a job lost, if it lost one.
#[derive(Default)]
pub(crate) struct PeerWatch {
    /// The first peer lost: (process index, reason).
    lost: Mutex<Option<(usize, String)>>,
    /// Whether `lost` holds a peer: read on every step of the job's workers.
    any: AtomicBool,
}

impl PeerWatch {
    /// The peer whose connection broke, if one did: (process index, reason).
    pub(crate) fn lost_peer(&self) -> Option<(usize, String)> {
        if !self.any.load(Ordering::Relaxed) {
            return None;
        }
        self.lost
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Timely's communication hooks for this job: each network thread is tagged with this
    /// watch and its peer's index as it starts.
    pub(crate) fn hooks(self: &Arc<Self>) -> Hooks {
        let watch = Arc::clone(self);
        Hooks {
            log_fn: Arc::new(move |setup| {
                set_tag(Some(Tag {
                    watch: Arc::clone(&watch),
                    peer: setup.remote,
                }));
                None
            }),
            ..Hooks::default()
        }
    }

    /// Tags the calling timely worker thread as this job's for the rest of its life: timely
    /// tears the worker down after the job's closure returns, and a lost peer's poisoned
    /// queues panic there too.
    pub(crate) fn tag_worker_thread(self: &Arc<Self>) {
        set_tag(Some(Tag {
            watch: Arc::clone(self),
            peer: None,
        }));
    }

    /// Tags the calling thread as one of this job's (the thread that joins the workers) until
    /// the returned guard is dropped.
    pub(crate) fn tag_thread(self: &Arc<Self>) -> ThreadTag {
        ThreadTag {
            previous: set_tag(Some(Tag {
                watch: Arc::clone(self),
                peer: None,
            })),
        }
    }

    /// A panic with `message` in a thread of this job (a network thread for `peer`, if
    /// given): records a lost peer. Returns whether the panic is accounted for (and so not
    /// news to print).
    fn on_panic(&self, peer: Option<usize>, message: &str) -> bool {
        let mut lost = self
            .lost
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let (Some(peer), true) = (peer, message.starts_with(COMMUNICATION_ERROR)) {
            let reason = message
                .trim_start_matches("timely communication error: ")
                .to_string();
            lost.get_or_insert((peer, reason));
            self.any.store(true, Ordering::SeqCst);
            return true;
        }
        // What follows a lost peer (poisoned queues in this job) is not news; nor is a poisoned
        // queue ever: the thread whose panic poisoned it told its own story (a broken
        // connection recorded here, or the job's own error), which may not be recorded yet
        // when a thread of another peer finds the queue poisoned.
        lost.is_some() || message.starts_with(POISONED)
    }
}

/// Which job (and, in a network thread, which peer) the current thread works for.
struct Tag {
    watch: Arc<PeerWatch>,
    peer: Option<usize>,
}

thread_local! {
    static TAG: RefCell<Option<Tag>> = const { RefCell::new(None) };
}

/// Sets the current thread's tag; returns the one it replaces.
fn set_tag(tag: Option<Tag>) -> Option<Tag> {
    TAG.with(|slot| slot.replace(tag))
}

/// Restores the thread's previous tag when dropped.
pub(crate) struct ThreadTag {
    previous: Option<Tag>,
}

impl Drop for ThreadTag {
    fn drop(&mut self) {
        set_tag(self.previous.take());
    }
}

/// Whether the current thread's job accounts for a panic with `message`.
fn accounted_for(message: &str) -> bool {
    TAG.try_with(|slot| match slot.try_borrow() {
        Ok(tag) => tag
            .as_ref()
            .is_some_and(|tag| tag.watch.on_panic(tag.peer, message)),
        Err(_) => false,
    })
    .unwrap_or(false)
}

/// The panic hook in place before the first running cluster job installed its own.
type PanicHook = Box<dyn Fn(&PanicHookInfo<'_>) + Sync + Send + 'static>;

/// The process's panic routing: how many cluster jobs run, and the hook to restore after them.
struct Routing {
    jobs: usize,
    previous: Option<Arc<PanicHook>>,
}

static ROUTING: Mutex<Routing> = Mutex::new(Routing {
    jobs: 0,
    previous: None,
});

/// Routes panics to the running cluster jobs while held (see the module docs); the last one
/// dropped restores the previous panic hook.
pub(crate) struct PanicRouting(());

impl PanicRouting {
    /// Installs the routing hook if no cluster job runs yet.
    pub(crate) fn install() -> PanicRouting {
        let mut routing = ROUTING.lock().unwrap_or_else(|p| p.into_inner());
        if routing.jobs == 0 {
            let previous: Arc<PanicHook> = Arc::new(panic::take_hook());
            let forward = Arc::clone(&previous);
            panic::set_hook(Box::new(move |info| {
                if !accounted_for(&payload_text(info)) {
                    forward(info);
                }
            }));
            routing.previous = Some(previous);
        }
        routing.jobs += 1;
        PanicRouting(())
    }
}

impl Drop for PanicRouting {
    fn drop(&mut self) {
        let mut routing = ROUTING.lock().unwrap_or_else(|p| p.into_inner());
        routing.jobs -= 1;
        if routing.jobs > 0 {
            return;
        }
        // Dropping the routing hook drops its clone of the previous one.
        drop(panic::take_hook());
        if let Some(previous) = routing.previous.take() {
            match Arc::try_unwrap(previous) {
                Ok(hook) => panic::set_hook(hook),
                Err(shared) => panic::set_hook(Box::new(move |info| shared(info))),
            }
        }
    }
}

/// The text of a panic's payload, or "" if it is not text.
fn payload_text(info: &PanicHookInfo<'_>) -> String {
    info.payload()
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| info.payload().downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_network_threads_communication_error_is_the_lost_peer() {
        let watch = PeerWatch::default();
        assert_eq!(watch.lost_peer(), None);
        // A worker's own panic before any peer is lost is news.
        assert!(!watch.on_panic(None, "index out of bounds"));
        // A network thread's panic for another reason is news too.
        assert!(!watch.on_panic(Some(1), "Clean shutdown followed by data."));
        assert_eq!(watch.lost_peer(), None);
        assert!(watch.on_panic(
            Some(1),
            "timely communication error: reading data: connection reset by peer"
        ));
        let lost = Some((1, "reading data: connection reset by peer".to_string()));
        assert_eq!(watch.lost_peer(), lost);
        // The first peer lost stays the one reported; what follows is not news.
        assert!(watch.on_panic(
            Some(2),
            "timely communication error: writing data: broken pipe"
        ));
        assert!(watch.on_panic(None, "Send thread panic"));
        assert_eq!(watch.lost_peer(), lost);
    }

    #[test]
    fn only_a_tagged_thread_is_accounted_for() {
        let watch = Arc::new(PeerWatch::default());
        let message = "timely communication error: reading data: early eof";
        assert!(!accounted_for(message));
        {
            let _tag = watch.tag_thread();
            // A tag without a peer (a worker) does not record a lost peer...
            assert!(!accounted_for(message));
            {
                let _network = ThreadTag {
                    previous: set_tag(Some(Tag {
                        watch: Arc::clone(&watch),
                        peer: Some(0),
                    })),
                };
                assert!(accounted_for(message));
            }
            // ... but once the job lost one, its workers' panics are accounted for.
            assert!(accounted_for("poisoned queue"));
        }
        // Untagged again: another job's panics are its own.
        assert!(!accounted_for("poisoned queue"));
        assert_eq!(
            watch.lost_peer(),
            Some((0, "reading data: early eof".into()))
        );
    }
}

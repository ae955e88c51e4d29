//! SIGINT and SIGTERM while `tideflow run` (or `cluster --local`) runs: the first one stops
//! the job gracefully (through the library's [`StopHandle`](tideflow::StopHandle)), and the
//! process then exits with 128 + the signal's number (130 for SIGINT, 143 for SIGTERM); a
//! second one ends the process at once, killed by that signal, as if nothing handled it.
//!
//! The signal handler itself (signal-hook's) only writes to a pipe; a thread of ours reads it
//! and acts.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::{Handle, Signals};
use tideflow::Error;

/// The signals watched while a job runs; dropping it stops watching them.
pub(crate) struct SignalStop {
    /// The first signal received, or 0.
    first: Arc<AtomicI32>,
    handle: Handle,
    thread: Option<JoinHandle<()>>,
}

impl SignalStop {
    /// Watches SIGINT and SIGTERM: each calls `on_signal` with the signal, on a thread of its
    /// own; then a second one ends the process at once.
    pub(crate) fn install(on_signal: impl Fn(i32) + Send + 'static) -> Result<SignalStop, Error> {
        let mut signals = Signals::new([SIGINT, SIGTERM])
            .map_err(|e| Error::io("cannot watch SIGINT and SIGTERM", e))?;
        let handle = signals.handle();
        let first = Arc::new(AtomicI32::new(0));
        let seen = Arc::clone(&first);
        let thread = std::thread::Builder::new()
            .name("tideflow-signals".into())
            .spawn(move || {
                for signal in signals.forever() {
                    if seen
                        .compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst)
                        .is_ok()
                    {
                        errln!(
                            "tideflow: {}: stopping gracefully (send it again to stop at once)",
                            name(signal)
                        );
                        on_signal(signal);
                        continue;
                    }
                    errln!("tideflow: {} again: stopping at once", name(signal));
                    on_signal(signal);
                    // Dies of the signal, as without a handler (the parent sees it).
                    let _ = signal_hook::low_level::emulate_default_handler(signal);
                    std::process::exit(128 + signal);
                }
            })
            .map_err(|e| Error::io("cannot start the signal thread", e))?;
        Ok(SignalStop {
            first,
            handle,
            thread: Some(thread),
        })
    }

    /// The first signal received, if any.
    pub(crate) fn received(&self) -> Option<i32> {
        match self.first.load(Ordering::SeqCst) {
            0 => None,
            signal => Some(signal),
        }
    }
}

impl Drop for SignalStop {
    fn drop(&mut self) {
        self.handle.close();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A signal's name.
pub(crate) fn name(signal: i32) -> &'static str {
    match signal {
        SIGINT => "SIGINT",
        SIGTERM => "SIGTERM",
        _ => "a signal",
    }
}

/// The exit code of a process that stopped gracefully on `signal`: 128 + its number.
pub(crate) fn exit_code(signal: i32) -> u8 {
    u8::try_from(128 + signal).unwrap_or(u8::MAX)
}

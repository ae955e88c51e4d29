//! Fault injection for crash tests: `TIDEFLOW_FAULT=POINT[:N][@P]` makes the process abort (as
//! a crash would stop it) at a point of the protocol during its N-th snapshot (default 1), or
//! makes that snapshot's writes fail as on a full disk; with `@P`, only process P of a cluster
//! (a job of one process is process 0).
//!
//! Points: `after-parts` (every part written, before the manifest), `after-manifest` (before
//! the sinks commit), `mid-commit` (half of a sink's output appended), `during-recovery` (half
//! of a recovery commit appended, or after the outputs were truncated), `write-fail` (every
//! write of snapshot N fails with "no space left on device").
//!
//! Only with the `failpoints` cargo feature, which `cargo test` turns on (Cargo.toml) and a
//! release build does not: without it, [`Fault`] is an empty type whose hooks do nothing and
//! `TIDEFLOW_FAULT` is never read.

#[cfg(not(feature = "failpoints"))]
pub(crate) use disabled::Fault;
#[cfg(feature = "failpoints")]
pub(crate) use injected::Fault;
#[cfg(feature = "failpoints")]
pub use injected::FAULT_VAR;

/// Fault injection compiled out: every hook is a no-op.
#[cfg(not(feature = "failpoints"))]
mod disabled {
    use std::fs::File;
    use std::io;
    use std::path::Path;

    use crate::error::Error;

    /// No fault, ever.
    #[derive(Debug, Default)]
    pub(crate) struct Fault;

    impl Fault {
        /// No fault (for unit tests; the runtime asks `from_env`).
        #[cfg(test)]
        pub(crate) fn none() -> Self {
            Fault
        }

        /// No fault: the environment is not read.
        pub(crate) fn from_env(_process: usize) -> Result<Self, Error> {
            Ok(Fault)
        }

        /// Does nothing.
        pub(crate) fn begin_snapshot(&self, _number: u64) {}

        /// Never fails.
        pub(crate) fn before_write(&self, _path: &Path) -> io::Result<()> {
            Ok(())
        }

        /// Does nothing.
        pub(crate) fn after_parts(&self) {}

        /// Does nothing.
        pub(crate) fn after_manifest(&self) {}

        /// Does nothing.
        pub(crate) fn mid_commit(&self, _file: &mut File) {}

        /// Does nothing.
        pub(crate) fn mid_commit_then(&self, _durable: impl FnOnce()) {}

        /// Does nothing.
        pub(crate) fn during_recovery(&self) {}
    }
}

/// Fault injection from `TIDEFLOW_FAULT`.
#[cfg(feature = "failpoints")]
mod injected {
    use std::fs::File;
    use std::io;
    use std::path::Path;
    use std::sync::atomic::{AtomicU64, Ordering};

    use crate::error::Error;

    /// The environment variable that sets a fault.
    /// (`TIDEFLOW_FAULT`, for crash tests.)
    pub const FAULT_VAR: &str = "TIDEFLOW_FAULT";

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Point {
        AfterParts,
        AfterManifest,
        MidCommit,
        DuringRecovery,
        WriteFail,
    }

    /// An injected fault, or none.
    #[derive(Debug, Default)]
    pub(crate) struct Fault {
        point: Option<Point>,
        /// The snapshot (1-based, counted per run) the fault hits.
        at: u64,
        /// The snapshot being taken now.
        current: AtomicU64,
    }

    impl Fault {
        /// No fault.
        pub(crate) fn none() -> Self {
            Fault::default()
        }

        /// The fault `TIDEFLOW_FAULT` asks for, in process `process` of the job.
        pub(crate) fn from_env(process: usize) -> Result<Self, Error> {
            let Ok(text) = std::env::var(FAULT_VAR) else {
                return Ok(Fault::none());
            };
            let text = match text.split_once('@') {
                Some((text, only)) => {
                    let only: usize = only.parse().map_err(|_| {
                        Error::Config(format!("{FAULT_VAR}: {only:?} is not a process index"))
                    })?;
                    if only != process {
                        return Ok(Fault::none());
                    }
                    text.to_string()
                }
                None => text,
            };
            let (name, at) = match text.split_once(':') {
                Some((name, at)) => (
                    name,
                    at.parse::<u64>().ok().filter(|&n| n > 0).ok_or_else(|| {
                        Error::Config(format!(
                            "{FAULT_VAR}: {at:?} is not a snapshot number (1, 2, ...)"
                        ))
                    })?,
                ),
                None => (text.as_str(), 1),
            };
            let point = match name {
                "after-parts" => Point::AfterParts,
                "after-manifest" => Point::AfterManifest,
                "mid-commit" => Point::MidCommit,
                "during-recovery" => Point::DuringRecovery,
                "write-fail" => Point::WriteFail,
                other => {
                    return Err(Error::Config(format!(
                        "{FAULT_VAR}: unknown point {other:?} (after-parts, after-manifest, mid-commit, during-recovery, write-fail)"
                    )))
                }
            };
            Ok(Fault {
                point: Some(point),
                at,
                current: AtomicU64::new(0),
            })
        }

        /// Snapshot `number` (1-based) begins.
        pub(crate) fn begin_snapshot(&self, number: u64) {
            self.current.store(number, Ordering::SeqCst);
        }

        fn hits(&self, point: Point) -> bool {
            self.point == Some(point) && self.current.load(Ordering::SeqCst) == self.at
        }

        fn crash(point: &str) -> ! {
            eprintln!("tideflow: {FAULT_VAR}: crashing {point}");
            std::process::abort()
        }

        /// Before any checkpoint write: fails it if the disk is "full".
        pub(crate) fn before_write(&self, path: &Path) -> io::Result<()> {
            if self.hits(Point::WriteFail) {
                let _ = path;
                return Err(io::Error::from_raw_os_error(28));
            }
            Ok(())
        }

        /// Every part is written; the manifest is next.
        pub(crate) fn after_parts(&self) {
            if self.hits(Point::AfterParts) {
                Fault::crash("after the parts, before the manifest");
            }
        }

        /// The manifest is durable; the sinks' commits are next.
        pub(crate) fn after_manifest(&self) {
            if self.hits(Point::AfterManifest) {
                Fault::crash("after the manifest, before the sink commit");
            }
        }

        /// Half of a sink's output is appended to `file`.
        pub(crate) fn mid_commit(&self, file: &mut File) {
            self.mid_commit_then(|| {
                let _ = file.sync_all();
            });
        }

        /// Half of a sink's output is sent; `durable` makes it reach its destination before
        /// the crash.
        pub(crate) fn mid_commit_then(&self, durable: impl FnOnce()) {
            if self.hits(Point::MidCommit)
                || self.point == Some(Point::DuringRecovery)
                    && self.current.load(Ordering::SeqCst) == 0
            {
                durable();
                Fault::crash("in the middle of a sink commit");
            }
        }

        /// Recovery has truncated the outputs to their committed length.
        pub(crate) fn during_recovery(&self) {
            if self.point == Some(Point::DuringRecovery) && self.current.load(Ordering::SeqCst) == 0
            {
                Fault::crash("during recovery");
            }
        }
    }
}

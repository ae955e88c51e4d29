//! Where `tideflow run` sends progress reports: JSON lines to a file or standard error
//! (`--progress`), and a Prometheus endpoint (`--metrics-addr`), every `--progress-interval`.
//! In a cluster each process writes and serves its own; process 0's reports also hold the
//! whole cluster's figures (`Progress::cluster`), which both outputs show as they are.

use std::fs::{File, OpenOptions};
use std::io::{Seek, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tideflow::{Config, Error, Progress};

use http::{Latest, MetricsServer};

use crate::ui::Watch;

mod http;

/// The host `--metrics-addr` binds when given a port alone.
const DEFAULT_HOST: &str = "127.0.0.1";

/// The interval of `--progress-interval` by default.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);

/// The progress outputs that `--progress PATH|-`, `--progress-interval DUR` and
/// `--metrics-addr [HOST:]PORT` ask for, checked; nothing is created or bound until
/// [`CliProgress::open`].
#[derive(Clone, Debug)]
pub(crate) struct ProgressPlan {
    /// How often a report is taken.
    pub(crate) interval: Duration,
    /// Where the JSON lines go: `-` for standard error, else a file created when the job starts.
    pub(crate) lines: Option<String>,
    /// The Prometheus endpoint.
    pub(crate) metrics: Option<MetricsAddr>,
    /// The dashboard and status line shown every report (`ui.rs`).
    pub(crate) watch: Watch,
}

/// The address of `--metrics-addr`.
#[derive(Clone, Debug)]
pub(crate) struct MetricsAddr {
    /// As given on the command line.
    pub(crate) given: String,
    /// What is bound: the given `HOST:PORT`, or a port alone on localhost.
    address: String,
}

impl ProgressPlan {
    /// Checks the progress flags; `None` without `--progress` and `--metrics-addr`, unless
    /// `--progress-interval` sets how often a dashboard (`--ui`, `watched`) is updated.
    pub(crate) fn new(
        progress: Option<&str>,
        interval: Option<Duration>,
        metrics_addr: Option<&str>,
        watched: bool,
    ) -> Result<Option<ProgressPlan>, Error> {
        if progress.is_none() && metrics_addr.is_none() {
            match interval {
                None => return Ok(None),
                Some(_) if !watched => {
                    return Err(Error::Config(
                        "--progress-interval: only with --progress, --metrics-addr or --ui".into(),
                    ))
                }
                Some(_) => {}
            }
        }
        let interval = interval.unwrap_or(DEFAULT_INTERVAL);
        if interval.is_zero() {
            return Err(Error::Config(
                "--progress-interval: must be longer than 0ms".into(),
            ));
        }
        let metrics = match metrics_addr {
            None => None,
            Some(given) => {
                let metrics = MetricsAddr {
                    given: given.to_string(),
                    address: listen_address(given).unwrap_or_else(|| given.to_string()),
                };
                if !metrics.address.contains(':') {
                    return Err(metrics.cannot(&"expected HOST:PORT or PORT, e.g. 127.0.0.1:9464"));
                }
                Some(metrics)
            }
        };
        Ok(Some(ProgressPlan {
            interval,
            lines: progress.map(str::to_string),
            metrics,
            watch: Watch::default(),
        }))
    }

    /// `plan` (or, without one, reports every second to nothing else) with `watch` shown
    /// every report too; `plan` as it was if nothing watches.
    pub(crate) fn watched(plan: Option<ProgressPlan>, watch: Watch) -> Option<ProgressPlan> {
        if watch.is_empty() {
            return plan;
        }
        let mut plan = plan.unwrap_or(ProgressPlan {
            interval: DEFAULT_INTERVAL,
            lines: None,
            metrics: None,
            watch: Watch::default(),
        });
        plan.watch = watch;
        Some(plan)
    }
}

/// The address to bind for `given` (`HOST:PORT`, `PORT` or `:PORT`; a port alone on
/// localhost); `None` if it has no port.
pub(crate) fn listen_address(given: &str) -> Option<String> {
    match given.strip_prefix(':').unwrap_or(given) {
        port if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
            Some(format!("{DEFAULT_HOST}:{port}"))
        }
        _ => given.contains(':').then(|| given.to_string()),
    }
}

impl MetricsAddr {
    /// The error for an address that cannot be listened on.
    fn cannot(&self, reason: &dyn std::fmt::Display) -> Error {
        Error::Config(format!(
            "--metrics-addr: cannot listen on {}: {reason}",
            self.address
        ))
    }
}

/// The progress outputs of `tideflow run`, opened (and the metrics port bound) before the job
/// starts.
pub(crate) struct CliProgress {
    interval: Duration,
    lines: Option<Arc<ProgressLines>>,
    latest: Option<Latest>,
    watch: Watch,
    /// Serves `latest` until dropped.
    _server: Option<MetricsServer>,
}

impl CliProgress {
    /// Opens the outputs of `plan`: creates the `--progress` file and binds `--metrics-addr`.
    pub(crate) fn open(plan: &ProgressPlan) -> Result<CliProgress, Error> {
        let lines = match plan.lines.as_deref() {
            None => None,
            Some("-") => Some(ProgressLines::new(
                ProgressOut::Stderr(std::io::stderr()),
                "standard error",
            )),
            Some(path) => {
                // Opened now, so that a path that cannot be written fails at once; emptied at
                // the first report, so that a job refused before it starts (a changed query
                // on a checkpoint) leaves an earlier run's reports as they were.
                let file = OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(path)
                    .map_err(|e| Error::io(format!("--progress: cannot create {path}"), e))?;
                let out = ProgressOut::File {
                    file,
                    emptied: false,
                };
                Some(ProgressLines::new(out, path))
            }
        };
        let (latest, server) = match &plan.metrics {
            None => (None, None),
            Some(metrics) => {
                let listener =
                    TcpListener::bind(metrics.address.as_str()).map_err(|e| metrics.cannot(&e))?;
                let latest: Latest = Arc::new(Mutex::new(None));
                let server = MetricsServer::start(listener, Arc::clone(&latest))
                    .map_err(|e| metrics.cannot(&e))?;
                (Some(latest), Some(server))
            }
        };
        Ok(CliProgress {
            interval: plan.interval,
            lines: lines.map(Arc::new),
            latest,
            watch: plan.watch.clone(),
            _server: server,
        })
    }

    /// `config` with a progress listener feeding these outputs: a report that cannot be
    /// written stops the job.
    pub(crate) fn configure(&self, config: Config) -> Config {
        let lines = self.lines.clone();
        let latest = self.latest.clone();
        let watch = self.watch.clone();
        config.try_progress(self.interval, move |progress| {
            watch.on_progress(progress);
            if let Some(latest) = &latest {
                *lock(latest) = Some(progress.clone());
            }
            match &lines {
                Some(lines) => lines.write(progress),
                None => Ok(()),
            }
        })
    }
}

/// JSON lines of progress reports, one write per report (flushed, and for a file synced
/// after the final one).
struct ProgressLines {
    out: Mutex<ProgressOut>,
    name: PathBuf,
}

/// Empties `file` the first time (`emptied` says whether it was): a regular file is truncated
/// and written from its start; a FIFO or a device has nothing to truncate.
fn empty_once(file: &mut File, emptied: &mut bool) -> std::io::Result<()> {
    if !std::mem::replace(emptied, true) && file.metadata()?.is_file() {
        file.set_len(0)?;
        file.seek(std::io::SeekFrom::Start(0))?;
    }
    Ok(())
}

/// Where progress lines go.
enum ProgressOut {
    Stderr(std::io::Stderr),
    /// A file, and whether what it held before this run has been removed (at the first report).
    File {
        file: File,
        emptied: bool,
    },
}

impl ProgressLines {
    fn new(out: ProgressOut, name: &str) -> ProgressLines {
        ProgressLines {
            out: Mutex::new(out),
            name: PathBuf::from(name),
        }
    }

    /// Writes one report; an error (the disk is full, the reader of a pipe has gone) stops
    /// the job, as every output's does.
    fn write(&self, progress: &Progress) -> Result<(), Error> {
        let mut line = serde_json::to_vec(progress)
            .map_err(|e| Error::Internal(format!("cannot encode a progress report: {e}")))?;
        line.push(b'\n');
        let mut out = lock(&self.out);
        let written = match &mut *out {
            ProgressOut::Stderr(stderr) => stderr.write_all(&line).and_then(|()| stderr.flush()),
            // The final report syncs the file, which reports a write error the file system
            // deferred (a pipe or a device has nothing to sync: EINVAL).
            ProgressOut::File { file, emptied } => empty_once(file, emptied)
                .and_then(|()| file.write_all(&line))
                .and_then(|()| match progress.is_final.then(|| file.sync_all()) {
                    Some(Err(e)) if e.kind() != std::io::ErrorKind::InvalidInput => Err(e),
                    _ => Ok(()),
                }),
        };
        written.map_err(|e| {
            Error::io(
                format!("--progress: cannot write {}", self.name.display()),
                e,
            )
        })
    }
}

/// Locks `mutex`, also after a panic elsewhere left it poisoned (the reports are plain data).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

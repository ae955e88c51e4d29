//! Watching a running job: the live web dashboard of `--ui [HOST:]PORT` (`server.rs`, the page
//! in `ui/assets/`) and the status line `tideflow run` draws on a terminal (`status.rs`).
//!
//! Both are fed the job's progress reports (`progress.rs` hands each report to [`Watch`]), so
//! they cost the job what a `--progress` report costs: one read of its counters per interval.
//! The dashboard's server runs on a thread of its own and only in the binary; the library knows
//! nothing of it.

use std::io::IsTerminal;
use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;

use clap::Args;
use serde::Serialize;
use tideflow::{Error, Progress};

use crate::progress::listen_address;

pub(crate) use server::Dashboard;
pub(crate) use status::{InputSize, StatusLine};

mod server;
mod status;

/// The flags of `tideflow run` that show the job while it runs.
#[derive(Clone, Debug, Default, Args)]
pub(crate) struct UiArgs {
    /// Serve a live dashboard of the job at http://HOST:PORT/: its operators, input and
    /// processed rates, watermark lag, window-close latency, late records, state and snapshots,
    /// pushed to the page as they change. A PORT alone binds 127.0.0.1 (localhost only); port
    /// 0 picks a free one. The address is printed on standard error.
    #[arg(long, value_name = "[HOST:]PORT")]
    pub(crate) ui: Option<String>,
    /// No status line on standard error (by default, a terminal shows one while the job runs:
    /// records read, rate, watermark, lag, late records and, for a bounded input, how much is
    /// read and the time left).
    #[arg(long)]
    pub(crate) quiet: bool,
}

/// One operator of the job's graph, as `tideflow explain` prints it.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct GraphNode {
    /// What it is: `source`, `exchange`, `window`, `sink`...
    pub(crate) kind: String,
    /// What it does, as `explain` says it.
    pub(crate) text: String,
    /// The name its keyed state has in the progress reports, if it holds any.
    pub(crate) state: Option<String>,
}

/// What the dashboard shows that does not change while the job runs.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Graph {
    /// The command, e.g. `tideflow run`.
    pub(crate) title: String,
    /// The operators in dataflow order.
    pub(crate) nodes: Vec<GraphNode>,
    /// The lines of `explain` that are not operators (snapshots, cluster).
    pub(crate) notes: Vec<String>,
}

impl Graph {
    /// The graph of `explain`'s lines (operator, description); the stateful operators'
    /// ids, in dataflow order, name the state of the join and of the aggregation.
    pub(crate) fn from_explain(
        title: &str,
        lines: Vec<(&'static str, String)>,
        stateful: &[&'static str],
    ) -> Graph {
        let mut nodes = Vec::new();
        let mut notes = Vec::new();
        for (kind, text) in lines {
            let state = match kind {
                "join" => stateful.first(),
                "window" | "aggregate" => stateful.last(),
                "snapshots" | "cluster" | "progress" => {
                    notes.push(format!("{kind}: {text}"));
                    continue;
                }
                _ => None,
            };
            nodes.push(GraphNode {
                kind: kind.to_string(),
                text,
                state: state.map(|s| s.to_string()),
            });
        }
        Graph {
            title: title.to_string(),
            nodes,
            notes,
        }
    }
}

/// What watches the job: the dashboard, the status line, both or neither. Cheap to clone.
#[derive(Clone, Default)]
pub(crate) struct Watch {
    inner: Option<Arc<Watchers>>,
}

struct Watchers {
    dashboard: Option<Dashboard>,
    status: Option<StatusLine>,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.inner.as_deref();
        f.debug_struct("Watch")
            .field("dashboard", &inner.is_some_and(|w| w.dashboard.is_some()))
            .field("status", &inner.is_some_and(|w| w.status.is_some()))
            .finish()
    }
}

impl Watch {
    /// Starts what `ui` and the terminal ask for: binds `--ui` and serves `graph` there (its
    /// address is printed on standard error), and a status line if `status` allows it, standard
    /// error is a terminal and `--quiet` is not given (`size`: how much a bounded input holds).
    pub(crate) fn start(
        ui: &UiArgs,
        graph: Graph,
        status: bool,
        size: Option<InputSize>,
    ) -> Result<Watch, Error> {
        let dashboard = ui
            .ui
            .as_deref()
            .map(|given| Dashboard::bind(given, graph))
            .transpose()?;
        let status =
            (status && !ui.quiet && std::io::stderr().is_terminal()).then(|| StatusLine::new(size));
        if dashboard.is_none() && status.is_none() {
            return Ok(Watch::default());
        }
        if let Some(dashboard) = &dashboard {
            errln!("tideflow: dashboard at {}", dashboard.url());
        }
        Ok(Watch {
            inner: Some(Arc::new(Watchers { dashboard, status })),
        })
    }

    /// Whether nothing watches.
    pub(crate) fn is_empty(&self) -> bool {
        self.inner.is_none()
    }

    /// Shows a progress report.
    pub(crate) fn on_progress(&self, progress: &Progress) {
        let Some(watchers) = &self.inner else { return };
        if let Some(status) = &watchers.status {
            status.on_progress(progress);
        }
        if let Some(dashboard) = &watchers.dashboard {
            dashboard.on_progress(progress);
        }
    }

    /// Shows the error the job stopped with.
    pub(crate) fn on_error(&self, error: &Error) {
        let Some(watchers) = &self.inner else { return };
        if let Some(status) = &watchers.status {
            status.clear();
        }
        if let Some(dashboard) = &watchers.dashboard {
            dashboard.on_error(error);
        }
    }
}

/// Binds `given` (`[HOST:]PORT`, a port alone on localhost) for `--ui`.
fn bind(given: &str) -> Result<TcpListener, Error> {
    let cannot = |reason: &dyn std::fmt::Display| {
        Error::Config(format!("--ui: cannot listen on {given}: {reason}"))
    };
    let address = listen_address(given)
        .ok_or_else(|| cannot(&"expected HOST:PORT or PORT, e.g. 127.0.0.1:8080"))?;
    TcpListener::bind(address.as_str()).map_err(|e| cannot(&e))
}

/// Whether `path` names a file or directory (not `-`, `tcp://`, `rate:` or `kafka://`).
fn is_path(path: &Path) -> bool {
    let text = path.to_string_lossy();
    !(text == "-" || text.contains("://") || text.starts_with("rate:"))
}

#[cfg(test)]
pub(crate) mod tests {
    use tideflow::sink::MemorySink;
    use tideflow::source::MemorySource;

    use super::*;

    /// A report of a job that read nothing, numbered `batch` (not the final one).
    pub(crate) fn report(batch: u64) -> Progress {
        let (config, reports) =
            tideflow::Config::workers(1).progress_channel(std::time::Duration::from_secs(60));
        tideflow::execute(config, |flow| {
            flow.source(MemorySource::new(Vec::<u64>::new()))
                .with_event_time(|t| *t)
                .with_watermark(std::time::Duration::ZERO)
                .sink(MemorySink::new());
            Ok(())
        })
        .expect("an empty job runs");
        let mut report = reports.iter().last().expect("a final report");
        report.batch = batch;
        report.is_final = false;
        report
    }

    #[test]
    fn the_graph_keeps_operators_and_names_their_state() {
        let lines = vec![
            ("source", "rate generator".to_string()),
            ("exchange", "by key".to_string()),
            ("window", "tumbling 1s".to_string()),
            ("sink", "standard output".to_string()),
            ("snapshots", "none".to_string()),
        ];
        let graph = Graph::from_explain("tideflow run", lines, &["tumbling"]);
        let kinds: Vec<&str> = graph.nodes.iter().map(|n| n.kind.as_str()).collect();
        assert_eq!(kinds, ["source", "exchange", "window", "sink"]);
        assert_eq!(graph.nodes[2].state.as_deref(), Some("tumbling"));
        assert_eq!(graph.notes, ["snapshots: none"]);
    }

    #[test]
    fn a_ui_address_without_a_port_is_refused_naming_the_flag() {
        let error = bind("localhost").expect_err("refused");
        assert!(error.to_string().starts_with("--ui: "), "{error}");
    }
}

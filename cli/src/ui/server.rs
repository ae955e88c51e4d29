//! The dashboard's HTTP server (axum, on a current-thread tokio runtime of its own thread):
//! `GET /` the page, its script, style and the vendored chart library (`assets/`, compiled into
//! the binary, so the page needs no network), and `GET /events`, a stream of server-sent
//! events: the job's graph, the reports of the last minutes, then each new report and the
//! error the job stopped with, as they come.
//!
//! The job's reporter thread hands each report to [`Dashboard::on_progress`], which encodes it
//! once and broadcasts it; a page that falls behind skips reports rather than holding the job
//! up. Like the metrics endpoint it is meant for localhost or a trusted network.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::IntoFuture;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use futures_util::stream::{self, Stream, StreamExt};
use tideflow::{Error, Progress};
use tokio::sync::{broadcast, oneshot};

use super::{bind, Graph};
use crate::progress::lock;

/// How many reports a page that opens gets first: ten minutes at the default interval.
const HISTORY: usize = 600;

/// How many pushed events a slow page may be behind before it skips some.
const BACKLOG: usize = 64;

/// How long the process waits, at the end, for open pages to receive the last events.
const FAREWELL: Duration = Duration::from_millis(300);

/// The page and what it loads: (path, content type, body).
const ASSETS: [(&str, &str, &str); 5] = [
    (
        "/",
        "text/html; charset=utf-8",
        include_str!("assets/index.html"),
    ),
    (
        "/dashboard.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/dashboard.js"),
    ),
    (
        "/dashboard.css",
        "text/css; charset=utf-8",
        include_str!("assets/dashboard.css"),
    ),
    (
        "/uPlot.iife.min.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/uPlot.iife.min.js"),
    ),
    (
        "/uPlot.min.css",
        "text/css; charset=utf-8",
        include_str!("assets/uPlot.min.css"),
    ),
];

/// One event pushed to the pages.
#[derive(Clone, Debug)]
struct Pushed {
    /// The event's name: `graph`, `progress` or `error`.
    name: &'static str,
    /// Its data, JSON.
    data: Arc<str>,
}

/// What pages are sent: kept for the pages that open later, and broadcast to the open ones.
struct Shared {
    graph: Pushed,
    kept: Mutex<Kept>,
    pushed: broadcast::Sender<Pushed>,
}

struct Kept {
    reports: VecDeque<Pushed>,
    error: Option<Pushed>,
}

impl Shared {
    /// Keeps `event` and sends it to the open pages, under one lock with
    /// [`subscribe`](Self::subscribe), so that a page opening meanwhile gets it once.
    fn push(&self, event: Pushed) {
        let mut kept = lock(&self.kept);
        match event.name {
            "error" => kept.error = Some(event.clone()),
            _ => {
                if kept.reports.len() == HISTORY {
                    kept.reports.pop_front();
                }
                kept.reports.push_back(event.clone());
            }
        }
        // No page open: nobody to send it to.
        let _ = self.pushed.send(event);
    }

    /// What a page that opens now is sent first, and the receiver of what follows.
    fn subscribe(&self) -> (Vec<Pushed>, broadcast::Receiver<Pushed>) {
        let kept = lock(&self.kept);
        let mut first = vec![self.graph.clone()];
        first.extend(kept.reports.iter().cloned());
        first.extend(kept.error.iter().cloned());
        (first, self.pushed.subscribe())
    }
}

/// The dashboard of `--ui`, served until dropped.
pub(crate) struct Dashboard {
    shared: Arc<Shared>,
    url: String,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Dashboard {
    /// Binds `given` (`[HOST:]PORT`) and serves the dashboard of `graph` there.
    pub(crate) fn bind(given: &str, graph: Graph) -> Result<Dashboard, Error> {
        let listener = bind(given)?;
        let cannot = |e: std::io::Error| Error::io(format!("--ui: cannot serve on {given}"), e);
        let address = listener.local_addr().map_err(cannot)?;
        listener.set_nonblocking(true).map_err(cannot)?;
        let graph = serde_json::to_string(&graph)
            .map_err(|e| Error::Internal(format!("cannot encode the job's graph: {e}")))?;
        let shared = Arc::new(Shared {
            graph: Pushed {
                name: "graph",
                data: graph.into(),
            },
            kept: Mutex::new(Kept {
                reports: VecDeque::new(),
                error: None,
            }),
            pushed: broadcast::channel(BACKLOG).0,
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(cannot)?;
        let mut app = Router::new();
        for (path, content_type, body) in ASSETS {
            app = app.route(path, get(move || async move { asset(content_type, body) }));
        }
        let app = app
            .route("/events", get(events))
            .with_state(Arc::clone(&shared));
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("tideflow-ui".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                        return;
                    };
                    let serve = std::pin::pin!(axum::serve(listener, app).into_future());
                    // Until stopped; the runtime's drop then ends the open connections.
                    let _ = futures_util::future::select(serve, stopped).await;
                });
            })
            .map_err(cannot)?;
        let url = match address.ip() {
            ip if ip.is_unspecified() => format!("http://localhost:{}/", address.port()),
            _ => format!("http://{address}/"),
        };
        Ok(Dashboard {
            shared,
            url,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Where the page is.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// Sends `progress` to the open pages and keeps it for the pages that open later.
    pub(crate) fn on_progress(&self, progress: &Progress) {
        // A report that cannot be encoded is not shown; the job goes on.
        if let Ok(json) = serde_json::to_string(progress) {
            self.shared.push(Pushed {
                name: "progress",
                data: json.into(),
            });
        }
    }

    /// Shows the error the job stopped with.
    pub(crate) fn on_error(&self, error: &Error) {
        let json = serde_json::json!({ "message": error.to_string() }).to_string();
        self.shared.push(Pushed {
            name: "error",
            data: json.into(),
        });
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        // Open pages get a moment to receive the final report (or the error) before the
        // connections close.
        if self.shared.pushed.receiver_count() > 0 {
            std::thread::sleep(FAREWELL);
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A static asset of the page.
fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
}

/// `GET /events`: what a page is sent first, then each event as it comes; a page too slow to
/// take them skips the ones it missed.
async fn events(
    State(shared): State<Arc<Shared>>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let (first, receiver) = shared.subscribe();
    let live = stream::unfold(receiver, |mut receiver| async move {
        loop {
            match receiver.recv().await {
                Ok(pushed) => return Some((pushed, receiver)),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    let events = stream::iter(first)
        .chain(live)
        .map(|pushed| Ok(Event::default().event(pushed.name).data(&*pushed.data)));
    Sse::new(events).keep_alive(KeepAlive::default())
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpStream;

    use super::*;
    use crate::ui::GraphNode;

    /// How long a test waits for an answer before it fails: a guard against a hang only.
    const GUARD: Duration = Duration::from_secs(60);

    fn dashboard() -> Dashboard {
        let graph = Graph {
            title: "test".into(),
            nodes: vec![GraphNode {
                kind: "source".into(),
                text: "generated".into(),
                state: None,
            }],
            notes: Vec::new(),
        };
        Dashboard::bind("127.0.0.1:0", graph).expect("binds")
    }

    fn connect(dashboard: &Dashboard, path: &str) -> TcpStream {
        let address = dashboard
            .url()
            .trim_start_matches("http://")
            .trim_end_matches('/');
        let mut stream = TcpStream::connect(address).expect("connects");
        stream.set_read_timeout(Some(GUARD)).expect("a timeout");
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
        )
        .expect("sends");
        stream
    }

    #[test]
    fn the_page_and_its_assets_are_served() {
        let dashboard = dashboard();
        for (path, expected) in [
            ("/", "<title>"),
            ("/dashboard.js", "EventSource"),
            ("/uPlot.iife.min.js", "uPlot"),
            ("/uPlot.min.css", ".uplot"),
            ("/dashboard.css", "body"),
        ] {
            let mut answer = String::new();
            connect(&dashboard, path)
                .read_to_string(&mut answer)
                .expect("an answer");
            assert!(
                answer.starts_with("HTTP/1.1 200 OK\r\n"),
                "{path}: {answer}"
            );
            assert!(answer.contains(expected), "{path}: {answer}");
        }
    }

    #[test]
    fn a_page_gets_the_graph_the_reports_so_far_then_each_new_one() {
        let dashboard = dashboard();
        let mut progress = crate::ui::tests::report(1);
        dashboard.on_progress(&progress);
        let mut lines = BufReader::new(connect(&dashboard, "/events")).lines();
        let mut next_data = |event: &str| loop {
            let line = lines.next().expect("an event").expect("a line");
            if line == format!("event: {event}") {
                let data = lines.next().expect("data").expect("a line");
                return data;
            }
        };
        assert!(next_data("graph").contains("generated"));
        assert!(next_data("progress").contains("\"batch\":1"));
        progress.batch = 2;
        dashboard.on_progress(&progress);
        assert!(next_data("progress").contains("\"batch\":2"));
        dashboard.on_error(&Error::Config("--input: gone".into()));
        assert!(next_data("error").contains("gone"));
    }
}

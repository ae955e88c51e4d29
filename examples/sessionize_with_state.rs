//! Sessions of a clickstream with `map_with_state`: Spark's `flatMapGroupsWithState` or Flink's
//! `KeyedProcessFunction` written by hand. Each user's state is the open session; every batch
//! of clicks moves its close timer to 30 s after the last click, and when the watermark passes
//! the timer the session is emitted with its pages in order. Clicks arrive up to 5 s out of
//! order; a click 30 s or more after the session's last one closes it and opens a new one.
//!
//! Run it with `cargo run --release --example sessionize_with_state`.

use std::time::Duration;

use tideflow::sink::MemorySink;
use tideflow::source::MemorySource;
use tideflow::{Config, StateContext, StateInput};

/// Sessions close after this much event time without a click.
const GAP: u64 = 30_000;

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq, Eq, PartialOrd, Ord)]
struct Click {
    ts: u64,
    user: String,
    page: String,
}

/// A user's open session.
#[derive(serde::Serialize, serde::Deserialize)]
struct Session {
    start: u64,
    last: u64,
    /// The time of the pending close timer.
    close_at: u64,
    pages: Vec<String>,
}

/// A closed session.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct SessionRow {
    user: String,
    start: u64,
    end: u64,
    pages: Vec<String>,
}

impl Session {
    fn close(self, user: &str) -> SessionRow {
        SessionRow {
            user: user.to_string(),
            start: self.start,
            end: self.last + GAP,
            pages: self.pages,
        }
    }
}

fn sessionize(
    user: &str,
    input: StateInput<'_, Click>,
    session: &mut Option<Session>,
    context: &mut StateContext<'_, SessionRow>,
) {
    match input {
        StateInput::Records(clicks) => {
            for click in clicks {
                if let Some(open) = session.as_mut() {
                    if click.time < open.last + GAP {
                        open.start = open.start.min(click.time);
                        open.last = open.last.max(click.time);
                        open.pages.push(click.data.page);
                        continue;
                    }
                    // A click after the gap closes the open session and starts a new one.
                    let closed = session.take().expect("a session is open");
                    context.delete_timer(closed.close_at);
                    context.emit_at(closed.last + GAP, closed.close(user));
                }
                *session = Some(Session {
                    start: click.time,
                    last: click.time,
                    close_at: 0,
                    pages: vec![click.data.page],
                });
            }
            if let Some(open) = session.as_mut() {
                context.delete_timer(open.close_at);
                open.close_at = (open.last + GAP).max(context.time());
                context.set_timer(open.close_at);
            }
        }
        StateInput::Timer(_) => {
            if let Some(closed) = session.take() {
                context.emit(closed.close(user));
            }
        }
        StateInput::Expired => {}
    }
}

/// `mm:ss` of a time in ms.
fn clock(ms: u64) -> String {
    format!("{:02}:{:02}", ms / 60_000, ms / 1_000 % 60)
}

fn main() -> Result<(), tideflow::Error> {
    // (seconds, user, page): ann browses twice, bob once with a click that arrives 4 s late,
    // cat once.
    let clicks: Vec<Click> = [
        (5, "ann", "home"),
        (9, "bob", "home"),
        (12, "ann", "search"),
        (20, "bob", "item/3"),
        (31, "ann", "item/7"),
        (16, "bob", "search"),
        (40, "cat", "home"),
        (58, "ann", "cart"),
        (61, "cat", "help"),
        (130, "ann", "home"),
        (141, "ann", "orders"),
        (150, "bob", "home"),
    ]
    .into_iter()
    .map(|(seconds, user, page)| Click {
        ts: seconds * 1_000,
        user: user.to_string(),
        page: page.to_string(),
    })
    .collect();

    let sessions = MemorySink::new();
    let output = sessions.clone();
    let report = tideflow::execute(Config::workers(2), move |flow| {
        flow.source(MemorySource::partitioned(clicks.clone(), 2))
            .with_event_time(|click| click.ts)
            .with_watermark(Duration::from_secs(5))
            .key_by(|click| click.user.clone())
            .map_with_state(|user, input, session, context| {
                sessionize(user, input, session, context)
            })
            .sink(output.clone());
        Ok(())
    })?;

    let mut sessions = sessions.take();
    sessions.sort_by(|a, b| (a.start, &a.user).cmp(&(b.start, &b.user)));
    println!("sessions (a gap of {} s closes one):", GAP / 1_000);
    for session in &sessions {
        println!(
            "  {:<4} {} - {}  {} click{}: {}",
            session.user,
            clock(session.start),
            clock(session.end),
            session.pages.len(),
            if session.pages.len() == 1 { "" } else { "s" },
            session.pages.join(" > ")
        );
    }
    println!(
        "{} clicks read, {} sessions, users held at most {} (now {})",
        report.records_in,
        report.records_out,
        report.state["map_with_state"].peak,
        report.state["map_with_state"].rows
    );
    Ok(())
}

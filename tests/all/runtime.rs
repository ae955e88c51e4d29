//! How jobs end: a failing source or a panicking closure stops every worker, returns an error
//! and never hangs.

use std::time::Duration;

use tideflow::sink::MemorySink;
use tideflow::source::{MemorySource, Source, SourceBatch, SourceStatus};
use tideflow::{Config, Error, ErrorKind, Window};

/// Emits 0..n on every call, then fails.
struct FailingSource {
    next: u64,
    fail_at: u64,
}

impl Source for FailingSource {
    type Item = u64;
    fn read(&mut self, batch: &mut SourceBatch<u64>) -> Result<SourceStatus, Error> {
        if self.next == self.fail_at {
            return Err(Error::Input {
                path: "numbers".into(),
                line: self.next,
                reason: "bad number".into(),
            });
        }
        batch.push(0, self.next);
        self.next += 1;
        Ok(SourceStatus::Ready)
    }
}

#[test]
fn a_source_error_stops_every_worker_without_closing_windows() {
    for workers in [1, 2, 4] {
        let sink = MemorySink::new();
        let output = sink.clone();
        let result = tideflow::execute(Config::workers(workers), move |flow| {
            flow.source(FailingSource {
                next: 0,
                fail_at: 500,
            })
            .with_event_time(|n| *n)
            .with_watermark(Duration::ZERO)
            .key_by(|n| n % 3)
            .window(Window::tumbling(Duration::from_secs(10))?)
            .aggregate(tideflow::aggregate::Count)
            .sink(output.clone());
            Ok(())
        });
        let error = result.expect_err("the source fails");
        assert_eq!(error.kind(), ErrorKind::User, "{workers} workers: {error}");
        assert_eq!(error.to_string(), "numbers:500: bad number");
        // The open window [0, 10s) was not flushed as if the input had ended.
        assert!(
            sink.is_empty(),
            "{workers} workers: rows written after a failure"
        );
    }
}

#[test]
fn a_panicking_closure_is_an_internal_error_not_a_hang() {
    for workers in [1, 2] {
        let result = tideflow::execute(Config::workers(workers), |flow| {
            flow.source(MemorySource::partitioned(
                (0..10_000u64).collect::<Vec<_>>(),
                4,
            ))
            .with_event_time(|n| *n)
            .with_watermark(Duration::ZERO)
            .map(|n| {
                if n == 7_777 {
                    panic!("user code failed on {n}")
                } else {
                    n
                }
            })
            .sink(MemorySink::new());
            Ok(())
        });
        let error = result.expect_err("the closure panics");
        assert_eq!(
            error.kind(),
            ErrorKind::Internal,
            "{workers} workers: {error}"
        );
        assert!(
            error.to_string().contains("user code failed on 7777"),
            "{error}"
        );
    }
}

#[test]
fn a_build_error_is_returned_before_anything_runs() {
    let result = tideflow::execute(Config::workers(2), |flow| {
        flow.source(MemorySource::new(vec![1u64]))
            .with_event_time(|n| *n)
            .with_watermark(Duration::ZERO)
            .key_by(|n| *n)
            .window(Window::tumbling(Duration::ZERO)?)
            .aggregate(tideflow::aggregate::Count)
            .sink(MemorySink::new());
        Ok(())
    });
    let error = result.expect_err("a zero-sized window is refused");
    assert_eq!(error.kind(), ErrorKind::User, "{error}");
    assert!(
        error
            .to_string()
            .contains("tumbling window size must be at least 1ms"),
        "{error}"
    );
}

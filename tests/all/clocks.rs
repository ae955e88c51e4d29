//! Quiet and broken clocks: the heartbeat closes windows on a quiet stream, an idle partition
//! stops holding the watermark back, and an event stamped far in the future neither advances the
//! watermark nor makes later events late.
//!
//! Timing is shared and slow at times on test machines, so these tests assert the order of what
//! happened (a row before the source finished) and generous upper bounds, never tight timings.
//! Every source ends on its own after a bounded quiet time, so no test can hang.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tideflow::aggregate::Count;
use tideflow::sink::{MemorySink, Sink};
use tideflow::source::{MemorySource, Source, SourceBatch, SourceStatus, WatermarkStrategy};
use tideflow::{Config, Error, Event, JobReport, Window};

/// What happened, in order, with when.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mark {
    /// The source emitted an event.
    Event,
    /// The source returned `Done`.
    Done,
    /// A window row reached the sink.
    Row,
}

#[derive(Clone, Default)]
struct Timeline(Arc<Mutex<Vec<(Mark, Instant)>>>);

impl Timeline {
    fn mark(&self, mark: Mark) {
        self.0.lock().unwrap().push((mark, Instant::now()));
    }

    fn marks(&self) -> Vec<(Mark, Instant)> {
        self.0.lock().unwrap().clone()
    }

    fn first(&self, mark: Mark) -> Option<Instant> {
        self.marks()
            .into_iter()
            .find(|(m, _)| *m == mark)
            .map(|(_, at)| at)
    }

    fn last(&self, mark: Mark) -> Option<Instant> {
        self.marks()
            .into_iter()
            .rev()
            .find(|(m, _)| *m == mark)
            .map(|(_, at)| at)
    }
}

/// Emits `(partition, event time)` pairs `pace` apart, then stays quiet (returning
/// `SourceStatus::Wait`) for `quiet_for`, then is done.
struct ScriptedSource {
    partitions: usize,
    events: VecDeque<(usize, u64)>,
    pace: Duration,
    quiet_for: Duration,
    next_at: Option<Instant>,
    timeline: Timeline,
}

impl ScriptedSource {
    fn new(partitions: usize, events: Vec<(usize, u64)>, timeline: &Timeline) -> Self {
        ScriptedSource {
            partitions,
            events: events.into(),
            pace: Duration::from_millis(10),
            quiet_for: Duration::from_secs(3),
            next_at: None,
            timeline: timeline.clone(),
        }
    }

    fn quiet_for(mut self, quiet_for: Duration) -> Self {
        self.quiet_for = quiet_for;
        self
    }
}

impl Source for ScriptedSource {
    type Item = u64;

    fn read(&mut self, batch: &mut SourceBatch<u64>) -> Result<SourceStatus, Error> {
        let now = Instant::now();
        let next_at = *self.next_at.get_or_insert(now);
        if now < next_at {
            return Ok(SourceStatus::Wait(next_at - now));
        }
        match self.events.pop_front() {
            Some((partition, time)) => {
                batch.push(partition, time);
                self.timeline.mark(Mark::Event);
                self.next_at = Some(now + self.pace);
                if self.events.is_empty() {
                    self.next_at = Some(now + self.quiet_for);
                }
                Ok(SourceStatus::Wait(self.pace))
            }
            None => {
                self.timeline.mark(Mark::Done);
                Ok(SourceStatus::Done)
            }
        }
    }

    fn partitions(&self) -> usize {
        self.partitions
    }
}

/// Marks each row that reaches it on the timeline.
struct Observer(Timeline);

impl<D: 'static> Sink<D> for Observer {
    fn write(&mut self, batch: &mut Vec<Event<D>>) -> Result<(), Error> {
        for _ in batch.drain(..) {
            self.0.mark(Mark::Row);
        }
        Ok(())
    }
}

/// Runs `source` keyed by one key through `window` with a count, returning the report and the
/// (window start, count) rows.
fn count_rows(
    source: ScriptedSource,
    strategy: WatermarkStrategy,
    window: Window,
) -> (JobReport, Vec<(u64, u64)>) {
    let source = Mutex::new(Some(source));
    let rows = MemorySink::new();
    let output = rows.clone();
    let report = tideflow::execute(Config::workers(1), move |flow| {
        let source = source.lock().unwrap().take().expect("one worker");
        flow.source(source)
            .with_event_time(|t| *t)
            .with_watermark(strategy)
            .key_by(|_| 0u64)
            .window(window)
            .aggregate(Count)
            .map(|row| (row.start, row.value))
            .sink(output.clone());
        Ok(())
    })
    .expect("the job runs");
    let mut rows = rows.take();
    rows.sort();
    (report, rows)
}

/// Like [`count_rows`], with every row also marked on the timeline as it reaches the sink.
fn observe_rows(
    source: ScriptedSource,
    strategy: WatermarkStrategy,
    window: Window,
    timeline: &Timeline,
) -> JobReport {
    let source = Mutex::new(Some(source));
    let timeline = timeline.clone();
    tideflow::execute(Config::workers(1), move |flow| {
        let source = source.lock().unwrap().take().expect("one worker");
        flow.source(source)
            .with_event_time(|t| *t)
            .with_watermark(strategy)
            .key_by(|_| 0u64)
            .window(window)
            .aggregate(Count)
            .sink(Observer(timeline.clone()));
        Ok(())
    })
    .expect("the job runs")
}

fn millis(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

#[test]
fn the_heartbeat_closes_a_session_while_the_stream_is_quiet() {
    let timeline = Timeline::default();
    let source = ScriptedSource::new(1, vec![(0, 1_000)], &timeline);
    let strategy = WatermarkStrategy::bounded_delay(Duration::ZERO).with_heartbeat(millis(50));
    let report = observe_rows(
        source,
        strategy,
        Window::session(millis(200)).unwrap(),
        &timeline,
    );
    let marks: Vec<Mark> = timeline.marks().into_iter().map(|(m, _)| m).collect();
    assert_eq!(marks, vec![Mark::Event, Mark::Row, Mark::Done], "{marks:?}");
    // (Gap + heartbeat is 250 ms, and the source stays quiet for 3 s: the order above is the
    // check, with no bound on how long the row took.)
    assert_eq!((report.records_out, report.late_dropped), (1, 0));
}

#[test]
fn without_the_heartbeat_a_quiet_session_closes_only_at_the_end() {
    let timeline = Timeline::default();
    let source = ScriptedSource::new(1, vec![(0, 1_000)], &timeline).quiet_for(millis(500));
    let strategy = WatermarkStrategy::bounded_delay(Duration::ZERO);
    let report = observe_rows(
        source,
        strategy,
        Window::session(millis(200)).unwrap(),
        &timeline,
    );
    let marks: Vec<Mark> = timeline.marks().into_iter().map(|(m, _)| m).collect();
    assert_eq!(marks, vec![Mark::Event, Mark::Done, Mark::Row], "{marks:?}");
    assert_eq!(report.records_out, 1);
}

/// Partition 0 sends 30 events 100 ms of event time apart; partition 1 sends nothing.
fn one_quiet_partition(timeline: &Timeline) -> ScriptedSource {
    let events = (0..30).map(|i| (0, i * 100)).collect();
    ScriptedSource::new(2, events, timeline)
}

#[test]
fn an_idle_partition_stops_holding_back_the_windows_of_the_active_one() {
    let timeline = Timeline::default();
    let strategy = WatermarkStrategy::bounded_delay(Duration::ZERO).with_idle_timeout(millis(100));
    let tumbling = Window::tumbling(Duration::from_secs(1)).unwrap();
    let report = observe_rows(
        one_quiet_partition(&timeline),
        strategy,
        tumbling,
        &timeline,
    );
    let first_row = timeline.first(Mark::Row).expect("rows");
    let done = timeline.first(Mark::Done).expect("the source ended");
    assert!(first_row < done, "{:?}", timeline.marks());
    // Windows [0, 1 s) and [1 s, 2 s) closed before the end; [2 s, 3 s) only at the end.
    let rows_before_done = timeline
        .marks()
        .iter()
        .filter(|(m, at)| *m == Mark::Row && *at < done)
        .count();
    assert_eq!(rows_before_done, 2, "{:?}", timeline.marks());
    assert_eq!((report.records_out, report.late_dropped), (3, 0));

    // The same counts as without the timeout: nothing of the active partition was late.
    let strategy = WatermarkStrategy::bounded_delay(Duration::ZERO).with_idle_timeout(millis(100));
    let tumbling = Window::tumbling(Duration::from_secs(1)).unwrap();
    let (_, rows) = count_rows(
        one_quiet_partition(&Timeline::default()).quiet_for(millis(300)),
        strategy,
        tumbling,
    );
    assert_eq!(rows, vec![(0, 10), (1_000, 10), (2_000, 10)]);
}

#[test]
fn without_an_idle_timeout_a_quiet_partition_holds_every_window_until_the_end() {
    let timeline = Timeline::default();
    let strategy = WatermarkStrategy::bounded_delay(Duration::ZERO);
    let tumbling = Window::tumbling(Duration::from_secs(1)).unwrap();
    let source = one_quiet_partition(&timeline).quiet_for(millis(300));
    let report = observe_rows(source, strategy, tumbling, &timeline);
    let first_row = timeline.first(Mark::Row).expect("rows");
    let done = timeline.last(Mark::Done).expect("the source ended");
    assert!(done < first_row, "{:?}", timeline.marks());
    assert_eq!(report.records_out, 3);
}

/// Now, in ms since the epoch.
fn wall_ms() -> u64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    u64::try_from(since.as_millis()).unwrap()
}

/// On-time events around now with one an hour ahead in the middle, counted in 10 s windows.
fn with_one_future_event(strategy: WatermarkStrategy) -> (JobReport, Vec<(u64, u64)>) {
    let now = wall_ms();
    let base = now - now % 10_000;
    let future = now + 3_600_000;
    let times = vec![base + 1, base + 2, future, base + 3, base + 4];
    let rows = MemorySink::new();
    let output = rows.clone();
    let report = tideflow::execute(Config::workers(1), move |flow| {
        flow.source(MemorySource::new(times.clone()))
            .with_event_time(|t| *t)
            .with_watermark(strategy)
            .key_by(|_| 0u64)
            .window(Window::tumbling(Duration::from_secs(10))?)
            .aggregate(Count)
            .map(|row| (row.start, row.value))
            .sink(output.clone());
        Ok(())
    })
    .expect("the job runs");
    let mut rows = rows.take();
    rows.sort();
    let expected_future_window = future - future % 10_000;
    assert_eq!(rows.last().map(|r| r.0), Some(expected_future_window));
    (report, rows)
}

#[test]
fn an_event_far_in_the_future_does_not_make_later_events_late() {
    let strategy =
        WatermarkStrategy::bounded_delay(Duration::ZERO).with_max_future_skew(millis(1_000));
    let (report, rows) = with_one_future_event(strategy);
    assert_eq!(rows.iter().map(|r| r.1).collect::<Vec<_>>(), vec![4, 1]);
    assert_eq!((report.late_dropped, report.future_events), (0, 1));

    // Without the guard the future event drags the watermark an hour ahead.
    let (report, rows) = with_one_future_event(WatermarkStrategy::bounded_delay(Duration::ZERO));
    assert_eq!(rows.iter().map(|r| r.1).collect::<Vec<_>>(), vec![2, 1]);
    assert_eq!((report.late_dropped, report.future_events), (2, 0));
}

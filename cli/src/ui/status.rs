//! The status line `tideflow run` draws on standard error when it is a terminal (indicatif):
//! records read, rate, watermark, event-time lag and late records, and for a bounded input how
//! much of it is read and an estimate of the time left; redrawn at each progress report and
//! cleared when the job ends.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tideflow::Progress;

use super::is_path;

/// How much of the start of an input file is read to estimate its records per byte.
const SAMPLE_BYTES: u64 = 1 << 20;

/// How many records a bounded input holds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct InputSize {
    /// The records, or an estimate.
    records: u64,
    /// Whether `records` is exact (a `rate:...,count=C` input) or estimated from the size of
    /// the files and the records per byte of their starts.
    exact: bool,
}

impl InputSize {
    /// The size of `input` (as `--input` gives it), if it is bounded and can be told: a
    /// `rate:` input with a `count`, or JSON lines or CSV files not `--watch`ed.
    pub(crate) fn of(input: &Path, watched: bool) -> Option<InputSize> {
        let text = input.to_string_lossy();
        if let Some(fields) = text.strip_prefix("rate:") {
            let count = fields
                .split(',')
                .find_map(|field| field.strip_prefix("count="))?;
            return Some(InputSize {
                records: count.parse().ok()?,
                exact: true,
            });
        }
        if watched || !is_path(input) {
            return None;
        }
        let files: Vec<std::path::PathBuf> = if input.is_dir() {
            let mut files: Vec<_> = std::fs::read_dir(input)
                .ok()?
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|path| path.is_file())
                .collect();
            files.sort();
            files
        } else {
            vec![input.to_path_buf()]
        };
        let mut records = 0.0;
        for file in &files {
            records += estimated_records(file)?;
        }
        Some(InputSize {
            records: records.round() as u64,
            exact: false,
        })
    }
}

/// The records of a JSON lines or CSV file (less a CSV header): its lines, exact if it is no
/// longer than the sample, else estimated from the lines per byte of its first
/// [`SAMPLE_BYTES`]. `None` for another format.
fn estimated_records(path: &Path) -> Option<f64> {
    let extension = path.extension()?.to_str()?.to_ascii_lowercase();
    let header = match extension.as_str() {
        "jsonl" | "ndjson" | "json" => 0.0,
        "csv" => 1.0,
        _ => return None,
    };
    let file = File::open(path).ok()?;
    let length = file.metadata().ok()?.len();
    let mut sample = Vec::new();
    file.take(SAMPLE_BYTES).read_to_end(&mut sample).ok()?;
    if sample.is_empty() {
        return Some(0.0);
    }
    // A last line without its line break is a line too.
    let lines = memchr::memchr_iter(b'\n', &sample).count() as f64
        + f64::from(u8::from(!sample.ends_with(b"\n")));
    let lines = lines * length as f64 / sample.len() as f64;
    Some((lines - header).max(0.0))
}

/// The status line, drawn on standard error.
pub(crate) struct StatusLine {
    bar: ProgressBar,
    size: Option<InputSize>,
}

impl StatusLine {
    /// A status line for an input of `size`, drawn at the first report.
    pub(crate) fn new(size: Option<InputSize>) -> StatusLine {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{wide_msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        StatusLine { bar, size }
    }

    /// Shows `progress`; the final report clears the line.
    pub(crate) fn on_progress(&self, progress: &Progress) {
        if progress.is_final {
            self.clear();
        } else {
            self.bar.set_message(status_text(progress, self.size));
        }
    }

    /// Clears the line for good.
    pub(crate) fn clear(&self) {
        self.bar.finish_and_clear();
    }
}

/// The line for `progress` on an input of `size`: what is read first, so that a narrow
/// terminal, which cuts the line, keeps it.
fn status_text(progress: &Progress, size: Option<InputSize>) -> String {
    let rate = progress.input_rows_per_sec;
    let mut text = String::from("tideflow: ");
    if let Some(size) = size.filter(|size| size.records > 0) {
        let about = if size.exact { "" } else { "~" };
        let read = progress.input_rows.min(size.records);
        let fraction = read as f64 / size.records as f64;
        text.push_str(&format!("{about}{:.0}% read", fraction * 100.0));
        if rate > 0.0 {
            let left = (size.records - read) as f64 / rate;
            text.push_str(&format!(", {about}{} left", seconds(left)));
        }
        text.push_str("; ");
    }
    text.push_str(&format!(
        "{} records read, {}/s",
        grouped(progress.input_rows),
        grouped(rate.round() as u64)
    ));
    match progress.watermark {
        Some(watermark) => {
            let time = i64::try_from(watermark)
                .ok()
                .and_then(chrono::DateTime::from_timestamp_millis)
                .map_or_else(
                    || watermark.to_string(),
                    |t| t.format("%Y-%m-%d %H:%M:%S%.3f").to_string(),
                );
            text.push_str(&format!(", watermark {time}"));
        }
        None => text.push_str(", no watermark yet"),
    }
    if let Some(lag) = progress.event_time_lag_ms {
        text.push_str(&format!(", lag {}", seconds(lag as f64 / 1e3)));
    }
    let late = progress.late_rows_dropped + progress.late_rows_routed;
    text.push_str(&format!(", {} late", grouped(late)));
    text
}

/// `n` with its thousands separated by commas.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut text = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            text.push(',');
        }
        text.push(digit);
    }
    text
}

/// A duration of `s` seconds, in its largest unit: `850ms`, `12.3s`, `4m05s`, `2h10m`.
fn seconds(s: f64) -> String {
    let sign = if s < 0.0 { "-" } else { "" };
    let s = s.abs();
    if s < 1.0 {
        format!("{sign}{:.0}ms", s * 1e3)
    } else if s < 60.0 {
        format!("{sign}{s:.1}s")
    } else if s < 3600.0 {
        format!("{sign}{}m{:02}s", (s / 60.0) as u64, s as u64 % 60)
    } else {
        format!("{sign}{}h{:02}m", (s / 3600.0) as u64, (s as u64 / 60) % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ui::tests::report;

    #[test]
    fn the_line_shows_the_figures_and_the_time_left_of_a_bounded_input() {
        let mut progress = report(3);
        progress.input_rows = 2_500;
        progress.input_rows_per_sec = 500.0;
        progress.watermark = Some(1_700_000_000_000);
        progress.event_time_lag_ms = Some(1_500);
        progress.late_rows_dropped = 7;
        let size = InputSize {
            records: 10_000,
            exact: true,
        };
        assert_eq!(
            status_text(&progress, Some(size)),
            "tideflow: 25% read, 15.0s left; 2,500 records read, 500/s, watermark 2023-11-14 22:13:20.000, lag 1.5s, 7 late"
        );
        let estimated = InputSize {
            exact: false,
            ..size
        };
        assert!(status_text(&progress, Some(estimated))
            .starts_with("tideflow: ~25% read, ~15.0s left; "));
        assert!(status_text(&progress, None).ends_with(", 7 late"));
    }

    #[test]
    fn numbers_and_durations_read_easily() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(1_234_567), "1,234,567");
        assert_eq!(seconds(0.85), "850ms");
        assert_eq!(seconds(245.0), "4m05s");
        assert_eq!(seconds(7_800.0), "2h10m");
        assert_eq!(seconds(-2.0), "-2.0s");
    }

    #[test]
    fn the_size_of_an_input_is_counted_or_estimated() {
        assert_eq!(
            InputSize::of(Path::new("rate:rows_per_sec=10,count=500"), false),
            Some(InputSize {
                records: 500,
                exact: true
            })
        );
        assert_eq!(
            InputSize::of(Path::new("rate:rows_per_sec=10"), false),
            None
        );
        assert_eq!(InputSize::of(Path::new("tcp://localhost:9"), false), None);
        let dir = tempfile::tempdir().expect("a directory");
        std::fs::write(dir.path().join("a.csv"), "ts,key\n1,a\n2,b\n3,c\n").expect("written");
        std::fs::write(dir.path().join("b.jsonl"), "{}\n{}").expect("written");
        let size = InputSize::of(dir.path(), false).expect("a size");
        assert_eq!(size.records, 5);
        assert_eq!(InputSize::of(dir.path(), true), None);
    }
}

//! The crash tests' harness: a started `tideflow` process (`Proc`), what it did (`Ran`), the
//! test job and its commands (`Job`), output comparison and the checkpoint directory's
//! complete snapshots.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The fault-injection variable (`src/checkpoint/fault.rs`).
pub(crate) const FAULT_VAR: &str = "TIDEFLOW_FAULT";
/// Only to avoid hanging forever: a run takes a few seconds.
pub(crate) const RUN_DEADLINE: Duration = Duration::from_secs(60);
/// The epoch of the final snapshot (the end of the input).
pub(crate) const FINAL_EPOCH: u64 = u64::MAX;

/// A started `tideflow` process; killed if the test fails while it runs.
pub(crate) struct Proc {
    pub(crate) child: Child,
    pub(crate) stderr: Option<JoinHandle<String>>,
    pub(crate) started: Instant,
    pub(crate) what: String,
}

/// A process that exited (or was killed).
pub(crate) struct Ran {
    pub(crate) status: ExitStatus,
    pub(crate) stderr: String,
    pub(crate) what: String,
}

impl Proc {
    /// Starts `tideflow args`, with `TIDEFLOW_FAULT=fault` if given (and never inherited).
    pub(crate) fn start(args: &[String], fault: Option<&str>) -> Proc {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tideflow"));
        command
            .args(args)
            .current_dir(crate::support::ROOT)
            .env_remove(FAULT_VAR)
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        if let Some(fault) = fault {
            command.env(FAULT_VAR, fault);
        }
        Proc::spawn(command, describe(args, fault))
    }

    /// Starts `command` (which runs `tideflow`), its stderr piped and read, described by
    /// `what` in messages.
    pub(crate) fn spawn(mut command: Command, what: String) -> Proc {
        let mut child = command
            .stderr(Stdio::piped())
            .spawn()
            .expect("the tideflow binary starts");
        let mut pipe = child.stderr.take().expect("a piped stderr");
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        });
        Proc {
            child,
            stderr: Some(stderr),
            started: Instant::now(),
            what,
        }
    }

    /// Waits until the process exits or `limit` has passed since its start; whether it exited.
    pub(crate) fn exited_within(&mut self, limit: Duration) -> bool {
        loop {
            if self.child.try_wait().expect("wait for tideflow").is_some() {
                return true;
            }
            if self.started.elapsed() >= limit {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits for the process to exit (failing the test after [`RUN_DEADLINE`]).
    pub(crate) fn finish(mut self) -> Ran {
        assert!(
            self.exited_within(RUN_DEADLINE),
            "did not exit within {RUN_DEADLINE:?}: {}",
            self.what
        );
        self.collect()
    }

    /// Waits until the checkpoint directory `ck` holds `count` complete snapshots (not the
    /// final one), failing the test after [`RUN_DEADLINE`]; false if the process exited first.
    pub(crate) fn wait_for_snapshots(&mut self, ck: &Path, count: usize) -> bool {
        loop {
            let snapshots = complete_snapshots(ck);
            if snapshots.iter().filter(|(e, _)| *e != FINAL_EPOCH).count() >= count {
                return true;
            }
            if self.child.try_wait().expect("wait for tideflow").is_some() {
                return false;
            }
            assert!(
                self.started.elapsed() < RUN_DEADLINE,
                "no {count} snapshot(s) within {RUN_DEADLINE:?}: {}",
                self.what
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Sends SIGKILL `delay` after the start, unless the process has exited by then; returns
    /// what it did and whether it was killed.
    pub(crate) fn kill_after(mut self, delay: Duration) -> (Ran, bool) {
        let exited = self.exited_within(delay);
        if !exited {
            // `Child::kill` is SIGKILL on Unix.
            self.child.kill().expect("SIGKILL tideflow");
        }
        (self.collect(), !exited)
    }

    pub(crate) fn collect(&mut self) -> Ran {
        let status = self.child.wait().expect("wait for tideflow");
        let stderr = self
            .stderr
            .take()
            .map(|reader| reader.join().expect("the stderr reader"))
            .unwrap_or_default();
        Ran {
            status,
            stderr,
            what: self.what.clone(),
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // Already reaped after `collect`: then this does nothing.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Ran {
    /// Asserts the run succeeded without a panic.
    pub(crate) fn succeeded(self) -> Ran {
        assert!(
            self.status.success(),
            "failed ({}): {}\nstderr:\n{}",
            self.status,
            self.what,
            self.stderr
        );
        self.no_panic()
    }

    /// Asserts the run crashed at an injected fault.
    pub(crate) fn crashed_at_fault(self) -> Ran {
        assert!(
            !self.status.success() && self.stderr.contains("TIDEFLOW_FAULT: crashing"),
            "expected a crash at the fault ({}): {}\nstderr:\n{}",
            self.status,
            self.what,
            self.stderr
        );
        self.no_panic()
    }

    pub(crate) fn no_panic(self) -> Ran {
        assert!(
            !self.stderr.contains("panicked") && !self.stderr.contains("backtrace"),
            "{}\nstderr:\n{}",
            self.what,
            self.stderr
        );
        self
    }

    /// Asserts the run failed with an exit code (not a signal) and one error line (besides
    /// warnings), every line `tideflow: `; returns the error line.
    pub(crate) fn one_error_line(&self) -> String {
        let context = format!("{} ({})\nstderr:\n{}", self.what, self.status, self.stderr);
        let code = self.status.code();
        assert!(matches!(code, Some(c) if c != 0), "{context}");
        assert!(
            !self.stderr.contains("panicked") && !self.stderr.contains("backtrace"),
            "{context}"
        );
        assert!(
            self.stderr.lines().all(|l| l.starts_with("tideflow: ")),
            "{context}"
        );
        let errors: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| !l.starts_with("tideflow: warning: "))
            .collect();
        assert_eq!(errors.len(), 1, "not one error line: {context}");
        errors[0].to_string()
    }

    pub(crate) fn resumed(&self) -> bool {
        self.stderr.contains("resuming from the snapshot")
    }
}

/// The command line, for messages (and to replay by hand).
pub(crate) fn describe(args: &[String], fault: Option<&str>) -> String {
    let fault = fault.map_or(String::new(), |f| format!("{FAULT_VAR}={f} "));
    format!("{fault}tideflow {}", args.join(" "))
}

/// A `tideflow run` query on the rate input.
pub(crate) struct Job {
    /// The arguments without the output files, checkpoint flags and --workers.
    pub(crate) query: Vec<String>,
    /// Whether it writes a --late-output file too (whose line order depends on timing even
    /// without crashes: compared sorted).
    pub(crate) late: bool,
    /// Whether its output's line order depends on timing (update mode): compared sorted.
    pub(crate) unordered: bool,
}

impl Job {
    pub(crate) fn new(rate: &str, rest: &[&str]) -> Job {
        let mut query: Vec<String> = [
            "run",
            "--input",
            rate,
            "--time-field",
            "ts",
            "--key-field",
            "key",
            "--agg",
            "count",
            "--agg",
            "sum:value",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        query.extend(rest.iter().map(|s| s.to_string()));
        Job {
            query,
            late: false,
            unordered: false,
        }
    }

    pub(crate) fn with_late_output(mut self) -> Job {
        self.late = true;
        self
    }

    pub(crate) fn unordered(mut self) -> Job {
        self.unordered = true;
        self
    }

    /// Its arguments writing `dir/NAME.jsonl` (and `dir/NAME-late.jsonl`) on `workers`.
    pub(crate) fn args(&self, dir: &Path, name: &str, workers: u16) -> Vec<String> {
        let mut args = self.query.clone();
        args.push("--output".into());
        args.push(path_arg(&dir.join(format!("{name}.jsonl"))));
        if self.late {
            args.push("--late-output".into());
            args.push(path_arg(&dir.join(format!("{name}-late.jsonl"))));
        }
        args.push("--workers".into());
        args.push(workers.to_string());
        args
    }

    /// The uninterrupted run writing `dir/ref.jsonl`, started (it runs beside the crashes).
    pub(crate) fn start_reference(&self, dir: &Path, workers: u16) -> Proc {
        Proc::start(&self.args(dir, "ref", workers), None)
    }

    /// The checkpointed command writing `dir/out.jsonl`, with checkpoints in `dir/ck` every
    /// `interval`, then `extra`.
    pub(crate) fn checkpointed(
        &self,
        dir: &Path,
        workers: u16,
        interval: &str,
        extra: &[&str],
    ) -> Vec<String> {
        let mut args = self.args(dir, "out", workers);
        args.extend(
            [
                "--checkpoint-dir",
                &path_arg(&dir.join("ck")),
                "--snapshot-interval",
                interval,
            ]
            .iter()
            .map(|s| s.to_string()),
        );
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    }

    /// Asserts the output in `dir` equals the reference in `reference_dir`.
    pub(crate) fn assert_reference_output(&self, reference_dir: &Path, dir: &Path) {
        compare(
            &reference_dir.join("ref.jsonl"),
            &dir.join("out.jsonl"),
            self.unordered,
        );
        if self.late {
            compare(
                &reference_dir.join("ref-late.jsonl"),
                &dir.join("out-late.jsonl"),
                true,
            );
        }
    }
}

pub(crate) fn path_arg(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

pub(crate) fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Asserts `actual` holds what `expected` holds: the same bytes, or the same lines in any
/// order if `sorted`. On a difference, names the first differing line.
pub(crate) fn compare(expected: &Path, actual: &Path, sorted: bool) {
    let want = String::from_utf8(read(expected)).expect("UTF-8 output");
    let got = String::from_utf8(read(actual)).expect("UTF-8 output");
    assert!(
        !want.is_empty(),
        "{}: the reference is empty",
        expected.display()
    );
    let lines = |text: &str| {
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        if sorted {
            lines.sort();
        }
        lines
    };
    if sorted && lines(&want) == lines(&got) || !sorted && want == got {
        return;
    }
    let (want_lines, got_lines) = (lines(&want), lines(&got));
    let first = want_lines
        .iter()
        .zip(&got_lines)
        .position(|(w, g)| w != g)
        .unwrap_or(want_lines.len().min(got_lines.len()));
    panic!(
        "{} differs from the uninterrupted run's {} ({}): {} lines vs {}; first difference at {}line {}: expected {:?}, got {:?}",
        actual.display(),
        expected.display(),
        if sorted { "lines compared sorted" } else { "bytes compared" },
        got_lines.len(),
        want_lines.len(),
        if sorted { "sorted " } else { "" },
        first + 1,
        want_lines.get(first),
        got_lines.get(first),
    );
}

/// The complete snapshots (with a manifest) in `ck`, newest first: (epoch, directory).
pub(crate) fn complete_snapshots(ck: &Path) -> Vec<(u64, PathBuf)> {
    let mut found: Vec<((u64, u64), PathBuf)> = Vec::new();
    let Ok(entries) = std::fs::read_dir(ck) else {
        return Vec::new();
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix("snapshot-") else {
            continue;
        };
        let (epoch, execution) = rest.split_once("-e").expect("snapshot-EPOCH-eEXECUTION");
        if path.join("MANIFEST.json").exists() {
            found.push((
                (
                    epoch.parse::<u64>().unwrap(),
                    execution.parse::<u64>().unwrap(),
                ),
                path,
            ));
        }
    }
    found.sort_by_key(|b| std::cmp::Reverse(b.0));
    found
        .into_iter()
        .map(|((epoch, _), path)| (epoch, path))
        .collect()
}

//! `tideflow cluster --local N --restart-attempts K`: a process SIGKILLed while the job runs is
//! logged with its cause and the whole cluster is started again, and the job still ends with
//! the output of an uninterrupted 1-process run; attempts run out with "gave up"; a user error
//! is not restarted; flags are checked. With a checkpoint directory (once clusters take
//! snapshots), a random process is killed at seeded random moments, at least 5 times.
//!
//! The launcher's processes are found from its pid (`/proc/PID/task/*/children`, their
//! `--process-id` in `/proc/PID/cmdline`); a process is "running" once its progress reports
//! (`--progress -`, on the shared standard error) follow the last restart.

use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::crash::harness::{path_arg, Job};
use crate::crash::{crash_seed, rate, SEED_VAR};
use crate::support::{fails, query_args, write, SplitMix64, ROOT};

/// Only to avoid hanging forever: a launcher's wait or a whole job with its restarts.
const DEADLINE: Duration = Duration::from_secs(180);

/// A running `tideflow cluster` launcher, its standard error (the processes' too) read as it
/// comes. Dropping it stops the launcher (SIGSTOP, so that it starts nothing more), kills its
/// processes, then the launcher.
struct Launcher {
    child: Child,
    stderr: Arc<Mutex<String>>,
    reader: Option<JoinHandle<()>>,
    what: String,
}

impl Launcher {
    fn start(args: &[String]) -> Launcher {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tideflow"))
            .args(args)
            .current_dir(ROOT)
            .env_remove("TIDEFLOW_FAULT")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the tideflow binary starts");
        let mut pipe = child.stderr.take().expect("a piped stderr");
        let stderr = Arc::new(Mutex::new(String::new()));
        let into = Arc::clone(&stderr);
        let reader = std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while let Ok(read) = pipe.read(&mut buffer) {
                if read == 0 {
                    break;
                }
                let text = String::from_utf8_lossy(&buffer[..read]);
                into.lock().unwrap().push_str(&text);
            }
        });
        Launcher {
            child,
            stderr,
            reader: Some(reader),
            what: format!("tideflow {}", args.join(" ")),
        }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    fn exited(&mut self) -> bool {
        self.child.try_wait().expect("wait for tideflow").is_some()
    }

    /// The launcher's running processes: (process index, pid), by index.
    fn processes(&self) -> Vec<(usize, libc::pid_t)> {
        let mut found = children(self.child.id())
            .into_iter()
            .filter_map(|pid| Some((process_id(pid)?, pid)))
            .collect::<Vec<_>>();
        found.sort();
        found
    }

    /// Waits until `ready(stderr)` holds; false if the launcher exited first.
    fn wait_for(&mut self, what: &str, ready: impl Fn(&str) -> bool) -> bool {
        let start = Instant::now();
        loop {
            if ready(&self.stderr()) {
                return true;
            }
            if self.exited() {
                return ready(&self.stderr());
            }
            assert!(
                start.elapsed() < DEADLINE,
                "no {what} within {DEADLINE:?}: {}\nstderr:\n{}",
                self.what,
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until the processes of the current run report progress (two reports since the
    /// last restart); false if the launcher exited first.
    fn wait_running(&mut self) -> bool {
        self.wait_for("progress from the cluster's processes", |stderr| {
            let since = stderr.rfind("restarting all").unwrap_or(0);
            stderr[since..].matches("\"batch\":").count() >= 2
        })
    }

    /// SIGKILLs process `process` of the current run; false if it was not running.
    fn kill(&self, process: usize) -> bool {
        let Some(&(_, pid)) = self.processes().iter().find(|(p, _)| *p == process) else {
            return false;
        };
        // SAFETY: kill(2) with a pid read from /proc and a valid signal number.
        unsafe { libc::kill(pid, libc::SIGKILL) == 0 }
    }

    /// Waits for the launcher to exit (failing the test after [`DEADLINE`]): its status and
    /// standard error.
    fn finish(mut self) -> (ExitStatus, String) {
        let start = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait for tideflow") {
                break status;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "did not exit within {DEADLINE:?}: {}\nstderr:\n{}",
                self.what,
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        if let Some(reader) = self.reader.take() {
            reader.join().expect("the stderr reader");
        }
        let stderr = self.stderr();
        assert!(
            !stderr.contains("panicked") && !stderr.contains("backtrace"),
            "{}\nstderr:\n{stderr}",
            self.what
        );
        (status, stderr)
    }
}

impl Drop for Launcher {
    fn drop(&mut self) {
        if self.exited() {
            return;
        }
        let launcher = libc::pid_t::try_from(self.child.id()).expect("a pid");
        // SAFETY: kill(2) with the pids of the launcher this test started and its processes.
        unsafe {
            libc::kill(launcher, libc::SIGSTOP);
            for pid in children(self.child.id()) {
                libc::kill(pid, libc::SIGKILL);
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The children of process `pid`, from `/proc/PID/task/*/children`.
fn children(pid: u32) -> Vec<libc::pid_t> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|list| {
            list.split_whitespace()
                .filter_map(|pid| pid.parse().ok())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The `--process-id` of a running `tideflow run` process (none for a process that exited).
fn process_id(pid: libc::pid_t) -> Option<usize> {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<String> = cmdline
        .split(|&b| b == 0)
        .map(|arg| String::from_utf8_lossy(arg).into_owned())
        .collect();
    let at = args.iter().position(|arg| arg == "--process-id")?;
    args.get(at + 1)?.parse().ok()
}

/// `tideflow cluster --local 2` with `restart` flags, running `run` (which starts with `run`)
/// with progress reports on standard error every 100 ms.
fn cluster(restart: &[&str], run: &[String]) -> Vec<String> {
    let mut args: Vec<String> = ["cluster", "--local", "2"]
        .iter()
        .chain(restart)
        .chain(&["--"])
        .map(|s| s.to_string())
        .collect();
    args.extend(run.iter().cloned());
    args.extend(["--progress", "-", "--progress-interval", "100ms"].map(String::from));
    args
}

/// The number of restarts the launcher logged.
fn restarts(stderr: &str) -> usize {
    stderr.matches("; restarting all ").count()
}

fn tumbling() -> Job {
    Job::new(
        &rate(50, 60_000, 41, 20),
        &["--watermark-delay", "50ms", "--window", "tumbling:100ms"],
    )
}

#[test]
fn a_killed_process_restarts_the_cluster_from_the_beginning_to_the_uninterrupted_output() {
    let dir = tempfile::tempdir().unwrap();
    let job = tumbling();
    let reference = crate::crash::harness::Proc::start(&job.args(dir.path(), "ref", 1), None);
    let args = cluster(
        &["--restart-attempts", "3", "--restart-delay", "100ms"],
        &job.args(dir.path(), "out", 1),
    );
    let mut launcher = Launcher::start(&args);
    assert!(launcher.wait_running(), "the job ended before it ran");
    assert!(launcher.kill(1), "process 1 was not running");
    let (status, stderr) = launcher.finish();
    assert!(status.success(), "{status}\nstderr:\n{stderr}");
    assert!(
        stderr.contains(
            "tideflow cluster: process 1 was killed by signal 9 (SIGKILL); restarting all 2 \
             processes (restart 1 of 3) in 100ms"
        ),
        "{stderr}"
    );
    assert_eq!(restarts(&stderr), 1, "{stderr}");
    assert!(
        stderr.contains("tideflow cluster: finished after 1 restart\n"),
        "{stderr}"
    );
    reference.finish().succeeded();
    job.assert_reference_output(dir.path(), dir.path());
}

#[test]
fn a_cluster_that_keeps_failing_gives_up_after_its_restart_attempts() {
    let dir = tempfile::tempdir().unwrap();
    let args = cluster(
        &["--restart-attempts", "1", "--restart-delay", "0ms"],
        &tumbling().args(dir.path(), "out", 1),
    );
    let mut launcher = Launcher::start(&args);
    for kill in 0..2 {
        assert!(launcher.wait_running(), "the job ended before kill {kill}");
        // Process 0, which writes the output.
        assert!(launcher.kill(0), "process 0 was not running");
        if kill == 0 {
            assert!(launcher.wait_for("a restart", |stderr| restarts(stderr) == 1));
        }
    }
    let (status, stderr) = launcher.finish();
    assert_eq!(status.code(), Some(3), "{stderr}");
    assert_eq!(restarts(&stderr), 1, "{stderr}");
    assert!(
        stderr.contains(
            "tideflow: cluster: process 0 of 2 was killed by signal 9 (SIGKILL); gave up after \
             1 restart\n"
        ),
        "{stderr}"
    );
}

#[test]
fn a_user_error_is_not_restarted() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input");
    std::fs::create_dir(&input).unwrap();
    for file in 0..2 {
        let mut lines = String::new();
        for i in 0..2_000 {
            lines.push_str(&format!("{{\"ts\":{i},\"k\":\"u{}\"}}\n", i % 7));
            if file == 1 && i == 1_500 {
                lines.push_str("{not json\n");
            }
        }
        write(&input, &format!("part{file}.jsonl"), &lines);
    }
    let output = path_arg(&dir.path().join("out.jsonl"));
    let input = path_arg(&input);
    let mut args = vec!["cluster", "--local", "2", "--restart-attempts", "3", "--"];
    args.extend(query_args(
        &input,
        &[
            "--window",
            "tumbling:100ms",
            "--agg",
            "count",
            "--output",
            &output,
        ],
    ));
    let args: Vec<String> = args.into_iter().map(String::from).collect();
    let (status, stderr) = Launcher::start(&args).finish();
    assert_eq!(status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("part1.jsonl:1502"), "{stderr}");
    assert!(
        stderr.contains("exited with code 2; not restarted: a user error"),
        "{stderr}"
    );
    assert_eq!(restarts(&stderr), 0, "{stderr}");
}

#[test]
fn a_graceful_stop_of_the_launcher_is_not_restarted() {
    let dir = tempfile::tempdir().unwrap();
    let args = cluster(
        &["--restart-attempts", "3"],
        &tumbling().args(dir.path(), "out", 1),
    );
    let mut launcher = Launcher::start(&args);
    assert!(launcher.wait_running(), "the job ended before it ran");
    let pid = libc::pid_t::try_from(launcher.child.id()).unwrap();
    // SAFETY: kill(2) with the pid of the launcher this test started.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    let (status, stderr) = launcher.finish();
    assert_eq!(status.code(), Some(143), "{stderr}");
    assert!(
        stderr.matches("stopped by SIGTERM").count() >= 2,
        "{stderr}"
    );
    assert_eq!(restarts(&stderr), 0, "{stderr}");
    assert!(
        stderr.contains("tideflow cluster: stopped after 0 restarts\n"),
        "{stderr}"
    );
}

#[test]
fn restart_flags_are_checked() {
    let run = ["--", "--input", "x.jsonl", "--time-field", "ts"];
    let with = |flags: &[&'static str]| -> Vec<&'static str> {
        let mut args = vec!["cluster", "--local", "2"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&run);
        args
    };
    for (flags, named) in [
        (vec!["--restart-delay", "1s"], "--restart-delay"),
        (
            vec!["--restart-attempts", "2", "--restart-delay", "5"],
            "--restart-delay",
        ),
        (
            vec!["--restart-attempts", "2", "--restart-delay", "1 second"],
            "--restart-delay",
        ),
        (vec!["--restart-attempts", "many"], "--restart-attempts"),
    ] {
        let line = fails(&with(&flags), 2);
        assert!(line.contains(named), "{flags:?}: {line}");
    }
}

/// SIGKILLs a random process of `job`'s `cluster --local 2` (2 workers each, a checkpoint
/// directory, 10 restart attempts) at seeded random moments, 5 times, then lets it finish by
/// itself; its committed output must equal a 1-process uninterrupted run's.
fn killed_five_times(label: &str, job: &Job, case: u64) {
    let seed = crash_seed();
    eprintln!("{label}: crash seed {seed} (replay with {SEED_VAR}={seed})");
    let mut rng = SplitMix64(seed ^ case.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let dir = tempfile::tempdir().unwrap();
    let reference = job.start_reference(dir.path(), 1);
    let args = cluster(
        &["--restart-attempts", "10", "--restart-delay", "100ms"],
        &job.checkpointed(dir.path(), 2, "200ms", &[]),
    );
    eprintln!("{label}: tideflow {}", args.join(" "));
    let mut launcher = Launcher::start(&args);
    for kill in 1..=5 {
        assert!(
            launcher.wait_running(),
            "{label}: the job ended after {} kills",
            kill - 1
        );
        let delay = Duration::from_millis(100 + rng.below(1_101));
        let victim = rng.below(2) as usize;
        std::thread::sleep(delay);
        eprintln!("{label}: kill {kill}: process {victim}, {delay:?} after it ran");
        assert!(
            launcher.kill(victim),
            "{label}: process {victim} was not running at kill {kill}"
        );
        assert!(
            launcher.wait_for("a restart", |stderr| restarts(stderr) == kill),
            "{label}: the launcher did not restart after kill {kill}"
        );
    }
    let (status, stderr) = launcher.finish();
    assert!(status.success(), "{label}: {status}\nstderr:\n{stderr}");
    assert!(restarts(&stderr) >= 5, "{stderr}");
    assert!(
        stderr.contains("tideflow cluster: finished after 5 restarts\n"),
        "{label}: {stderr}"
    );
    assert!(
        stderr.contains("resuming from the snapshot"),
        "{label}: no restart resumed from a snapshot:\n{stderr}"
    );
    reference.finish().succeeded();
    job.assert_reference_output(dir.path(), dir.path());
}

#[test]
fn cluster_crash_recovery_tumbling() {
    killed_five_times("tumbling", &tumbling_long(), 1);
}

#[test]
fn cluster_crash_recovery_session() {
    let job = Job::new(
        &rate(200, 200_000, 42, 20),
        &["--watermark-delay", "50ms", "--window", "session:30ms"],
    );
    killed_five_times("session", &job, 2);
}

#[test]
fn cluster_crash_recovery_running_aggregate() {
    let job = Job::new(
        &rate(50, 200_000, 43, 20),
        &["--watermark-delay", "50ms", "--mode", "update"],
    )
    .unordered();
    killed_five_times("running aggregate", &job, 3);
}

/// 10 s of input: 5 kills at most 1.2 s after each start rarely let it finish first.
fn tumbling_long() -> Job {
    Job::new(
        &rate(50, 200_000, 44, 20),
        &["--watermark-delay", "50ms", "--window", "tumbling:100ms"],
    )
}

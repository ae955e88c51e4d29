//! Helpers shared by the command-line tests: run the real binary, write inputs, expect errors.

#[path = "../../../tests/all/net.rs"]
mod net;
#[path = "../../../tests/all/rng.rs"]
mod rng;

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub use net::{free_hosts, free_hosts_of};
pub use rng::SplitMix64;

/// The repository root: the binary runs there, so fixtures are named from it
/// (`tests/fixtures/...`).
pub const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// Runs the `tideflow` binary with `args` in the repository root.
pub fn tideflow(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tideflow"))
        .args(args)
        .current_dir(ROOT)
        .output()
        .expect("the tideflow binary runs")
}

pub fn write(dir: &Path, name: &str, contents: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, contents).expect("write test input");
    path.to_string_lossy().into_owned()
}

/// Runs `args`, expects failure with `code` and no output (a failed run closes no window
/// early), and returns the single stderr line.
pub fn fails(args: &[&str], code: i32) -> String {
    let out = tideflow(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(code),
        "args {args:?}: stderr {stderr}"
    );
    assert!(
        out.stdout.is_empty(),
        "args {args:?}: output before the error: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "args {args:?}: {stderr}"
    );
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "args {args:?}: not one line: {stderr}"
    );
    assert!(stderr.starts_with("tideflow: "), "{stderr}");
    stderr
}

/// `tideflow run` on `input` keyed by `k` in 10 s tumbling windows with a count, then `extra`.
pub fn run_args<'a>(input: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = query_args(input, &["--window", "tumbling:10s", "--agg", "count"]);
    args.extend_from_slice(extra);
    args
}

/// `tideflow run` on `input` with event time `ts`, keyed by `k`, then `extra` (the window and
/// aggregates, at least).
pub fn query_args<'a>(input: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "run",
        "--input",
        input,
        "--time-field",
        "ts",
        "--key-field",
        "k",
    ];
    args.extend_from_slice(extra);
    args
}

/// How long any one wait may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// A running `tideflow` child process, killed when dropped.
pub struct ChildGuard(pub Child);

impl ChildGuard {
    pub fn spawn(args: &[&str], stdin: Stdio) -> ChildGuard {
        let child = Command::new(env!("CARGO_BIN_EXE_tideflow"))
            .args(args)
            .current_dir(ROOT)
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the tideflow binary starts");
        ChildGuard(child)
    }

    /// Waits (bounded) for the process to exit; returns its exit code, stdout and stderr.
    pub fn finish(&mut self) -> (Option<i32>, String, String) {
        let start = Instant::now();
        let status = loop {
            if let Some(status) = self.0.try_wait().expect("wait for tideflow") {
                break status;
            }
            assert!(start.elapsed() < DEADLINE, "tideflow did not exit in time");
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stdout = String::new();
        let mut stderr = String::new();
        if let Some(mut out) = self.0.stdout.take() {
            out.read_to_string(&mut stdout).expect("read stdout");
        }
        if let Some(mut err) = self.0.stderr.take() {
            err.read_to_string(&mut stderr).expect("read stderr");
        }
        (status.code(), stdout, stderr)
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        // The process may have exited already; then there is nothing to kill.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Sends signal `name` (`INT`, `TERM`, ...) to process `pid` with kill(1).
pub fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -{name} {pid}");
}

/// Accepts one connection on `listener`, waiting at most [`DEADLINE`].
pub fn accept(listener: &std::net::TcpListener) -> std::net::TcpStream {
    listener.set_nonblocking(true).unwrap();
    let start = Instant::now();
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false).unwrap();
                return stream;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(start.elapsed() < DEADLINE, "tideflow did not connect");
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
}

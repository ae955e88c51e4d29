//! `tideflow cluster --local N -- <run args>`: N processes of one job on this machine, on free
//! loopback ports, with a fresh cluster id and secret; their output is the terminal's, and the
//! launcher fails if any process fails. SIGINT and SIGTERM are forwarded to the processes
//! (which run in process groups of their own, so that a terminal's Ctrl-C reaches them once).
//! Process P writes `--progress PATH` to `PATH.P` and
//! serves `--metrics-addr HOST:PORT` on `PORT + P`.
//!
//! With `--restart-attempts K`, a failed run is started again, every process of it, up to K
//! times, `--restart-delay` after it ended (`restart.rs` decides; `processes.rs` runs).

mod processes;
mod restart;

use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;

use crate::signals::{self, SignalStop};
use processes::{lock, Launch};
use restart::{count_restarts, Decision, Restarts};
use tideflow::Error;

/// The wait before a restart unless `--restart-delay` says otherwise.
const DEFAULT_RESTART_DELAY: Duration = Duration::from_secs(1);

/// Arguments of `tideflow cluster`.
#[derive(Debug, Args)]
pub(crate) struct ClusterArgs {
    /// Start this many processes of the job on this machine (2 or more).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(2..=64))]
    local: u16,
    /// When a process fails (a non-zero exit or killed by a signal), stop the others and start
    /// all of them again, up to K times; with --checkpoint-dir they resume from the newest
    /// complete snapshot. A user error (exit code 2) is not restarted. By default, 0: the
    /// launcher fails as the first process fails.
    #[arg(long, value_name = "K")]
    restart_attempts: Option<u32>,
    /// The wait before each restart (250ms, 1s, 1m). By default, 1s.
    #[arg(long, value_name = "DUR", value_parser = crate::duration_arg)]
    restart_delay: Option<Duration>,
    /// The `tideflow run` arguments, after `--`, optionally starting with the word `run` (the
    /// cluster flags are added).
    #[arg(last = true, required = true, value_name = "RUN ARGS")]
    run: Vec<String>,
}

/// Runs `tideflow cluster`. SIGINT or SIGTERM is forwarded to every process (each stops
/// gracefully, a second signal at once); the launcher then exits with 128 + its number. A
/// failed run is restarted as `--restart-attempts` allows, each restart logged with its cause.
pub(crate) fn cluster(mut args: ClusterArgs) -> Result<ExitCode, Error> {
    if args.restart_delay.is_some() && args.restart_attempts.is_none() {
        return Err(Error::Config(
            "--restart-delay: only with --restart-attempts K (how many restarts to allow)".into(),
        ));
    }
    // `cluster --local 2 -- run --input ...` reads as the command it runs.
    if args.run.first().is_some_and(|first| first == "run") {
        args.run.remove(0);
    }
    for flag in [
        "--processes",
        "--process-id",
        "--hosts",
        "--hostfile",
        "--cluster-id",
        "--cluster-secret",
    ] {
        if args
            .run
            .iter()
            .any(|arg| arg == flag || arg.starts_with(&format!("{flag}=")))
        {
            return Err(Error::Config(format!(
                "{flag}: set by `tideflow cluster --local` itself; leave it out of the run arguments"
            )));
        }
    }
    // Checked once here, so that a bad flag is reported once, not by every process.
    if !crate::check_run_args(&args.run)? {
        return Ok(ExitCode::SUCCESS);
    }
    let restarts = Restarts {
        attempts: args.restart_attempts.unwrap_or(0),
        delay: args.restart_delay.unwrap_or(DEFAULT_RESTART_DELAY),
    };
    let processes = usize::from(args.local);
    let per_process = (0..processes)
        .map(|process| per_process(&args.run, process))
        .collect::<Result<Vec<_>, _>>()?;
    // One secret for every run; each run has a cluster id of its own, so that no process of
    // an earlier run can join a later one.
    let secret = random_hex()?;
    let launcher = std::process::id();
    let exe =
        std::env::current_exe().map_err(|e| Error::io("cannot find the tideflow executable", e))?;
    // The processes running, to forward signals to.
    let pids: Arc<Mutex<Vec<libc::pid_t>>> = Arc::default();
    let forward_to = Arc::clone(&pids);
    let signals = SignalStop::install(move |signal| {
        for &pid in lock(&forward_to).iter() {
            // SAFETY: kill(2) with the pid of a running child this process started and a valid
            // signal number; it touches no memory of this process.
            unsafe {
                libc::kill(pid, signal);
            }
        }
    })?;
    let launch = Launch {
        exe: &exe,
        args: &per_process,
        secret: &secret,
        pids: &pids,
        signals: &signals,
    };
    let mut restarted = 0;
    // The run that failed, while its restart waits: a signal before the restart is decided on
    // with it.
    let mut failed = Vec::new();
    loop {
        let cluster_id = match restarted {
            0 => format!("local-{launcher}"),
            restart => format!("local-{launcher}-{restart}"),
        };
        let ended = launch.run(&cluster_id)?.unwrap_or(failed);
        match restarts.decide(&ended, processes, restarted, signals.received()) {
            Decision::Done => break,
            Decision::Fail(message) => return Err(Error::Cluster(message)),
            Decision::Restart(line) => {
                log(&line);
                wait_unless_signalled(restarts.delay, &signals);
                restarted += 1;
                failed = ended;
            }
        }
    }
    let signal = signals.received();
    if restarts.attempts > 0 {
        let how = if signal.is_some() {
            "stopped"
        } else {
            "finished"
        };
        log(&format!("{how} after {}", count_restarts(restarted)));
    }
    Ok(match signal {
        Some(signal) => ExitCode::from(signals::exit_code(signal)),
        None => ExitCode::SUCCESS,
    })
}

/// Writes `tideflow cluster: LINE` to standard error in one write, so that a line of the
/// processes, which share it, cannot land in the middle.
fn log(line: &str) {
    use std::io::Write as _;
    let line = format!("tideflow cluster: {line}\n");
    // With standard error gone there is nowhere left to say it.
    let _ = std::io::stderr().write_all(line.as_bytes());
}

/// Sleeps for `delay`, or until the launcher receives SIGINT or SIGTERM.
fn wait_unless_signalled(delay: Duration, signals: &SignalStop) {
    let start = Instant::now();
    while signals.received().is_none() {
        let left = delay.saturating_sub(start.elapsed());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(Duration::from_millis(20)));
    }
}

/// The run arguments of process `process`: each process writes its own `--progress` file
/// (`PATH.P`; `-` stays standard error) and serves metrics on its own port (`PORT + P`).
fn per_process(run: &[String], process: usize) -> Result<Vec<String>, Error> {
    let mut args = Vec::with_capacity(run.len());
    let mut iter = run.iter().peekable();
    while let Some(arg) = iter.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag, Some(value.to_string())),
            _ => (arg.as_str(), None),
        };
        if flag != "--progress" && flag != "--metrics-addr" {
            args.push(arg.clone());
            continue;
        }
        let Some(value) = inline.or_else(|| iter.next().cloned()) else {
            args.push(arg.clone());
            continue;
        };
        let value = match flag {
            "--progress" if value == "-" => value,
            "--progress" => format!("{value}.{process}"),
            _ => {
                let (host, port) = value.rsplit_once(':').unwrap_or(("127.0.0.1", &value));
                let port: u16 = port.parse().map_err(|_| {
                    Error::Config(format!("--metrics-addr: {value:?} has no port number"))
                })?;
                let port = port.checked_add(process as u16).ok_or_else(|| {
                    Error::Config(format!(
                        "--metrics-addr: port {port} + process {process} is past 65535"
                    ))
                })?;
                format!("{host}:{port}")
            }
        };
        args.push(flag.to_string());
        args.push(value);
    }
    Ok(args)
}

/// 16 random bytes from the operating system, in hex.
fn random_hex() -> Result<String, Error> {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut file| file.read_exact(&mut bytes))
        .map_err(|e| Error::io("cannot read /dev/urandom for the cluster secret", e))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_process_gets_its_own_progress_file_and_metrics_port() {
        let run: Vec<String> = [
            "--input",
            "x",
            "--progress",
            "p.jsonl",
            "--metrics-addr=127.0.0.1:9100",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            per_process(&run, 1).expect("rewrites"),
            [
                "--input",
                "x",
                "--progress",
                "p.jsonl.1",
                "--metrics-addr",
                "127.0.0.1:9101"
            ]
        );
        let stderr: Vec<String> = ["--progress", "-", "--metrics-addr", "9200"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            per_process(&stderr, 2).expect("rewrites"),
            ["--progress", "-", "--metrics-addr", "127.0.0.1:9202"]
        );
    }
}

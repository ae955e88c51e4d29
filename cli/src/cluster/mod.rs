//! `tideflow cluster --local N -- <run args>`: N processes of one job on this machine, on free
//! loopback ports, with a fresh cluster id and secret; their output is the terminal's, and the
//! launcher fails if any process fails. SIGINT and SIGTERM are forwarded to the processes
//! (which run in process groups of their own, so that a terminal's Ctrl-C reaches them once).
//! Process P writes `--progress PATH` to `PATH.P` and
//! serves `--metrics-addr HOST:PORT` on `PORT + P`.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitCode, ExitStatus};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;

use crate::signals::{self, SignalStop};
use tideflow::Error;
use tideflow::SECRET_VAR;

/// How long the others may take to stop after one process failed, before they are killed.
const GRACE: Duration = Duration::from_secs(10);

/// Arguments of `tideflow cluster`.
#[derive(Debug, Args)]
pub(crate) struct ClusterArgs {
    /// Start this many processes of the job on this machine (2 or more).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(2..=64))]
    local: u16,
    /// The `tideflow run` arguments, after `--`, optionally starting with the word `run` (the
    /// cluster flags are added).
    #[arg(last = true, required = true, value_name = "RUN ARGS")]
    run: Vec<String>,
}

/// Runs `tideflow cluster`. SIGINT or SIGTERM is forwarded to every process (each stops
/// gracefully, a second signal at once); the launcher then exits with 128 + its number.
pub(crate) fn cluster(mut args: ClusterArgs) -> Result<ExitCode, Error> {
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
    let processes = usize::from(args.local);
    let hosts = free_ports(processes)?.join(",");
    let secret = random_hex()?;
    let cluster_id = format!("local-{}", std::process::id());
    let exe =
        std::env::current_exe().map_err(|e| Error::io("cannot find the tideflow executable", e))?;
    // The processes started so far, to forward signals to.
    let pids: Arc<Mutex<Vec<libc::pid_t>>> = Arc::default();
    let forward_to = Arc::clone(&pids);
    let signals = SignalStop::install(move |signal| {
        for &pid in lock(&forward_to).iter() {
            // SAFETY: kill(2) with the pid of a child this process started and a valid signal
            // number; it touches no memory of this process.
            unsafe {
                libc::kill(pid, signal);
            }
        }
    })?;
    let mut children: Vec<Child> = Vec::with_capacity(processes);
    for process in 0..processes {
        let child = Command::new(&exe)
            .arg("run")
            .args(per_process(&args.run, process)?)
            .args(["--processes", &processes.to_string()])
            .args(["--process-id", &process.to_string()])
            .args(["--hosts", &hosts])
            .args(["--cluster-id", &cluster_id])
            .env(SECRET_VAR, &secret)
            // Out of the terminal's process group: a Ctrl-C reaches the processes once, through
            // the launcher, not twice (which would stop them at once).
            .process_group(0)
            .spawn();
        match child {
            Ok(child) => {
                if let Ok(pid) = libc::pid_t::try_from(child.id()) {
                    lock(&pids).push(pid);
                }
                children.push(child);
            }
            Err(e) => {
                stop(&mut children);
                return Err(Error::io(format!("cannot start process {process}"), e));
            }
        }
    }
    wait(children, &signals)?;
    Ok(match signals.received() {
        Some(signal) => ExitCode::from(signals::exit_code(signal)),
        None => ExitCode::SUCCESS,
    })
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

/// Waits for every process; after the first failure, gives the others [`GRACE`] to stop (they
/// notice the lost peer) and then kills them. Fails naming the first process that failed; a
/// process that stopped gracefully on the signal `signals` received did not fail.
fn wait(mut children: Vec<Child>, signals: &SignalStop) -> Result<(), Error> {
    let mut statuses: Vec<Option<ExitStatus>> = vec![None; children.len()];
    let mut first_failure: Option<(usize, ExitStatus)> = None;
    let mut failed_at: Option<Instant> = None;
    while statuses.iter().any(Option::is_none) {
        for (process, child) in children.iter_mut().enumerate() {
            if statuses[process].is_some() {
                continue;
            }
            if let Ok(Some(status)) = child.try_wait() {
                statuses[process] = Some(status);
                let stopped = signals.received().is_some_and(|signal| {
                    status.code() == Some(i32::from(signals::exit_code(signal)))
                });
                if !status.success() && !stopped && first_failure.is_none() {
                    first_failure = Some((process, status));
                    failed_at = Some(Instant::now());
                }
            }
        }
        if failed_at.is_some_and(|at| at.elapsed() > GRACE) {
            stop(&mut children);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    match first_failure {
        None => Ok(()),
        Some((process, status)) => Err(Error::Cluster(format!(
            "process {process} of {} failed ({status})",
            children.len()
        ))),
    }
}

/// The pids, even if the signal thread panicked holding them.
fn lock(pids: &Mutex<Vec<libc::pid_t>>) -> std::sync::MutexGuard<'_, Vec<libc::pid_t>> {
    pids.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Kills every process still running.
fn stop(children: &mut [Child]) {
    for child in children.iter_mut() {
        if let Ok(None) = child.try_wait() {
            let _ = child.kill();
        }
    }
}

/// `count` loopback addresses with ports the system had free.
fn free_ports(count: usize) -> Result<Vec<String>, Error> {
    let listeners = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::io("cannot find free loopback ports", e))?;
    listeners
        .iter()
        .map(|listener| {
            listener
                .local_addr()
                .map(|address| address.to_string())
                .map_err(|e| Error::io("cannot find free loopback ports", e))
        })
        .collect()
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

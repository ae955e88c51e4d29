//! One run of the cluster's processes: all of them started on fresh free loopback ports with a
//! given cluster id, then watched until every one has ended (after the first failure, the
//! others get [`GRACE`] to stop, as they do when they notice the lost peer, and are then
//! killed), each end recorded in the order the launcher saw it.

use std::net::TcpListener;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Command, ExitStatus};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::restart::{Ended, Exit};
use crate::signals::{self, SignalStop};
use tideflow::{Error, SECRET_VAR};

/// How long the others may take to stop after one process failed, before they are killed.
const GRACE: Duration = Duration::from_secs(10);

/// How often the launcher looks at its processes.
const POLL: Duration = Duration::from_millis(20);

/// What every run of the cluster starts with.
pub(super) struct Launch<'a> {
    /// The `tideflow` executable.
    pub(super) exe: &'a Path,
    /// The run arguments of each process (`--progress` and `--metrics-addr` made its own).
    pub(super) args: &'a [Vec<String>],
    pub(super) secret: &'a str,
    /// The pids of the running processes, which the signal thread forwards SIGINT and SIGTERM
    /// to. A process's pid is removed under the lock as it is reaped, so that a signal never
    /// reaches a pid the system has handed to another process since.
    pub(super) pids: &'a Mutex<Vec<libc::pid_t>>,
    pub(super) signals: &'a SignalStop,
}

impl Launch<'_> {
    /// Starts every process as a cluster named `cluster_id` and waits for them all; how each
    /// ended, in the order they ended. `None` if the launcher had received SIGINT or SIGTERM
    /// before they started (then none is started).
    pub(super) fn run(&self, cluster_id: &str) -> Result<Option<Vec<Ended>>, Error> {
        Ok(self.start(cluster_id)?.map(|children| self.wait(children)))
    }

    fn start(&self, cluster_id: &str) -> Result<Option<Vec<Child>>, Error> {
        let processes = self.args.len();
        let hosts = free_ports(processes)?.join(",");
        // Under the lock, the signal thread waits until every pid is known: a signal that came
        // before is seen here, one that comes after reaches every process.
        let mut pids = lock(self.pids);
        if self.signals.received().is_some() {
            return Ok(None);
        }
        let mut children: Vec<Child> = Vec::with_capacity(processes);
        let launcher = libc::pid_t::try_from(std::process::id()).unwrap_or(0);
        for (process, args) in self.args.iter().enumerate() {
            let mut command = Command::new(self.exe);
            // SAFETY: between fork and exec the closure only makes the async-signal-safe calls
            // prctl(2), getppid(2) and raise(3) and allocates nothing.
            unsafe {
                command.pre_exec(move || stop_with_the_launcher(launcher));
            }
            let child = command
                .arg("run")
                .args(args)
                .args(["--processes", &processes.to_string()])
                .args(["--process-id", &process.to_string()])
                .args(["--hosts", &hosts])
                .args(["--cluster-id", cluster_id])
                .env(SECRET_VAR, self.secret)
                // Out of the terminal's process group: a Ctrl-C reaches the processes once,
                // through the launcher, not twice (which would stop them at once).
                .process_group(0)
                .spawn();
            match child {
                Ok(child) => {
                    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
                        pids.push(pid);
                    }
                    children.push(child);
                }
                Err(e) => {
                    for child in &mut children {
                        let _ = child.kill();
                        let _ = child.wait();
                    }
                    pids.clear();
                    return Err(Error::io(format!("cannot start process {process}"), e));
                }
            }
        }
        Ok(Some(children))
    }

    /// Waits for every process; [`GRACE`] after the first failure, kills those still running.
    /// A process that stopped gracefully on the signal the launcher received did not fail.
    fn wait(&self, mut children: Vec<Child>) -> Vec<Ended> {
        let mut ended: Vec<Ended> = Vec::with_capacity(children.len());
        let mut running = vec![true; children.len()];
        let mut killed = vec![false; children.len()];
        let mut failed_at: Option<Instant> = None;
        while ended.len() < children.len() {
            for (process, child) in children.iter_mut().enumerate() {
                if !running[process] {
                    continue;
                }
                let Some(status) = reap(child, self.pids) else {
                    continue;
                };
                running[process] = false;
                let exit = exit(status, killed[process], self.signals.received());
                if !matches!(exit, Exit::Success | Exit::Stopped) && failed_at.is_none() {
                    failed_at = Some(Instant::now());
                }
                ended.push(Ended { process, exit });
            }
            if failed_at.is_some_and(|at| at.elapsed() > GRACE) {
                for (process, child) in children.iter_mut().enumerate() {
                    if running[process] && !killed[process] {
                        killed[process] = true;
                        let _ = child.kill();
                    }
                }
            }
            std::thread::sleep(POLL);
        }
        ended
    }
}

/// The status of `child` if it has exited, its pid then removed from `pids` (under the lock
/// the signal thread takes, so that it never signals the pid once reaped).
fn reap(child: &mut Child, pids: &Mutex<Vec<libc::pid_t>>) -> Option<ExitStatus> {
    let mut pids = lock(pids);
    let status = child.try_wait().ok().flatten()?;
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        pids.retain(|&running| running != pid);
    }
    Some(status)
}

/// How a process ended with `status`: `killed` if the launcher killed it, `stopped_by` the
/// signal the launcher received and forwarded, if any.
fn exit(status: ExitStatus, killed: bool, stopped_by: Option<i32>) -> Exit {
    if status.success() {
        return Exit::Success;
    }
    match (status.code(), status.signal()) {
        (Some(code), _) if stopped_by.is_some_and(|s| code == i32::from(signals::exit_code(s))) => {
            Exit::Stopped
        }
        (Some(code), _) => Exit::Code(code),
        (None, _) if killed => Exit::Killed,
        (None, Some(signal)) => Exit::Signal(signal),
        // Neither an exit code nor a signal: not on Unix.
        (None, None) => Exit::Code(-1),
    }
}

/// The pids, even if the signal thread panicked holding them.
pub(super) fn lock(pids: &Mutex<Vec<libc::pid_t>>) -> MutexGuard<'_, Vec<libc::pid_t>> {
    pids.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
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

/// In a started process, before it runs: SIGTERM reaches it (a graceful stop) when the launcher
/// dies, so that no process of a launcher that was killed goes on alone; if the launcher died
/// already, it stops at once.
fn stop_with_the_launcher(launcher: libc::pid_t) -> std::io::Result<()> {
    // SAFETY: prctl(2) with PR_SET_PDEATHSIG and a valid signal number; getppid(2) and
    // raise(3) take no pointers.
    unsafe {
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if libc::getppid() != launcher {
            libc::raise(libc::SIGTERM);
        }
    }
    Ok(())
}

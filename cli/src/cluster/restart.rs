//! The restart policy of `tideflow cluster --local N --restart-attempts K --restart-delay DUR`,
//! modelled on Flink's fixed-delay restart strategy (a number of attempts and a delay between
//! them) applied to the whole cluster: how each process of a run ended, which failure caused
//! the run to end (the process that was killed or failed on its own, not the peers that then
//! lost it), and whether the launcher starts every process again.

use std::fmt;
use std::time::Duration;

/// The exit code of a user mistake (bad input, a bad flag, a refused snapshot): a restart
/// would meet it again.
const USER_ERROR: i32 = 2;
/// The exit code of an external failure, a lost peer ("lost process P") among them: a process
/// that exits with it has usually lost the peer that failed first.
const EXTERNAL_ERROR: i32 = 3;

/// How one process of a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Exit {
    /// It exited 0.
    Success,
    /// It stopped gracefully on the signal the launcher received and forwarded to it (its
    /// exit code is 128 + the signal's number).
    Stopped,
    /// It exited with this non-zero code.
    Code(i32),
    /// It was killed by this signal, not by the launcher.
    Signal(i32),
    /// The launcher killed it: it had not stopped within the grace period after another
    /// process failed.
    Killed,
}

/// The end of one process of a run, in the order the launcher saw them end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Ended {
    /// The process index.
    pub(super) process: usize,
    pub(super) exit: Exit,
}

impl Ended {
    fn failed(&self) -> bool {
        !matches!(self.exit, Exit::Success | Exit::Stopped)
    }

    /// What happened to it, after "process P ".
    fn what(&self) -> String {
        match self.exit {
            Exit::Success => "finished".into(),
            Exit::Stopped => "stopped gracefully".into(),
            Exit::Code(code) => format!("exited with code {code}"),
            Exit::Signal(signal) => match signal_name(signal) {
                Some(name) => format!("was killed by signal {signal} ({name})"),
                None => format!("was killed by signal {signal}"),
            },
            Exit::Killed => "was killed after the grace period".into(),
        }
    }
}

impl fmt::Display for Ended {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "process {} {}", self.process, self.what())
    }
}

/// The failure that ended a run, if any: first a process that exited 2 (a user error; no lost
/// peer exits 2), then the first one killed by a signal or failing with a code other than 3
/// (the peers that lost it exit 3), then the first one that exited 3 (an I/O error, say), and
/// last one the launcher killed.
pub(super) fn cause(ended: &[Ended]) -> Option<Ended> {
    let failed = || ended.iter().filter(|end| end.failed());
    let on_its_own = |end: &&Ended| match end.exit {
        Exit::Signal(_) => true,
        Exit::Code(code) => code != EXTERNAL_ERROR,
        _ => false,
    };
    failed()
        .find(|end| end.exit == Exit::Code(USER_ERROR))
        .or_else(|| failed().find(on_its_own))
        .or_else(|| failed().find(|end| end.exit == Exit::Code(EXTERNAL_ERROR)))
        .or_else(|| failed().next())
        .copied()
}

/// `--restart-attempts` and `--restart-delay`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Restarts {
    /// How many times the cluster may be started again; 0: never.
    pub(super) attempts: u32,
    /// The wait before each restart.
    pub(super) delay: Duration,
}

/// What the launcher does once every process of a run has ended.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Decision {
    /// No process failed: the job finished, or stopped gracefully on a signal.
    Done,
    /// Start every process again after the delay; the line to log says why.
    Restart(String),
    /// Fail with this message.
    Fail(String),
}

impl Restarts {
    /// What to do after a run of `processes` processes ended as `ended`, `restarted` restarts
    /// after the first run, when the launcher received the signal `stopped_by` (if any).
    pub(super) fn decide(
        &self,
        ended: &[Ended],
        processes: usize,
        restarted: u32,
        stopped_by: Option<i32>,
    ) -> Decision {
        let Some(cause) = cause(ended) else {
            return Decision::Done;
        };
        let failure = format!("process {} of {processes} {}", cause.process, cause.what());
        if self.attempts == 0 {
            return Decision::Fail(failure);
        }
        if let Some(signal) = stopped_by {
            return Decision::Fail(format!(
                "{failure}; not restarted: tideflow cluster received {}",
                signal_name(signal).unwrap_or("a signal")
            ));
        }
        if cause.exit == Exit::Code(USER_ERROR) {
            return Decision::Fail(format!(
                "{failure}; not restarted: a user error (bad input, a bad flag or a refused \
                 snapshot) would happen again"
            ));
        }
        if restarted >= self.attempts {
            return Decision::Fail(format!(
                "{failure}; gave up after {}",
                count_restarts(restarted)
            ));
        }
        Decision::Restart(format!(
            "{cause}; restarting all {processes} processes (restart {} of {}) in {}",
            restarted + 1,
            self.attempts,
            show(self.delay)
        ))
    }
}

/// `1 restart`, `2 restarts`.
pub(super) fn count_restarts(restarts: u32) -> String {
    match restarts {
        1 => "1 restart".into(),
        n => format!("{n} restarts"),
    }
}

/// A delay in whole seconds where it is some (`1s`), else in milliseconds (`1500ms`).
fn show(delay: Duration) -> String {
    let ms = delay.as_millis();
    match ms {
        ms if ms > 0 && ms % 1_000 == 0 => format!("{}s", ms / 1_000),
        ms => format!("{ms}ms"),
    }
}

/// The name of a signal a process may die of.
fn signal_name(signal: i32) -> Option<&'static str> {
    Some(match signal {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        libc::SIGSYS => "SIGSYS",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn end(process: usize, exit: Exit) -> Ended {
        Ended { process, exit }
    }

    const THREE: Restarts = Restarts {
        attempts: 3,
        delay: Duration::from_secs(1),
    };

    #[test]
    fn the_cause_is_the_process_that_failed_on_its_own_not_the_peers_that_lost_it() {
        // Process 0 noticed the lost peer before the launcher saw process 1 die.
        let killed = [end(0, Exit::Code(3)), end(1, Exit::Signal(libc::SIGKILL))];
        assert_eq!(cause(&killed), Some(killed[1]));
        // A bad record in process 1: the user error, whatever ended first.
        let bad = [
            end(0, Exit::Code(3)),
            end(2, Exit::Killed),
            end(1, Exit::Code(2)),
        ];
        assert_eq!(cause(&bad), Some(bad[2]));
        // An I/O error in process 1, then process 0 lost it: the first exit 3.
        let io = [end(1, Exit::Code(3)), end(0, Exit::Code(3))];
        assert_eq!(cause(&io), Some(io[0]));
        // A panic (70) before the lost peers.
        let bug = [end(1, Exit::Code(3)), end(0, Exit::Code(70))];
        assert_eq!(cause(&bug), Some(bug[1]));
        // Finished, or stopped gracefully: no failure.
        assert_eq!(cause(&[end(1, Exit::Success), end(0, Exit::Stopped)]), None);
        assert_eq!(cause(&[end(0, Exit::Killed)]), Some(end(0, Exit::Killed)));
    }

    #[test]
    fn a_failure_is_restarted_until_the_attempts_are_used_up() {
        let killed = [end(0, Exit::Code(3)), end(1, Exit::Signal(libc::SIGKILL))];
        assert_eq!(
            THREE.decide(&killed, 2, 0, None),
            Decision::Restart(
                "process 1 was killed by signal 9 (SIGKILL); restarting all 2 processes \
                 (restart 1 of 3) in 1s"
                    .into()
            )
        );
        let half = Restarts {
            attempts: 3,
            delay: Duration::from_millis(1_500),
        };
        assert!(matches!(
            half.decide(&killed, 2, 2, None),
            Decision::Restart(line) if line.ends_with("(restart 3 of 3) in 1500ms")
        ));
        assert_eq!(
            THREE.decide(&killed, 2, 3, None),
            Decision::Fail(
                "process 1 of 2 was killed by signal 9 (SIGKILL); gave up after 3 restarts".into()
            )
        );
        let once = Restarts {
            attempts: 1,
            ..THREE
        };
        assert_eq!(
            once.decide(&[end(1, Exit::Signal(64))], 2, 1, None),
            Decision::Fail(
                "process 1 of 2 was killed by signal 64; gave up after 1 restart".into()
            )
        );
        let ok = [end(0, Exit::Success), end(1, Exit::Success)];
        assert_eq!(THREE.decide(&ok, 2, 2, None), Decision::Done);
    }

    #[test]
    fn user_errors_signals_to_the_launcher_and_no_attempts_are_not_restarted() {
        let bad = [end(1, Exit::Code(3)), end(0, Exit::Code(2))];
        assert!(matches!(
            THREE.decide(&bad, 2, 0, None),
            Decision::Fail(message) if message.starts_with(
                "process 0 of 2 exited with code 2; not restarted: a user error"
            )
        ));
        let killed = [end(1, Exit::Signal(libc::SIGKILL)), end(0, Exit::Code(3))];
        assert_eq!(
            THREE.decide(&killed, 2, 0, Some(libc::SIGTERM)),
            Decision::Fail(
                "process 1 of 2 was killed by signal 9 (SIGKILL); not restarted: tideflow \
                 cluster received SIGTERM"
                    .into()
            )
        );
        let stopped = [end(0, Exit::Stopped), end(1, Exit::Stopped)];
        assert_eq!(
            THREE.decide(&stopped, 2, 0, Some(libc::SIGINT)),
            Decision::Done
        );
        // Without attempts: the failure alone, as before restarts existed.
        let never = Restarts {
            attempts: 0,
            ..THREE
        };
        assert_eq!(
            never.decide(&killed, 2, 0, None),
            Decision::Fail("process 1 of 2 was killed by signal 9 (SIGKILL)".into())
        );
    }
}

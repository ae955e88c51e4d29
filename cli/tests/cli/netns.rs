//! A cluster across two hosts, as network namespaces on this machine: two namespaces joined by
//! a veth pair (`TwoHosts`), one `tideflow run` process in each. A cluster across them gives
//! the 1-process output, and cutting the link (`ip link set ... down`: no FIN, no RST, nothing
//! arrives any more) stops both processes, each naming the peer it lost, in bounded time
//! (`tideflow::PEER_TIMEOUT`, from TCP keepalive and `TCP_USER_TIMEOUT`); with a checkpoint
//! directory, once the link is back, the same commands resume from the newest complete
//! snapshot and the output is the uninterrupted 1-process run's, byte for byte.
//!
//! The tests run as root (as CI does): creating namespaces needs it. Without it they fail,
//! saying so in one line; they never skip. Every namespace and every process a test starts is
//! removed or killed when its `TwoHosts` is dropped, also when the test fails.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::cluster::{input, query};
use crate::crash::harness::{compare, complete_snapshots, path_arg, Job, Proc, Ran, FINAL_EPOCH};
use crate::support::ROOT;

/// Only to avoid hanging forever: no wait here takes that long unless something is broken.
const HANG_GUARD: Duration = Duration::from_secs(120);
/// The cluster port of each process, on its namespace's own address.
const PORT: u16 = 7400;
/// The cluster secret of the tests.
const SECRET: &str = "netns-s3cret";

/// Numbers the pairs of namespaces of this test process (names and subnets).
static PAIRS: AtomicUsize = AtomicUsize::new(0);

/// How a process ended, and how long after the wait for it began.
struct Ended {
    ran: Ran,
    after: Duration,
}

/// Two hosts: namespaces `tf-PID-N-a` and `tf-PID-N-b` joined by a veth pair, at 10.231.N.1 and
/// 10.231.N.2 (/24), `lo` up in each. Dropping it kills (by PID) the processes it started and
/// deletes both namespaces, and with them the veth pair.
struct TwoHosts {
    /// The namespaces created so far (both, once `new` returns).
    namespaces: Vec<String>,
    /// The veth end in each namespace.
    links: [String; 2],
    /// Each host's address.
    addresses: [String; 2],
    /// The processes started in them.
    processes: Vec<Proc>,
}

/// Runs `ip args`; its stderr if it failed.
fn ip(args: &[&str]) -> Result<(), String> {
    match Command::new("ip").args(args).output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(String::from_utf8_lossy(&out.stderr).trim().to_string()),
        Err(e) => Err(format!("cannot run `ip`: {e}")),
    }
}

/// Runs `ip args`; fails the test if it fails.
fn ip_or_fail(args: &[&str]) {
    if let Err(error) = ip(args) {
        panic!("`ip {}` failed: {error}", args.join(" "));
    }
}

impl TwoHosts {
    /// Creates the two namespaces and the link between them; fails the test, saying what is
    /// missing, where namespaces cannot be made.
    fn new() -> TwoHosts {
        let pair = PAIRS.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        let mut hosts = TwoHosts {
            namespaces: Vec::new(),
            links: [format!("tfa{pid}n{pair}"), format!("tfb{pid}n{pair}")],
            addresses: [
                format!("10.231.{}.1", pair % 256),
                format!("10.231.{}.2", pair % 256),
            ],
            processes: Vec::new(),
        };
        for side in ["a", "b"] {
            let name = format!("tf-{pid}-{pair}-{side}");
            if let Err(error) = ip(&["netns", "add", &name]) {
                panic!(
                    "these tests need network namespaces: `ip netns add {name}` failed ({error}); run them as root on Linux with iproute2 installed"
                );
            }
            hosts.namespaces.push(name);
        }
        let [a, b] = [&hosts.namespaces[0], &hosts.namespaces[1]];
        let [link_a, link_b] = &hosts.links;
        ip_or_fail(&[
            "link", "add", link_a, "netns", a, "type", "veth", "peer", "name", link_b, "netns", b,
        ]);
        for host in 0..2 {
            let (namespace, link) = (&hosts.namespaces[host], &hosts.links[host]);
            let address = format!("{}/24", hosts.addresses[host]);
            ip_or_fail(&["-n", namespace, "addr", "add", &address, "dev", link]);
            ip_or_fail(&["-n", namespace, "link", "set", link, "up"]);
            ip_or_fail(&["-n", namespace, "link", "set", "lo", "up"]);
        }
        hosts
    }

    /// The `--hosts` of a cluster with one process on each host, process `i` on host `i`.
    fn cluster_hosts(&self) -> String {
        format!("{}:{PORT},{}:{PORT}", self.addresses[0], self.addresses[1])
    }

    /// Process `process`'s `HOST:PORT`.
    fn address(&self, process: usize) -> String {
        format!("{}:{PORT}", self.addresses[process])
    }

    /// Starts `tideflow args` (from `run` on) as process `process` of the 2-process cluster,
    /// in host `process`'s namespace, the secret in the environment; returns its number.
    fn start(&mut self, process: usize, args: &[String]) -> usize {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &self.namespaces[process]])
            .arg(env!("CARGO_BIN_EXE_tideflow"))
            .args(args)
            .args(["--processes", "2", "--process-id", &process.to_string()])
            .args(["--hosts", &self.cluster_hosts()])
            .env("TIDEFLOW_CLUSTER_SECRET", SECRET)
            .current_dir(ROOT)
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        let what = format!("process {process}: {command:?}");
        // `ip netns exec` execs the command: the child's PID is tideflow's.
        self.processes.push(Proc::spawn(command, what));
        self.processes.len() - 1
    }

    /// Whether started process `id` has exited.
    fn exited(&mut self, id: usize) -> bool {
        let process = &mut self.processes[id];
        process
            .child
            .try_wait()
            .expect("wait for tideflow")
            .is_some()
    }

    /// Waits for the started processes `ids` to exit (failing the test past [`HANG_GUARD`]).
    fn wait(&mut self, ids: &[usize]) -> Vec<Ended> {
        let started = Instant::now();
        let mut after: Vec<Option<Duration>> = vec![None; ids.len()];
        while after.iter().any(Option::is_none) {
            for (slot, &id) in after.iter_mut().zip(ids) {
                if slot.is_none() && self.exited(id) {
                    *slot = Some(started.elapsed());
                }
            }
            if started.elapsed() > HANG_GUARD {
                let running: Vec<&str> = ids
                    .iter()
                    .zip(&after)
                    .filter(|(_, after)| after.is_none())
                    .map(|(&id, _)| self.processes[id].what.as_str())
                    .collect();
                panic!("still running after {HANG_GUARD:?}: {running:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        ids.iter()
            .zip(after)
            .map(|(&id, after)| Ended {
                ran: self.processes[id].collect(),
                after: after.expect("exited"),
            })
            .collect()
    }

    /// Waits until `ready` holds while processes `ids` run; fails the test if one exits first
    /// or past [`HANG_GUARD`].
    fn wait_until(&mut self, ids: &[usize], what: &str, ready: impl Fn() -> bool) {
        let started = Instant::now();
        while !ready() {
            if let Some(&id) = ids.iter().find(|&&id| self.exited(id)) {
                let ran = self.wait(&[id]).remove(0).ran;
                panic!(
                    "{} exited ({}) before {what}: {}",
                    ran.what, ran.status, ran.stderr
                );
            }
            assert!(
                started.elapsed() < HANG_GUARD,
                "not {what} after {HANG_GUARD:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sets host `host`'s end of the link down (no FIN or RST goes out: the other host only
    /// hears nothing any more) or up again.
    fn set_link(&self, host: usize, up: bool) {
        let state = if up { "up" } else { "down" };
        let namespace = &self.namespaces[host];
        ip_or_fail(&[
            "netns",
            "exec",
            namespace,
            "ip",
            "link",
            "set",
            &self.links[host],
            state,
        ]);
    }
}

impl Drop for TwoHosts {
    fn drop(&mut self) {
        // Each is killed by its PID and reaped (`Proc`'s drop), unless it was reaped already.
        self.processes.clear();
        // A namespace goes once nothing runs in it; the veth pair goes with it.
        for namespace in &self.namespaces {
            let _ = ip(&["netns", "del", namespace]);
        }
    }
}

/// `tideflow run` with `args`.
fn run(args: &[&str]) -> Vec<String> {
    std::iter::once("run")
        .chain(args.iter().copied())
        .map(str::to_string)
        .collect()
}

/// Asserts that a process stopped for the lost `peer` at `address`, with exit code 3 and one
/// line saying so.
fn assert_lost(ended: &Ended, process: usize, peer: usize, address: &str) {
    let line = ended.ran.one_error_line();
    assert_eq!(
        ended.ran.status.code(),
        Some(3),
        "process {process}: {line}"
    );
    assert!(
        line.contains(&format!("lost process {peer} ({address})")),
        "process {process} does not name process {peer} ({address}): {line}"
    );
}

/// Starts `args` on both hosts, waits until `running` holds, cuts the link at host 0, and
/// asserts that both processes stop naming each other; prints how long each took.
fn cut_while_running(label: &str, args: &[String], running: impl Fn() -> bool) {
    let mut hosts = TwoHosts::new();
    let second = hosts.start(1, args);
    let first = hosts.start(0, args);
    hosts.wait_until(&[first, second], "the cluster ran", running);
    hosts.set_link(0, false);
    let ended = hosts.wait(&[first, second]);
    eprintln!(
        "{label}: after the cut, process 0 stopped in {:?} and process 1 in {:?} (PEER_TIMEOUT {:?}): {}",
        ended[0].after,
        ended[1].after,
        tideflow::PEER_TIMEOUT,
        ended[0].ran.stderr.trim_end()
    );
    assert_lost(&ended[0], 0, 1, &hosts.address(1));
    assert_lost(&ended[1], 1, 0, &hosts.address(0));
}

/// Whether the file at `path` has something in it.
fn has_rows(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.len() > 0)
}

#[test]
fn a_cluster_across_two_hosts_gives_the_single_process_output() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let input = input(dir.path());
    let window = "sliding:100ms,25ms";
    let reference = dir.path().join("reference.jsonl");
    Proc::start(&run(&query(&input, window, &path_arg(&reference))), None)
        .finish()
        .succeeded();

    let output = dir.path().join("cluster.jsonl");
    let output_arg = path_arg(&output);
    let mut args = query(&input, window, &output_arg);
    args.extend(["--workers", "2"]);
    let args = run(&args);
    let mut hosts = TwoHosts::new();
    let second = hosts.start(1, &args);
    let first = hosts.start(0, &args);
    for ended in hosts.wait(&[first, second]) {
        ended.ran.succeeded();
    }
    // 2 hosts x 2 workers give the bytes of 1 process with 1 worker.
    compare(&reference, &output, false);
}

#[test]
fn cutting_the_link_under_a_running_job_stops_both_processes_naming_the_peer() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    // Data flows both ways all the time: unacknowledged data fails the connections.
    let job = Job::new(
        "rate:rows_per_sec=2000,keys=10,count=100000000,seed=1",
        &["--window", "tumbling:100ms"],
    );
    let args = job.args(dir.path(), "out", 1);
    let output = dir.path().join("out.jsonl");
    cut_while_running("a running job", &args, || has_rows(&output));
}

#[test]
fn cutting_the_link_under_an_idle_job_stops_both_processes_naming_the_peer() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let input = input(dir.path());
    let output = dir.path().join("out.jsonl");
    // The input is read, and the job waits for more files: nothing flows, so only the
    // keepalive probes find out.
    let output_arg = path_arg(&output);
    let mut args = query(&input, "tumbling:50ms", &output_arg);
    args.extend(["--watch", "1s"]);
    let args = run(&args);
    let first_rows = std::cell::Cell::new(None::<Instant>);
    cut_while_running("an idle job", &args, || {
        // Rows are out, and a while later everything has long been read.
        if !has_rows(&output) {
            return false;
        }
        let since = first_rows.get().unwrap_or_else(Instant::now);
        first_rows.set(Some(since));
        since.elapsed() > Duration::from_secs(2)
    });
}

#[test]
fn after_a_cut_link_is_restored_the_cluster_resumes_from_its_newest_snapshot_exactly() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    // About 20 s of input: the link is cut long before it ends.
    let job = Job::new(
        "rate:rows_per_sec=20000,keys=50,count=400000,seed=31,disorder=20",
        &["--watermark-delay", "50ms", "--window", "tumbling:100ms"],
    );
    Proc::start(&job.args(dir.path(), "ref", 1), None)
        .finish()
        .succeeded();
    let args = job.checkpointed(dir.path(), 2, "200ms", &[]);
    let ck = dir.path().join("ck");

    let mut hosts = TwoHosts::new();
    let second = hosts.start(1, &args);
    let first = hosts.start(0, &args);
    hosts.wait_until(&[first, second], "a complete snapshot", || {
        complete_snapshots(&ck)
            .iter()
            .any(|(epoch, _)| *epoch != FINAL_EPOCH)
    });
    hosts.set_link(0, false);
    let ended = hosts.wait(&[first, second]);
    assert_lost(&ended[0], 0, 1, &hosts.address(1));
    assert_lost(&ended[1], 1, 0, &hosts.address(0));
    eprintln!(
        "cut after snapshot(s) {:?}; stopped in {:?} and {:?}",
        complete_snapshots(&ck)
            .iter()
            .map(|(epoch, _)| *epoch)
            .collect::<Vec<_>>(),
        ended[0].after,
        ended[1].after
    );

    // The link is back: the same commands resume and finish the job.
    hosts.set_link(0, true);
    let second = hosts.start(1, &args);
    let first = hosts.start(0, &args);
    let ended = hosts.wait(&[first, second]);
    let ran: Vec<Ran> = ended.into_iter().map(|e| e.ran.succeeded()).collect();
    assert!(
        ran[0].resumed(),
        "process 0 did not resume: {}",
        ran[0].stderr
    );
    compare(
        &dir.path().join("ref.jsonl"),
        &dir.path().join("out.jsonl"),
        false,
    );
}

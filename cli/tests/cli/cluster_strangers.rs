//! Strangers at the cluster ports (issue 13, item 16): idle connections, garbage and a hello
//! with another cluster's id, opened to each accepting process's port before its peers
//! connect and left open for the whole run, neither stop the cluster from forming nor learn
//! its id.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::cluster::{finish, input, query};
use crate::support::{free_hosts_of, tideflow};

/// The cluster's id: no stranger may receive it.
const CLUSTER_ID: &str = "private-cluster-name-7d1f";

/// How long a process may take: a guard against a hang, far above a normal run.
const GUARD: Duration = Duration::from_secs(120);

/// Starts `tideflow run args` as process `process` of the 3-process cluster at `hosts`.
fn start(args: &[&str], process: usize, hosts: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_tideflow"))
        .arg("run")
        .args(args)
        .args(["--processes", "3", "--process-id", &process.to_string()])
        .args(["--hosts", hosts, "--cluster-id", CLUSTER_ID])
        .env("TIDEFLOW_CLUSTER_SECRET", "s3cret")
        .current_dir(crate::support::ROOT)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the tideflow binary starts")
}

/// A connection to `address`, retried until the process there listens (it is starting).
fn connect(address: &str, process: &mut Child) -> TcpStream {
    let started = Instant::now();
    loop {
        if let Ok(stream) = TcpStream::connect(address) {
            return stream;
        }
        assert!(
            process.try_wait().expect("wait").is_none(),
            "the process at {address} ended before it listened"
        );
        assert!(started.elapsed() < GUARD, "nothing listens on {address}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A hello of the cluster protocol (version 1) from process `process` of 3, in cluster `id`.
fn hello(id: &str, process: u64) -> Vec<u8> {
    let mut hello = b"TIDEFLOW".to_vec();
    hello.extend_from_slice(&1u32.to_be_bytes());
    hello.push(id.len() as u8);
    hello.extend_from_slice(id.as_bytes());
    hello.extend_from_slice(&process.to_be_bytes());
    hello.extend_from_slice(&3u64.to_be_bytes());
    hello.extend_from_slice(&[7u8; 16]);
    hello
}

/// Opens the strangers of one port: four idle connections, one that stops halfway through a
/// hello, one that sends garbage and one with another cluster's id. Returns them with what
/// each is (the one with the wrong id last).
fn strangers(address: &str, process: &mut Child) -> Vec<(&'static str, TcpStream)> {
    let mut strangers = Vec::new();
    for _ in 0..4 {
        strangers.push(("idle", connect(address, process)));
    }
    let mut half = connect(address, process);
    half.write_all(&hello("tideflow", 2)[..10]).expect("send");
    strangers.push(("half a hello", half));
    let mut garbage = connect(address, process);
    garbage
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("send");
    strangers.push(("garbage", garbage));
    let mut wrong = connect(address, process);
    wrong.write_all(&hello("guessed-id", 2)).expect("send");
    strangers.push(("a wrong id", wrong));
    strangers
}

/// Everything a stranger received until its connection closed.
fn received(stream: &mut TcpStream) -> Vec<u8> {
    stream
        .set_read_timeout(Some(GUARD))
        .expect("a read timeout");
    let mut bytes = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return bytes,
            Ok(n) => bytes.extend_from_slice(&buffer[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return bytes,
            Err(e) => panic!("reading what a stranger received: {e}"),
        }
    }
}

#[test]
fn idle_and_hostile_strangers_at_the_cluster_ports_neither_stop_the_cluster_nor_learn_its_id() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let input = input(dir.path());
    let reference = dir.path().join("reference.jsonl");
    let reference = reference.to_string_lossy().into_owned();
    let mut args = vec!["run"];
    args.extend(query(&input, "tumbling:50ms", &reference));
    assert!(tideflow(&args).status.success());

    let output = dir.path().join("out.jsonl").to_string_lossy().into_owned();
    let mut args = query(&input, "tumbling:50ms", &output);
    args.extend(["--workers", "2"]);
    let hosts = free_hosts_of(3);
    let addresses: Vec<&str> = hosts.split(',').collect();
    // Process 0 accepts processes 1 and 2, process 1 accepts process 2: each has its
    // strangers, all connected before the first peer arrives and idle until the end.
    let mut first = start(&args, 0, &hosts);
    let mut at_first = strangers(addresses[0], &mut first);
    let mut second = start(&args, 1, &hosts);
    let mut at_second = strangers(addresses[1], &mut second);
    let third = start(&args, 2, &hosts);
    let mut stderrs = Vec::new();
    for (process, child) in [(0, first), (1, second), (2, third)] {
        let done = finish(child, GUARD, "a cluster process with strangers at its port");
        let stderr = String::from_utf8_lossy(&done.stderr).into_owned();
        assert!(done.status.success(), "process {process}: {stderr}");
        stderrs.push(stderr);
    }
    assert_eq!(
        std::fs::read(&output).expect("the cluster's output"),
        std::fs::read(&reference).expect("the reference output"),
        "3 processes with strangers at their ports"
    );
    // The accepting processes say what they turned away, once each.
    for stderr in &stderrs[..2] {
        assert!(
            stderr.contains("7 cluster connections were not from its peers"),
            "{stderr}"
        );
        assert!(!stderr.contains(CLUSTER_ID), "{stderr}");
    }
    // No stranger received the cluster's id; the one with the wrong id was told why.
    for (what, stream) in at_first.iter_mut().chain(at_second.iter_mut()) {
        let bytes = received(stream);
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(CLUSTER_ID), "{what} received {text:?}");
        if *what == "a wrong id" {
            assert!(
                bytes.first() == Some(&b'R') && text.contains("another cluster"),
                "{what} received {text:?}"
            );
        } else {
            assert!(bytes.is_empty(), "{what} received {text:?}");
        }
    }
}

//! The command line's clock flags: `--max-future-skew` counts future records at exit, and
//! `--heartbeat` and `--idle-timeout` refuse a zero duration (the clocks themselves are tested
//! through the library in the root crate's `tests/all/clocks.rs`).

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, in ms since the epoch.
fn wall_ms() -> u64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    u64::try_from(since.as_millis()).unwrap()
}

#[test]
fn the_cli_counts_future_records_and_rejects_a_zero_heartbeat() {
    let dir = tempfile::tempdir().unwrap();
    let now = wall_ms();
    let base = now - now % 10_000;
    let lines: Vec<String> = [base + 1, base + 2, now + 3_600_000, base + 3]
        .iter()
        .map(|ts| format!("{{\"ts\":{ts},\"k\":\"a\"}}\n"))
        .collect();
    let input = crate::support::write(dir.path(), "events.jsonl", &lines.concat());
    let out = crate::support::tideflow(&crate::support::run_args(
        &input,
        &[
            "--max-future-skew",
            "1s",
            "--idle-timeout",
            "5s",
            "--heartbeat",
            "1s",
        ],
    ));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("0 late records dropped")
            && stderr.contains("1 future records kept from the watermark"),
        "{stderr}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("\"count\":3"), "{stdout}");

    for flag in ["--heartbeat", "--idle-timeout"] {
        let stderr = crate::support::fails(&crate::support::run_args(&input, &[flag, "0ms"]), 2);
        assert!(stderr.contains(flag), "{stderr}");
    }
}

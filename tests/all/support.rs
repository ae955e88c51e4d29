//! Helpers shared by the command-line tests: run the real binary, write inputs, expect errors.

use std::path::Path;
use std::process::{Command, Output};

/// Runs the `tideflow` binary with `args` in the repository root.
pub fn tideflow(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tideflow"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
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
    let mut args = vec![
        "run",
        "--input",
        input,
        "--time-field",
        "ts",
        "--key-field",
        "k",
        "--window",
        "tumbling:10s",
        "--agg",
        "count",
    ];
    args.extend_from_slice(extra);
    args
}

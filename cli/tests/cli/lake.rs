//! Reading Parquet outputs (and Delta tables) with the real readers, pyarrow and deltalake,
//! through `scripts/lake-tools.sh read` (which installs them from PyPI into a cache on first
//! use), for the Parquet tests.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::Value;

use crate::crash::harness::{Proc, Ran};
use crate::support::{tideflow, SplitMix64};

/// Runs `tideflow args`, which must succeed; returns its standard error.
pub fn run_ok(args: &[String]) -> String {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = tideflow(&args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "tideflow {args:?}: {stderr}");
    stderr
}

/// Runs `args` (snapshots in `ck`) and kills it with SIGKILL up to 5 times, each run after a
/// random delay below `max_ms` from its start (the first once a snapshot is complete), then
/// runs it to the end. Returns every run; at least one must have resumed from a snapshot.
pub fn kill_and_finish(args: &[String], ck: &Path, rng: &mut SplitMix64, max_ms: u64) -> Vec<Ran> {
    let mut runs = Vec::new();
    for kill in 0..5 {
        let delay = Duration::from_millis(rng.below(max_ms));
        let mut process = Proc::start(args, None);
        if kill == 0 && !process.wait_for_snapshots(ck, 1) {
            runs.push(process.collect().succeeded());
            break;
        }
        let (ran, killed) = process.kill_after(delay);
        if !killed {
            eprintln!("run {} completed after {kill} kills", runs.len() + 1);
            runs.push(ran.succeeded());
            break;
        }
        eprintln!("run {}: SIGKILL after {delay:?}", runs.len() + 1);
        runs.push(ran.no_panic());
    }
    runs.push(Proc::start(args, None).finish().succeeded());
    assert!(
        runs.iter().any(Ran::resumed),
        "no run resumed from a snapshot"
    );
    runs
}

/// Watches the log folder `log` of the output `dir` until `stop`: every file that an entry
/// (a `*.json` file, `listed` giving its files' names and sizes) names must be there whole
/// (its size, Parquet's magic at both ends) when the entry appears, and stay. Returns the
/// files seen.
pub fn watch(
    dir: PathBuf,
    log: &'static str,
    listed: fn(&str) -> Vec<(String, u64)>,
    stop: Arc<AtomicBool>,
) -> JoinHandle<BTreeSet<String>> {
    std::thread::spawn(move || {
        let mut seen = BTreeSet::new();
        loop {
            let done = stop.load(Ordering::SeqCst);
            let entries: Vec<PathBuf> = std::fs::read_dir(dir.join(log))
                .map(|listing| listing.map(|item| item.unwrap().path()).collect())
                .unwrap_or_default();
            for entry in entries.iter().filter(|path| {
                let name = path.file_name().unwrap().to_string_lossy();
                name.ends_with(".json") && !name.starts_with('.')
            }) {
                let text = std::fs::read_to_string(entry)
                    .unwrap_or_else(|e| panic!("{} vanished: {e}", entry.display()));
                for (name, size) in listed(&text) {
                    let bytes = std::fs::read(dir.join(&name)).unwrap_or_else(|e| {
                        panic!("{name}, listed by {}, cannot be read: {e}", entry.display())
                    });
                    assert_eq!(bytes.len() as u64, size, "{name}");
                    assert!(
                        bytes.starts_with(b"PAR1") && bytes.ends_with(b"PAR1"),
                        "{name}"
                    );
                    seen.insert(name);
                }
            }
            for name in &seen {
                assert!(dir.join(name).exists(), "committed {name} was removed");
            }
            if done {
                return seen;
            }
            std::thread::sleep(Duration::from_millis(3));
        }
    })
}

/// What a reader saw: the schema as `(name, pyarrow type, nullable)` and the rows.
pub struct Table {
    pub schema: Vec<(String, String, bool)>,
    pub rows: Vec<serde_json::Map<String, Value>>,
}

/// Runs `scripts/lake-tools.sh read ARGS` and returns its standard output. Fails the test
/// with one line if the readers cannot be installed or fail.
fn lake_tools(args: &[&std::ffi::OsStr]) -> String {
    let script = Path::new(crate::support::ROOT).join("scripts/lake-tools.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg("read")
        .args(args)
        .output()
        .expect("cannot run scripts/lake-tools.sh");
    if !out.status.success() {
        panic!(
            "the Parquet/Delta tests use pyarrow and deltalake (scripts/lake-tools.sh), and {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    String::from_utf8(out.stdout).expect("UTF-8 from read_lake.py")
}

/// Reads `dir` as `kind` (`parquet`: the files its commit log lists; `delta`: the table at its
/// latest version).
pub fn read(kind: &str, dir: &Path) -> Table {
    let text = lake_tools(&[kind.as_ref(), dir.as_os_str()]);
    let mut lines = text.lines();
    let schema: Vec<(String, String, bool)> =
        serde_json::from_str(lines.next().expect("a schema line")).expect("the schema");
    let rows = lines
        .map(|line| serde_json::from_str(line).expect("a row"))
        .collect();
    Table { schema, rows }
}

/// Writes the JSON lines file `source` as the Parquet file `target` with pyarrow (types
/// inferred), in row groups of `rows` rows.
pub fn write_parquet(source: &Path, target: &Path, rows: usize) {
    let rows = rows.to_string();
    lake_tools(&[
        "write-parquet".as_ref(),
        source.as_os_str(),
        target.as_os_str(),
        rows.as_ref(),
    ]);
}

/// The rows of a JSON lines file.
pub fn json_rows(path: &Path) -> Vec<serde_json::Map<String, Value>> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.lines()
        .map(|line| serde_json::from_str(line).expect("a JSON row"))
        .collect()
}

/// Whether the JSON lines output's `json` and a reader's `typed` value, of the pyarrow type
/// `kind`, are the same value: equal numbers for `double` (a JSON integer is the float), the
/// JSON value's text for `string` (a number or boolean as the CSV output writes it).
pub fn same_value(json: &Value, typed: &Value, kind: &str) -> bool {
    match (json, typed, kind) {
        (Value::Null, Value::Null, _) => true,
        (Value::Number(a), Value::Number(b), "double") => a.as_f64() == b.as_f64(),
        (Value::String(a), Value::String(b), "double") => a == b, // NaN, Infinity
        (Value::String(a), Value::String(b), "string") => a == b,
        (Value::Number(a), Value::String(b), "string") => a.to_string() == *b,
        (Value::Bool(a), Value::String(b), "string") => a.to_string() == *b,
        (a, b, _) => a == b,
    }
}

/// Asserts the reader's rows are the JSON lines rows, in order, column by column.
pub fn assert_same_rows(json: &[serde_json::Map<String, Value>], table: &Table, what: &str) {
    assert_eq!(
        json.len(),
        table.rows.len(),
        "{what}: {} JSON rows, {} read",
        json.len(),
        table.rows.len()
    );
    for (index, (want, got)) in json.iter().zip(&table.rows).enumerate() {
        for (name, kind, _) in &table.schema {
            let wanted = want.get(name).unwrap_or(&Value::Null);
            let read = got.get(name).unwrap_or(&Value::Null);
            // The JSON output writes `retract` only when it is true.
            let wanted = match (name.as_str(), wanted) {
                ("retract", Value::Null) => &Value::Bool(false),
                _ => wanted,
            };
            assert!(
                same_value(wanted, read, kind),
                "{what}: row {index}, column {name} ({kind}): JSON {wanted}, read {read}\nJSON row {want:?}\nread row {got:?}"
            );
        }
        let extra: Vec<&String> = want
            .keys()
            .filter(|k| !table.schema.iter().any(|(name, _, _)| name == *k))
            .collect();
        assert!(extra.is_empty(), "{what}: JSON columns not read: {extra:?}");
    }
}

//! The README's two commands at the repository root: `cargo run --release -- demo` runs the
//! `tideflow` binary (cargo runs the only binary of the workspace's default members) and
//! `cargo test` runs the tests of every member (all of them are default members).

use std::process::Command;

use serde_json::Value;

/// `cargo metadata` of the workspace, without its dependencies.
fn metadata() -> Value {
    let out = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(crate::support::ROOT)
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON")
}

fn ids(value: &Value) -> Vec<&str> {
    let mut ids: Vec<&str> = value
        .as_array()
        .expect("a list of package ids")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    ids.sort_unstable();
    ids
}

#[test]
fn cargo_run_and_cargo_test_at_the_root_cover_the_tideflow_binary_and_every_member() {
    let metadata = metadata();
    let defaults = ids(&metadata["workspace_default_members"]);
    assert_eq!(defaults, ids(&metadata["workspace_members"]));
    let binaries: Vec<&str> = metadata["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .filter(|package| {
            package["id"]
                .as_str()
                .is_some_and(|id| defaults.contains(&id))
        })
        .flat_map(|package| package["targets"].as_array().into_iter().flatten())
        .filter(|target| {
            target["kind"]
                .as_array()
                .is_some_and(|kinds| kinds.contains(&"bin".into()))
        })
        .filter_map(|target| target["name"].as_str())
        .collect();
    assert_eq!(binaries, ["tideflow"]);
}

//! Resuming a checkpoint with a changed query: the snapshot keeps the job's fingerprint (and
//! its state under the ids of the stateful operators that made it), so a job whose window
//! differs is refused before anything is recovered, naming the flag, and the original query
//! still resumes exactly. (`changed_job.rs` changes every other flag.)

use crate::crash::fault_job;
use crate::crash::harness::Proc;

#[test]
fn resuming_with_another_window_is_refused_naming_the_flag() {
    let base = tempfile::tempdir().unwrap();
    let dir = base.path();
    let job = fault_job();
    let reference = job.start_reference(dir, 2);
    let args = job.checkpointed(dir, 2, "200ms", &[]);
    // A crash once the first snapshot's manifest is durable: the checkpoint holds the
    // tumbling window's state.
    Proc::start(&args, Some("after-manifest"))
        .finish()
        .crashed_at_fault();

    // The same checkpoint with a session window instead: refused, naming the window then and
    // now.
    let changed: Vec<String> = args
        .iter()
        .map(|arg| match arg.as_str() {
            "tumbling:100ms" => "session:100ms".to_string(),
            _ => arg.clone(),
        })
        .collect();
    assert_ne!(changed, args, "the test job has a tumbling:100ms window");
    let refused = Proc::start(&changed, None).finish();
    assert!(!refused.status.success(), "{}", refused.stderr);
    let line = refused
        .stderr
        .lines()
        .find(|line| line.starts_with("tideflow: snapshot: "))
        .unwrap_or_else(|| panic!("no snapshot error:\n{}", refused.stderr));
    assert!(
        line.contains(
            "was written by a different job: --window tumbling:100ms then, session:100ms now"
        ),
        "{line}"
    );

    // The original query resumes from that snapshot to the uninterrupted output.
    let recovered = Proc::start(&args, None).finish().succeeded();
    assert!(recovered.resumed(), "{}", recovered.stderr);
    reference.finish().succeeded();
    job.assert_reference_output(dir, dir);
}

//! Recovery when a job starts: the newest usable snapshot, checked against the job's
//! fingerprint, and the sinks' committers told what it committed (`Committer::recover`, then
//! `Committer::abort`).

use std::collections::HashMap;

use super::commit::{CommitContext, CommitTarget, Committer, Prepared, Recovered, ReopenCommitter};
use super::files::{self, PartBody};
use super::job::{self, JobFingerprint};
use super::storage::{CheckpointStorage, Location, SnapshotId};
use super::{Fault, ResumeFrom};
use crate::error::Error;

/// Takes the checkpoint directory over for a new execution and returns its number and the
/// snapshot to resume from, if any. The snapshot is checked against the job's fingerprint
/// `job` first, so that a job that does not match is refused without writing anything (a run
/// that still writes there is not fenced by a job that cannot take over). If snapshots were
/// written between that look and the takeover, the newest usable one is found and checked
/// again.
pub(super) fn take_over(
    storage: &dyn CheckpointStorage,
    job: &JobFingerprint,
) -> Result<(u64, Option<ResumeFrom>), Error> {
    let listed = list_snapshots(storage)?;
    let mut resume = newest_usable(storage)?;
    check_job(storage, job, resume.as_ref())?;
    let execution = files::read_execution(storage)? + 1;
    files::write_execution(storage, execution)?;
    // The directory's id is made once, by the first job that takes it over.
    files::checkpoint_id(storage)?;
    if list_snapshots(storage)? != listed {
        resume = newest_usable(storage)?;
        check_job(storage, job, resume.as_ref())?;
    }
    Ok((execution, resume))
}

/// Another process of a cluster: the snapshot process 0 resumes from (its epoch and execution),
/// read from the shared checkpoint directory and checked against the job's fingerprint.
pub(super) fn follow(
    storage: &dyn CheckpointStorage,
    job: &JobFingerprint,
    resume: Option<(u64, u64)>,
) -> Result<Option<ResumeFrom>, Error> {
    let Some((epoch, execution)) = resume else {
        return Ok(None);
    };
    let id = SnapshotId { epoch, execution };
    let manifest = files::verify_snapshot(storage, id).map_err(|error| {
        Error::Snapshot(format!(
            "process 0 resumes from {}, which this process cannot read (every process must see the same checkpoint directory): {}",
            storage.describe(Some(Location::Snapshot(id))),
            error.to_string().trim_start_matches("snapshot: ")
        ))
    })?;
    let from = ResumeFrom { id, manifest };
    check_job(storage, job, Some(&from))?;
    Ok(Some(from))
}

/// Checks that the job described by `job` may resume `from`.
fn check_job(
    storage: &dyn CheckpointStorage,
    job: &JobFingerprint,
    from: Option<&ResumeFrom>,
) -> Result<(), Error> {
    match from {
        Some(from) => job::check(job, from.manifest.job.as_deref(), &storage.describe(None)),
        None => Ok(()),
    }
}

/// The newest snapshot whose manifest and parts verify, if any. Snapshots skipped are
/// reported; if only damaged ones are left (a manifest that does not verify), recovery fails
/// naming the file.
pub(super) fn newest_usable(storage: &dyn CheckpointStorage) -> Result<Option<ResumeFrom>, Error> {
    let mut resume = None;
    let mut damaged: Option<Error> = None;
    for id in list_snapshots(storage)? {
        match files::verify_snapshot(storage, id) {
            Ok(manifest) => {
                resume = Some(ResumeFrom { id, manifest });
                break;
            }
            Err(error) => {
                note!("tideflow: warning: skipping a damaged or incomplete snapshot: {error}");
                // A snapshot without a manifest does not exist; one with a manifest that
                // does not verify is damaged.
                if storage.exists(Location::In(id, files::MANIFEST)) {
                    damaged.get_or_insert(error);
                }
            }
        }
    }
    if let (None, Some(error)) = (&resume, damaged) {
        return Err(Error::Snapshot(format!(
            "no usable snapshot in {} (refusing to start from partial state): {}",
            storage.describe(None),
            error.to_string().trim_start_matches("snapshot: ")
        )));
    }
    Ok(resume)
}

/// Recovers, before the workers start, the sinks of `from` that its manifest can reopen (file
/// sinks: their entry names the output file; Kafka sinks, when `from` is final: their entry
/// describes the brokers and topic): by sink name, what each had committed.
pub(super) fn recover_reopenable(
    storage: &dyn CheckpointStorage,
    fault: &Fault,
    from: &ResumeFrom,
    execution: u64,
    reopen: ReopenCommitter,
) -> Result<HashMap<String, Recovered>, Error> {
    // Every output is verified before any recovers, so that a refused job writes nothing.
    let mut reopened = Vec::new();
    for sink in &from.manifest.sinks {
        let target = match (&sink.output, &sink.reopen) {
            (Some(output), _) => CommitTarget::File(output.clone()),
            // Only a final snapshot's: its job is not built again. Otherwise the sink's own
            // committer, with its whole configuration (secrets the manifest does not keep),
            // recovers when the job registers it.
            (None, Some(info)) if from.manifest.is_final => CommitTarget::Reopen {
                kind: info.kind.clone(),
                spec: info.spec.clone(),
            },
            (None, _) => continue,
        };
        let mut committer = reopen(&target)?;
        committer.verify(&CommitContext::new(&sink.name, execution, storage, fault))?;
        reopened.push((sink.name.as_str(), committer));
    }
    let mut recovered = HashMap::new();
    for (name, mut committer) in reopened {
        let context = CommitContext::new(name, execution, storage, fault);
        let recovery = recover(storage, from, name, &mut *committer, &context)?;
        recovered.insert(name.to_string(), recovery);
    }
    fault.during_recovery();
    Ok(recovered)
}

/// The snapshots in `storage`, newest first.
fn list_snapshots(storage: &dyn CheckpointStorage) -> Result<Vec<SnapshotId>, Error> {
    storage.snapshots().map_err(|e| {
        Error::io(
            format!(
                "cannot list the checkpoint directory {}",
                storage.describe(None)
            ),
            e,
        )
    })
}

/// Verifies sink `name`'s committed output, recovers its committer with its part of the
/// snapshot `from`, if the manifest lists the sink, then aborts what earlier executions left
/// beyond it.
pub(super) fn recover(
    storage: &dyn CheckpointStorage,
    from: &ResumeFrom,
    name: &str,
    committer: &mut dyn Committer,
    context: &CommitContext<'_>,
) -> Result<Recovered, Error> {
    committer.verify(context)?;
    let prepared = match from.manifest.sinks.iter().any(|s| s.name == name) {
        true => Some(sink_part(storage, from, name)?),
        false => None,
    };
    let recovered = committer.recover(
        prepared.as_deref().map(|bytes| Prepared {
            epoch: from.manifest.epoch,
            bytes,
        }),
        context,
    )?;
    committer.abort(context)?;
    Ok(recovered)
}

/// Sink `name`'s part of the snapshot `from`: the bytes it pre-committed.
fn sink_part(
    storage: &dyn CheckpointStorage,
    from: &ResumeFrom,
    name: &str,
) -> Result<Vec<u8>, Error> {
    let manifest = || storage.describe(Some(Location::In(from.id, files::MANIFEST)));
    let part = from
        .manifest
        .parts
        .iter()
        .find(|p| p.file == format!("{name}.part"))
        .ok_or_else(|| {
            Error::Snapshot(format!(
                "{}: lists sink {name} without its part",
                manifest()
            ))
        })?;
    match files::read_part(storage, from.id, part)? {
        PartBody::Sink(bytes) => Ok(bytes),
        _ => Err(Error::Snapshot(format!(
            "{}: not a sink's part",
            storage.describe(Some(Location::In(from.id, &part.file)))
        ))),
    }
}

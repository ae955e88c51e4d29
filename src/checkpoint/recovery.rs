//! Recovery when a job starts: the newest usable snapshot, and the sinks' committers told what
//! it committed (`Committer::recover`, then `Committer::abort`).

use std::collections::HashMap;

use super::commit::{CommitContext, Committer, Prepared, Recovered, ReopenCommitter};
use super::files::{self, PartBody};
use super::storage::{CheckpointStorage, Location, SnapshotId};
use super::{Fault, ResumeFrom};
use crate::error::Error;

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
                eprintln!("tideflow: warning: skipping a damaged or incomplete snapshot: {error}");
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
/// sinks: their entry names the output file): by sink name, what each had committed.
pub(super) fn recover_reopenable(
    storage: &dyn CheckpointStorage,
    fault: &Fault,
    from: &ResumeFrom,
    execution: u64,
    reopen: ReopenCommitter,
) -> Result<HashMap<String, Recovered>, Error> {
    let mut recovered = HashMap::new();
    for sink in &from.manifest.sinks {
        let Some(output) = &sink.output else {
            continue;
        };
        let mut committer = reopen(output.clone());
        let context = CommitContext::new(&sink.name, execution, storage, fault);
        let recovery = recover(storage, from, &sink.name, &mut *committer, &context)?;
        recovered.insert(sink.name.clone(), recovery);
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

/// Recovers sink `name`'s committer with its part of the snapshot `from`, if the manifest
/// lists the sink, then aborts what earlier executions left beyond it.
pub(super) fn recover(
    storage: &dyn CheckpointStorage,
    from: &ResumeFrom,
    name: &str,
    committer: &mut dyn Committer,
    context: &CommitContext<'_>,
) -> Result<Recovered, Error> {
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

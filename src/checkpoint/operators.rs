//! The stateful operators' side of snapshots: each operator instance registered under its
//! id, its restored frames found by the id, and the check, when a worker has built its
//! dataflow, that the job's operators are the snapshot's (docs/ARCHITECTURE.md "Snapshots").

use std::collections::BTreeMap;
use tideflow_operators::snapshot::{owns_group, Frame};

use super::files::{self, OperatorInfo, PartBody, PartInfo};
use super::storage::Location;
use super::{Checkpointer, Registration, State};
use crate::error::Error;

impl Checkpointer {
    /// Registers the instance of stateful operator `id` (of kind `kind`) on `worker`.
    pub(super) fn register_operator(&self, worker: usize, id: &str, kind: &str) -> usize {
        let mut state = self.lock();
        state.registrations.push(Registration {
            name: files::operator_stem(id, worker),
            kind: kind.to_string(),
            operator: Some((id.to_string(), worker)),
            committer: None,
            finished: None,
        });
        state.registrations.len() - 1
    }

    /// The restored frames of operator `id` (of kind `kind`) for `worker`: none if the
    /// snapshot holds no state of an operator `id` of that kind ([`Checkpointer::worker_built`]
    /// then stops the job, naming it).
    pub(super) fn restored_frames(
        &self,
        id: &str,
        kind: &str,
        worker: usize,
    ) -> Result<Vec<Frame>, Error> {
        let Some(from) = &self.resume else {
            return Ok(Vec::new());
        };
        let mut restored = self
            .restored
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if !restored.contains_key(id) {
            // The first worker to ask reads the operator's parts once and sorts its frames by
            // the worker that owns their key group now.
            let mut by_worker: Vec<Vec<Frame>> = vec![Vec::new(); self.peers];
            for part in from
                .manifest
                .parts
                .iter()
                .filter(|p| p.operator.as_deref() == Some(id) && p.kind == kind)
            {
                match files::read_part(&*self.storage, from.id, part)? {
                    PartBody::Operator(frames) => {
                        for frame in frames {
                            let owner = (u64::from(frame.group) % self.peers as u64) as usize;
                            by_worker[owner].push(frame);
                        }
                    }
                    _ => return Err(self.mismatch(from.id, &part.file, "another kind", kind)),
                }
            }
            restored.insert(id.to_string(), by_worker);
        }
        let frames = restored
            .get_mut(id)
            .map(|by_worker| std::mem::take(&mut by_worker[worker]))
            .unwrap_or_default();
        debug_assert!(frames
            .iter()
            .all(|f| owns_group(u64::from(f.group), worker, self.peers)));
        Ok(frames)
    }

    /// Checks that the stateful operators `worker` registered are those of the snapshot the job
    /// resumes from, if any.
    pub(super) fn check_operators(&self, state: &State, worker: usize) -> Result<(), Error> {
        let Some(from) = &self.resume else {
            return Ok(());
        };
        let built: BTreeMap<&str, &str> = state
            .registrations
            .iter()
            .filter_map(|r| match &r.operator {
                Some((id, on)) if *on == worker => Some((id.as_str(), r.kind.as_str())),
                _ => None,
            })
            .collect();
        let snapshot = self.storage.describe(Some(Location::Snapshot(from.id)));
        operators_match(&snapshot, &from.manifest.operators, &built)
    }
}

/// The manifest's entry of `registration`'s part `info`: an operator's names its id and worker.
pub(super) fn part_of(registration: &Registration, info: &PartInfo) -> PartInfo {
    let mut info = info.clone();
    if let Some((id, worker)) = &registration.operator {
        info.operator = Some(id.clone());
        info.worker = Some(*worker);
    }
    info
}

/// The stateful operators of the job, by id (every worker registers the same ones).
pub(super) fn listed(registrations: &[Registration]) -> Vec<OperatorInfo> {
    let operators: BTreeMap<&str, &str> = registrations
        .iter()
        .filter_map(|r| {
            r.operator
                .as_ref()
                .map(|(id, _)| (id.as_str(), r.kind.as_str()))
        })
        .collect();
    operators
        .into_iter()
        .map(|(id, kind)| OperatorInfo {
            id: id.to_string(),
            kind: kind.to_string(),
        })
        .collect()
}

/// Checks that the stateful operators a worker built (`built`: id to kind) are those the
/// snapshot `snapshot` holds state for (`saved`), naming every one that is not.
fn operators_match(
    snapshot: &str,
    saved: &[OperatorInfo],
    built: &BTreeMap<&str, &str>,
) -> Result<(), Error> {
    let mut problems = Vec::new();
    for operator in saved {
        match built.get(operator.id.as_str()) {
            None => problems.push(format!(
                "the job has no operator \"{}\" that the snapshot holds state for",
                operator.id
            )),
            Some(kind) if *kind != operator.kind => problems.push(format!(
                "operator \"{}\" is a {kind} operator in the job and a {} operator in the snapshot",
                operator.id, operator.kind
            )),
            Some(_) => {}
        }
    }
    for id in built.keys() {
        if !saved.iter().any(|operator| operator.id == *id) {
            problems.push(format!(
                "operator \"{id}\" is new: the snapshot holds no state for it"
            ));
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(Error::Snapshot(format!(
        "{snapshot}: {}",
        problems.join("; ")
    )))
}

//! Completing a snapshot: the parts of participants that ended, the manifest listing every
//! part (in a cluster, every process's), the sinks' commits, the fence checked before each
//! write, the removal of old snapshots, and abandoning a snapshot that failed.

use std::sync::atomic::Ordering;

use super::commit::CommitTarget;
use super::files::{self, Manifest, PartBody, PartInfo, SinkInfo};
use super::storage::Location;
use super::{job, operators, Checkpointer, State};
use crate::error::Error;

impl Checkpointer {
    /// Abandons the pending snapshot after `error`: removes its files; no snapshot is started
    /// again, and the error stops the job.
    pub(super) fn abandon(&self, state: &mut State, error: Error) -> Error {
        if let Some(pending) = state.pending.take() {
            self.storage.remove_snapshot(pending.id);
            self.pending_epoch.store(u64::MAX, Ordering::Release);
            state.broken = true;
            return Error::Snapshot(format!(
                "the snapshot at epoch {} was abandoned and its files removed (the previous snapshot is intact; run the same command again to resume from it): {error}",
                pending.epoch
            ));
        }
        error
    }

    /// Completes the pending snapshot if every registration has handed in its part or ended.
    pub(super) fn complete_if_ready(&self, state: &mut State) -> Result<(), Error> {
        let Some(pending) = state.pending.as_ref() else {
            return Ok(());
        };
        if pending.handed_in
            || state.built < self.local_workers
            || !state
                .registrations
                .iter()
                .enumerate()
                .all(|(i, r)| pending.parts.contains_key(&i) || r.finished.is_some())
        {
            return Ok(());
        }
        let completed = match &self.post {
            Some(_) => self.hand_in(state),
            None => self.complete(state),
        };
        match completed {
            Ok(()) => Ok(()),
            Err(error) => Err(self.abandon(state, error)),
        }
    }

    pub(super) fn complete(&self, state: &mut State) -> Result<(), Error> {
        self.write_rest(state)?;
        self.fault.after_parts();
        self.check_fence()?;
        self.write_manifest_and_commit(state)
    }

    /// Writes the parts of the participants that ended (their last part) into the pending
    /// snapshot.
    pub(super) fn write_rest(&self, state: &mut State) -> Result<(), Error> {
        let is_final;
        let id;
        {
            let pending = state.pending.as_mut().expect("a pending snapshot");
            is_final = pending.epoch == u64::MAX;
            id = pending.id;
            // Participants that ended hand in their last part.
            for (index, registration) in state.registrations.iter().enumerate() {
                if pending.parts.contains_key(&index) {
                    continue;
                }
                let body = match &registration.finished {
                    Some(PartBody::Sink(bytes)) if is_final => {
                        pending.sink_output.insert(index, bytes.clone());
                        PartBody::Sink(bytes.clone())
                    }
                    Some(PartBody::Sink(_)) => PartBody::Sink(Vec::new()),
                    Some(PartBody::Source(cursors)) => PartBody::Source(cursors.clone()),
                    Some(PartBody::Operator(_)) | None => PartBody::Operator(Vec::new()),
                };
                let info = files::write_part(
                    &*self.storage,
                    id,
                    &registration.name,
                    &registration.kind,
                    &body,
                )?;
                pending.parts.insert(index, info);
            }
        }
        Ok(())
    }

    /// This process's parts of the pending snapshot, as the manifest lists them, in
    /// registration order.
    pub(super) fn local_parts(&self, state: &State) -> Vec<PartInfo> {
        let pending = state.pending.as_ref().expect("a pending snapshot");
        let mut parts: Vec<(usize, PartInfo)> = pending
            .parts
            .iter()
            .map(|(index, info)| {
                (
                    *index,
                    operators::part_of(&state.registrations[*index], info),
                )
            })
            .collect();
        parts.sort_by_key(|(index, _)| *index);
        parts.into_iter().map(|(_, info)| info).collect()
    }

    /// Writes the manifest of the pending snapshot, whose parts are all written (in a cluster,
    /// by every process), then has the sinks commit its output and removes old snapshots.
    pub(super) fn write_manifest_and_commit(&self, state: &mut State) -> Result<(), Error> {
        let pending = state.pending.as_ref().expect("a pending snapshot");
        let epoch = pending.epoch;
        let is_final = epoch == u64::MAX;
        let id = pending.id;
        let mut parts = self.local_parts(state);
        let pending = state.pending.as_ref().expect("a pending snapshot");
        parts.extend(pending.remote.values().flatten().cloned());
        let operators = operators::listed(&state.registrations);
        let sinks: Vec<SinkInfo> = state
            .registrations
            .iter()
            .filter_map(|r| {
                r.committer.as_ref().map(|committer| SinkInfo {
                    name: r.name.clone(),
                    output: match committer.target() {
                        CommitTarget::File(output) => Some(output),
                        _ => None,
                    },
                    reopen: match committer.target() {
                        CommitTarget::Reopen { kind, spec } => {
                            Some(files::ReopenInfo { kind, spec })
                        }
                        _ => None,
                    },
                })
            })
            .collect();
        let manifest = Manifest {
            version: files::MANIFEST_VERSION,
            epoch,
            execution: self.execution,
            peers: self.peers,
            is_final,
            operators,
            job: Some(job::to_manifest(&self.job)),
            parts,
            sinks,
        };
        files::write_manifest(&*self.storage, id, &manifest)?;
        self.storage
            .sync()
            .map_err(|e| Error::io(format!("cannot sync {}", self.storage.describe(None)), e))?;
        // From here on the snapshot exists: a failure stops the job, recovery commits.
        let pending = state.pending.take().expect("a pending snapshot");
        self.pending_epoch.store(u64::MAX, Ordering::Release);
        self.fault.after_manifest();
        let mut outputs: Vec<(usize, Vec<u8>)> = pending.sink_output.into_iter().collect();
        outputs.sort_by_key(|(index, _)| *index);
        for (index, bytes) in outputs {
            self.check_fence()?;
            let registration = &mut state.registrations[index];
            let committer = registration
                .committer
                .as_mut()
                .expect("a sink registration");
            let context = self.context(&registration.name);
            committer.commit(epoch, &bytes, &context)?;
        }
        self.collect_garbage();
        let bytes = manifest.parts.iter().map(|p| p.size).sum();
        state.report.record(epoch, bytes, pending.started.elapsed());
        state.committed(epoch, self.interval);
        if self.post.is_some() {
            self.committed_in_cluster(state, epoch)?;
        }
        Ok(())
    }

    /// Fails if a newer run has taken over the checkpoint directory.
    pub(super) fn check_fence(&self) -> Result<(), Error> {
        let owner = files::read_execution(&*self.storage)?;
        if owner != self.execution {
            return Err(Error::Snapshot(format!(
                "{}: execution {owner} has taken over this checkpoint directory; this run (execution {}) stops without writing",
                self.storage.describe(Some(Location::Top(files::EXECUTION))),
                self.execution
            )));
        }
        Ok(())
    }

    /// Keeps the newest `keep` complete snapshots and removes the rest (and any incomplete
    /// leftover).
    pub(super) fn collect_garbage(&self) {
        let Ok(snapshots) = self.storage.snapshots() else {
            return;
        };
        let mut kept = 0;
        for id in snapshots {
            if kept < self.keep && self.storage.exists(Location::In(id, files::MANIFEST)) {
                kept += 1;
                continue;
            }
            self.storage.remove_snapshot(id);
        }
    }
}

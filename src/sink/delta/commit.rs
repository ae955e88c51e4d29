//! The Delta sink's committer: one table version per completed snapshot, adding the files the
//! pre-commit staged (renamed into the table's folder first) and carrying a transaction
//! action (`txn`) whose application id is the job's (`tideflow-` and the checkpoint
//! directory's id) and whose version is the epoch: the mechanism of Spark's Delta streaming
//! sink. A commit whose epoch the table's newest `txn` of the job already has is skipped, so
//! a commit replayed after a crash adds nothing twice. Recovery finishes the commit of the
//! snapshot resumed from if the table is behind it, and clears the staging folder.

use std::path::PathBuf;

use arrow_schema::SchemaRef;

use super::log::{now_ms, DeltaTable};
use crate::checkpoint::commit::{CommitContext, CommitTarget, Committer, Prepared, Recovered};
use crate::error::Error;
use crate::sink::parquet::commit::Staged;
use crate::sink::parquet::{clear_staging, rename_staged};

/// The committer kind the manifest names (`CommitTarget::Reopen`).
pub(crate) const KIND: &str = "delta";

/// An epoch as a `txn` version (`u64::MAX`, the final epoch, as `i64::MAX`).
fn txn_version(epoch: u64) -> i64 {
    i64::try_from(epoch).unwrap_or(i64::MAX)
}

/// Commits a Delta sink's staged files to its table.
pub(crate) struct DeltaCommitter {
    dir: PathBuf,
    /// The job's schema (`None` when reopened from the manifest: the table exists then).
    schema: Option<SchemaRef>,
    /// The table, once read.
    table: Option<DeltaTable>,
}

impl DeltaCommitter {
    /// Commits to the table in `dir`, creating it with `schema` if it is missing.
    pub(crate) fn new(dir: PathBuf, schema: SchemaRef) -> Self {
        DeltaCommitter {
            dir,
            schema: Some(schema),
            table: None,
        }
    }

    /// Reopens the committer the manifest names (`spec`: the table's folder).
    pub(crate) fn reopen(spec: &str) -> Self {
        DeltaCommitter {
            dir: PathBuf::from(spec),
            schema: None,
            table: None,
        }
    }

    fn table(&mut self) -> Result<&mut DeltaTable, Error> {
        if self.table.is_none() {
            self.table = Some(DeltaTable::open(&self.dir)?);
        }
        Ok(self.table.as_mut().expect("read above"))
    }

    /// Commits the files `prepared` staged for `epoch`, unless the table has that epoch.
    fn publish(
        &mut self,
        epoch: u64,
        prepared: &[u8],
        context: &CommitContext<'_>,
    ) -> Result<(), Error> {
        let app = app_id(context)?;
        let version = txn_version(epoch);
        let dir = self.dir.clone();
        let table = self.table()?;
        if table.txn(&app).is_some_and(|done| done >= version) {
            return Ok(());
        }
        let staged = Staged::decode(prepared)?;
        if staged.files.is_empty() {
            return Ok(());
        }
        rename_staged(&dir, &staged.files)?;
        context.mid_commit_then(|| ());
        let mut actions = vec![serde_json::json!({"txn": {
            "appId": app,
            "version": version,
            "lastUpdated": now_ms(),
        }})];
        actions.extend(DeltaTable::add_actions(&staged.files));
        table.commit(actions, "STREAMING UPDATE")
    }
}

/// The job's application id in the table's `txn` actions.
fn app_id(context: &CommitContext<'_>) -> Result<String, Error> {
    Ok(format!("tideflow-{}", context.checkpoint_id()?))
}

impl Committer for DeltaCommitter {
    fn commit(
        &mut self,
        epoch: u64,
        prepared: &[u8],
        context: &CommitContext<'_>,
    ) -> Result<(), Error> {
        self.publish(epoch, prepared, context)
    }

    /// Refuses a table whose schema is not the job's, naming the column.
    fn verify(&mut self, _context: &CommitContext<'_>) -> Result<(), Error> {
        let schema = self.schema.clone();
        let table = self.table()?;
        match schema {
            Some(schema) => table.check_schema(&schema),
            None => Ok(()),
        }
    }

    /// Creates the table if it is missing, then finishes the commit of the snapshot resumed
    /// from if the table's `txn` of the job is behind it.
    fn recover(
        &mut self,
        committed: Option<Prepared<'_>>,
        context: &CommitContext<'_>,
    ) -> Result<Recovered, Error> {
        let schema = self.schema.clone();
        let dir = self.dir.clone();
        let table = self.table()?;
        if !table.exists() {
            let Some(schema) = schema else {
                return Err(Error::Snapshot(format!(
                    "delta:{}: the table the job committed to is gone",
                    dir.display()
                )));
            };
            let actions = table.create_actions(&schema)?;
            table.commit(actions, "CREATE TABLE")?;
        }
        if let Some(prepared) = committed {
            self.publish(prepared.epoch, prepared.bytes, context)?;
        }
        clear_staging(&dir)?;
        let app = app_id(context)?;
        let done = self.table()?.txn(&app);
        let done = done.map(|v| if v == i64::MAX { u64::MAX } else { v as u64 });
        Ok(Recovered {
            epoch: done
                .unwrap_or(0)
                .max(committed.map_or(0, |prepared| prepared.epoch)),
            resumed: done.is_some(),
        })
    }

    /// Clears the staging folder (files of a pre-commit whose manifest was never written).
    fn abort(&mut self, _context: &CommitContext<'_>) -> Result<(), Error> {
        clear_staging(&self.dir)
    }

    fn target(&self) -> CommitTarget {
        CommitTarget::Reopen {
            kind: KIND.to_string(),
            spec: self.dir.to_string_lossy().into_owned(),
        }
    }
}

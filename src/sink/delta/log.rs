//! A Delta Lake table's transaction log, read and appended to as the Delta protocol says
//! (PROTOCOL.md of delta-io/delta, reader version 1, writer version 2): `_delta_log/` holds
//! one JSON file per table version, `NNNNNNNNNNNNNNNNNNNN.json`, each line an action
//! (`protocol`, `metaData`, `add`, `remove`, `txn`, `commitInfo`). A version is committed by
//! creating its file, which must not exist yet (put-if-absent: a hard link of a synced
//! temporary file), so two writers never both commit one version.
//!
//! Only what the sink needs is read back: the newest version, the schema of the newest
//! `metaData`, each application's newest `txn` version (the idempotence of the exactly-once
//! commits), and the files the table holds (what an overwrite removes). A log whose JSON
//! commits were cleaned up behind a checkpoint is refused: the sink does not read checkpoints.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use arrow_schema::{DataType, Schema, TimeUnit};
use serde_json::{json, Value};

use crate::error::Error;
use crate::sink::parquet::LoggedFile;

/// The log's folder in a table.
pub(crate) const DELTA_LOG: &str = "_delta_log";

/// What the sink knows of a table at its newest version.
pub(crate) struct DeltaTable {
    dir: PathBuf,
    /// The newest version, `None` for a table not created yet.
    version: Option<u64>,
    /// The fields of the newest schema: name, Delta type, nullable.
    schema: Option<Vec<(String, String, bool)>>,
    /// Each application's newest transaction version.
    txns: HashMap<String, i64>,
    /// The data files the table holds, with their sizes.
    files: BTreeMap<String, u64>,
}

impl DeltaTable {
    /// Reads the log of the table in `dir` (a missing log: a table not created yet).
    pub(crate) fn open(dir: &Path) -> Result<Self, Error> {
        let mut table = DeltaTable {
            dir: dir.to_path_buf(),
            version: None,
            schema: None,
            txns: HashMap::new(),
            files: BTreeMap::new(),
        };
        let log = dir.join(DELTA_LOG);
        let listing = match fs::read_dir(&log) {
            Ok(listing) => listing,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(table),
            Err(e) => return Err(Error::io(format!("cannot list {}", log.display()), e)),
        };
        let mut versions = Vec::new();
        for item in listing {
            let item = item.map_err(|e| Error::io(format!("cannot list {}", log.display()), e))?;
            let name = item.file_name();
            let version = name
                .to_str()
                .and_then(|name| name.strip_suffix(".json"))
                .filter(|stem| stem.len() == 20)
                .and_then(|stem| stem.parse::<u64>().ok());
            versions.extend(version);
        }
        versions.sort_unstable();
        for (expected, version) in versions.iter().enumerate() {
            if *version != expected as u64 {
                return Err(Error::Config(format!(
                    "{}: the table's log has no commit file for version {expected} (cleaned up behind a checkpoint?); tideflow appends only to a table whose JSON commits are all there",
                    log.display()
                )));
            }
            table.apply(*version)?;
        }
        Ok(table)
    }

    /// Applies the actions of version `version`.
    fn apply(&mut self, version: u64) -> Result<(), Error> {
        let path = self.dir.join(DELTA_LOG).join(commit_name(version));
        let text = fs::read_to_string(&path)
            .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
        for line in text.lines().filter(|line| !line.trim().is_empty()) {
            let action: Value = serde_json::from_str(line).map_err(|e| {
                Error::Snapshot(format!("{}: not a Delta log action: {e}", path.display()))
            })?;
            if let Some(add) = action.get("add") {
                if let Some(file) = add["path"].as_str() {
                    let size = add["size"].as_u64().unwrap_or(0);
                    self.files.insert(file.to_string(), size);
                }
            } else if let Some(remove) = action.get("remove") {
                if let Some(file) = remove["path"].as_str() {
                    self.files.remove(file);
                }
            } else if let Some(txn) = action.get("txn") {
                if let (Some(app), Some(v)) = (txn["appId"].as_str(), txn["version"].as_i64()) {
                    self.txns.insert(app.to_string(), v);
                }
            } else if let Some(metadata) = action.get("metaData") {
                self.schema = Some(parse_schema(&metadata["schemaString"], &path)?);
            }
        }
        self.version = Some(version);
        Ok(())
    }

    /// Whether the table exists (has a version).
    pub(crate) fn exists(&self) -> bool {
        self.version.is_some()
    }

    /// The newest transaction version of application `app`, if it committed one.
    pub(crate) fn txn(&self, app: &str) -> Option<i64> {
        self.txns.get(app).copied()
    }

    /// Fails, naming the first column that differs, if the table's schema is not `schema`.
    pub(crate) fn check_schema(&self, schema: &Schema) -> Result<(), Error> {
        let Some(table) = &self.schema else {
            return Ok(());
        };
        let job = delta_fields(schema)?;
        let place = self.dir.display();
        for (index, (name, kind, nullable)) in job.iter().enumerate() {
            let describe = |kind: &str, nullable: bool| {
                format!("{kind}{}", if nullable { "" } else { " not null" })
            };
            match table.iter().find(|(other, _, _)| other == name) {
                None => {
                    return Err(Error::Config(format!(
                        "delta:{place}: the table has no column {name} ({}), which the job writes; write to a new table",
                        describe(kind, *nullable)
                    )))
                }
                Some((_, other, other_nullable)) if other != kind || other_nullable != nullable => {
                    return Err(Error::Config(format!(
                        "delta:{place}: column {name} is {} in the table but {} in the job's rows; write to a new table, or declare the type with --column-type",
                        describe(other, *other_nullable),
                        describe(kind, *nullable)
                    )))
                }
                Some(_) if table.get(index).map(|f| &f.0) != Some(name) => {
                    return Err(Error::Config(format!(
                        "delta:{place}: column {name} is not at position {} in the table; write to a new table",
                        index + 1
                    )))
                }
                Some(_) => {}
            }
        }
        if let Some((name, _, _)) = table.get(job.len()) {
            return Err(Error::Config(format!(
                "delta:{place}: the table has a column {name} that the job does not write; write to a new table"
            )));
        }
        Ok(())
    }

    /// The actions that create the table with `schema` (version 0), or none if it exists.
    pub(crate) fn create_actions(&self, schema: &Schema) -> Result<Vec<Value>, Error> {
        if self.exists() {
            return Ok(Vec::new());
        }
        let fields: Vec<Value> = delta_fields(schema)?
            .into_iter()
            .map(|(name, kind, nullable)| {
                json!({"name": name, "type": kind, "nullable": nullable, "metadata": {}})
            })
            .collect();
        let schema_string = json!({"type": "struct", "fields": fields}).to_string();
        Ok(vec![
            json!({"protocol": {"minReaderVersion": 1, "minWriterVersion": 2}}),
            json!({"metaData": {
                "id": table_id(&self.dir),
                "format": {"provider": "parquet", "options": {}},
                "schemaString": schema_string,
                "partitionColumns": [],
                "configuration": {},
                "createdTime": now_ms(),
            }}),
        ])
    }

    /// The `add` actions of `files` (in the table's folder).
    pub(crate) fn add_actions(files: &[LoggedFile]) -> Vec<Value> {
        let now = now_ms();
        files
            .iter()
            .map(|file| {
                json!({"add": {
                    "path": file.name,
                    "partitionValues": {},
                    "size": file.bytes,
                    "modificationTime": now,
                    "dataChange": true,
                    "stats": json!({"numRecords": file.rows}).to_string(),
                }})
            })
            .collect()
    }

    /// The `remove` actions of every file the table holds (an overwrite).
    pub(crate) fn remove_all_actions(&self) -> Vec<Value> {
        let now = now_ms();
        self.files
            .iter()
            .map(|(path, size)| {
                json!({"remove": {
                    "path": path,
                    "deletionTimestamp": now,
                    "dataChange": true,
                    "extendedFileMetadata": true,
                    "partitionValues": {},
                    "size": size,
                }})
            })
            .collect()
    }

    /// Commits `actions` (and a `commitInfo` naming `operation`) as the next version. Fails if
    /// another writer committed that version first.
    pub(crate) fn commit(&mut self, mut actions: Vec<Value>, operation: &str) -> Result<(), Error> {
        let version = self.version.map_or(0, |v| v + 1);
        actions.push(json!({"commitInfo": {
            "timestamp": now_ms(),
            "operation": operation,
            "engineInfo": format!("tideflow {}", env!("CARGO_PKG_VERSION")),
        }}));
        let mut text = String::new();
        for action in &actions {
            text.push_str(&action.to_string());
            text.push('\n');
        }
        let log = self.dir.join(DELTA_LOG);
        fs::create_dir_all(&log)
            .map_err(|e| Error::io(format!("cannot create {}", log.display()), e))?;
        let path = log.join(commit_name(version));
        let temporary = log.join(format!(".{}.tmp", commit_name(version)));
        let failed = |e| Error::io(format!("cannot write {}", path.display()), e);
        let mut file = fs::File::create(&temporary).map_err(failed)?;
        file.write_all(text.as_bytes()).map_err(failed)?;
        file.sync_all().map_err(failed)?;
        let linked = fs::hard_link(&temporary, &path);
        let _ = fs::remove_file(&temporary);
        match linked {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(Error::Config(format!(
                    "delta:{}: another writer committed version {version} of the table at the same time; a table takes one tideflow job",
                    self.dir.display()
                )))
            }
            Err(e) => return Err(failed(e)),
        }
        crate::sink::parquet::sync_dir(&log)?;
        self.apply(version)
    }
}

/// The name of the commit file of `version`.
fn commit_name(version: u64) -> String {
    format!("{version:020}.json")
}

/// The fields of a `schemaString`.
fn parse_schema(schema: &Value, path: &Path) -> Result<Vec<(String, String, bool)>, Error> {
    let bad = || Error::Snapshot(format!("{}: a metaData without a schema", path.display()));
    let parsed: Value =
        serde_json::from_str(schema.as_str().ok_or_else(bad)?).map_err(|_| bad())?;
    let fields = parsed["fields"].as_array().ok_or_else(bad)?;
    Ok(fields
        .iter()
        .map(|field| {
            let kind = match &field["type"] {
                Value::String(kind) => kind.clone(),
                other => other.to_string(),
            };
            (
                field["name"].as_str().unwrap_or_default().to_string(),
                kind,
                field["nullable"].as_bool().unwrap_or(true),
            )
        })
        .collect())
}

/// The Delta fields of an Arrow schema: name, Delta type, nullable.
fn delta_fields(schema: &Schema) -> Result<Vec<(String, String, bool)>, Error> {
    schema
        .fields()
        .iter()
        .map(|field| {
            let kind = match field.data_type() {
                DataType::Boolean => "boolean",
                DataType::Int32 => "integer",
                DataType::Int64 => "long",
                DataType::Float64 => "double",
                DataType::Utf8 => "string",
                DataType::Timestamp(TimeUnit::Microsecond, Some(_)) => "timestamp",
                other => {
                    return Err(Error::Config(format!(
                        "a Delta table cannot hold column {} of type {other}",
                        field.name()
                    )))
                }
            };
            Ok((field.name().clone(), kind.to_string(), field.is_nullable()))
        })
        .collect()
}

/// A table id in the form of a UUID, from the table's path and the clock.
fn table_id(dir: &Path) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new()
        .chain_update(dir.to_string_lossy().as_bytes())
        .chain_update(now_ms().to_le_bytes())
        .chain_update(std::process::id().to_le_bytes())
        .finalize();
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Milliseconds since the Unix epoch, now.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}

//! The job's fingerprint ([`JobFingerprint`]): what the job is, as its builder describes it
//! (window, aggregates, keys, inputs, outputs...), stored in every snapshot's manifest and
//! compared, field by field, when a job resumes from a snapshot (docs/ARCHITECTURE.md
//! "Snapshots"). The stateful operators' ids are checked apart (`operators.rs`); the
//! fingerprint catches what they cannot see, such as a window's size.

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// What a job is, as an ordered list of `(name, value)` fields: kept in every snapshot's
/// manifest, and compared field by field when the job resumes from one. A job whose
/// fingerprint differs from the snapshot's is refused before anything is recovered or run,
/// with one [`Error::Snapshot`] naming each field that changed, its value then and now (e.g.
/// `window tumbling:500ms then, tumbling:1s now`), because resuming one job's state in
/// another gives wrong answers without a sign (windows of another size over the old windows'
/// counts).
///
/// Give every setting that the snapshot's state or committed output depends on: windows and
/// their sizes, aggregates, keys, inputs, outputs, watermark rules. Leave out what may change
/// between runs (the worker count, the snapshot interval): Flink, likewise, resumes a
/// savepoint with another parallelism. Values are compared as text, so give each in one
/// canonical form (`1000ms` and `1s` differ).
///
/// A field missing on one side differs (shown `(none)`). Either side without a fingerprint
/// while the other has one is refused, as nothing shows it is the same job: a snapshot taken
/// by a job that gave none, or by a tideflow before manifest version 3 (whose state encoding
/// may differ too), resumes only into a job that gives none, checked by its stateful
/// operators alone (by id and kind).
///
/// # Examples
/// ```
/// use tideflow::{Checkpoint, JobFingerprint};
///
/// let job = JobFingerprint::new()
///     .field("window", "tumbling:10s")
///     .field("aggregates", "count sum:amount")
///     .field("input", "/data/orders");
/// let config = Checkpoint::new("checkpoints").job(job.clone());
/// assert_eq!(config.job, job);
/// assert_eq!(job.get("window"), Some("tumbling:10s"));
/// // A name given again replaces its value, in place.
/// let job = job.field("window", "tumbling:1m");
/// assert_eq!(job.fields().next(), Some(("window", "tumbling:1m")));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobFingerprint {
    fields: Vec<(String, String)>,
}

impl JobFingerprint {
    /// An empty fingerprint: nothing is compared but the stateful operators.
    pub fn new() -> Self {
        JobFingerprint::default()
    }

    /// Adds the field `name` with `value`, after the others; a name given again replaces its
    /// earlier value, in its place.
    pub fn field(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let (name, value) = (name.into(), value.into());
        match self.fields.iter_mut().find(|(n, _)| *n == name) {
            Some(field) => field.1 = value,
            None => self.fields.push((name, value)),
        }
        self
    }

    /// The value of field `name`, if it has one.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, value)| value.as_str())
    }

    /// The fields, in order.
    pub fn fields(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// Whether it has no field.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// How this job (`self`) differs from the one that took a snapshot (`then`): one
    /// `NAME OLD then, NEW now` per field that differs, this job's fields first, in order.
    fn differences(&self, then: &JobFingerprint) -> Vec<String> {
        let shown = |value: Option<&str>| value.unwrap_or("(none)").to_string();
        let mut names: Vec<&str> = self.fields.iter().map(|(n, _)| n.as_str()).collect();
        names.extend(
            then.fields
                .iter()
                .map(|(n, _)| n.as_str())
                .filter(|n| self.get(n).is_none()),
        );
        names
            .into_iter()
            .filter(|name| self.get(name) != then.get(name))
            .map(|name| {
                format!(
                    "{name} {} then, {} now",
                    shown(then.get(name)),
                    shown(self.get(name))
                )
            })
            .collect()
    }
}

/// A fingerprint field as a manifest stores it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct JobField {
    name: String,
    value: String,
}

/// `job`'s fields as a manifest stores them.
pub(crate) fn to_manifest(job: &JobFingerprint) -> Vec<JobField> {
    job.fields
        .iter()
        .map(|(name, value)| JobField {
            name: name.clone(),
            value: value.clone(),
        })
        .collect()
}

/// Checks that the job described by `now` may resume the snapshot whose manifest stored
/// `saved` (`None`: a version 2 manifest, which has no fingerprint), in the checkpoint
/// directory `dir` (for messages).
pub(crate) fn check(
    now: &JobFingerprint,
    saved: Option<&[JobField]>,
    dir: &str,
) -> Result<(), Error> {
    let then = JobFingerprint {
        fields: saved
            .unwrap_or_default()
            .iter()
            .map(|f| (f.name.clone(), f.value.clone()))
            .collect(),
    };
    if then.is_empty() {
        if now.is_empty() {
            return Ok(());
        }
        return Err(Error::Snapshot(format!(
            "{dir} holds a snapshot taken without a job fingerprint (by a tideflow before checkpoint manifest version 3, or a job that gave none), so nothing shows it is this job's: resume it with the tideflow and job that wrote it, or start this one with a new checkpoint directory"
        )));
    }
    let differences = now.differences(&then);
    if differences.is_empty() {
        return Ok(());
    }
    Err(Error::Snapshot(format!(
        "{dir} was written by a different job: {} (resume with the job as it was, or start this one with a new checkpoint directory)",
        differences.join("; ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(fields: &[(&str, &str)]) -> JobFingerprint {
        fields
            .iter()
            .fold(JobFingerprint::new(), |job, (n, v)| job.field(*n, *v))
    }

    fn saved(job: &JobFingerprint) -> Vec<JobField> {
        to_manifest(job)
    }

    #[test]
    fn a_changed_field_is_named_with_both_values() {
        let then = job(&[("window", "tumbling:500ms"), ("aggregates", "count")]);
        let now = job(&[("window", "tumbling:1s"), ("aggregates", "count")]);
        let error = check(&now, Some(&saved(&then)), "ck").expect_err("refused");
        assert_eq!(
            error.to_string(),
            "snapshot: ck was written by a different job: window tumbling:500ms then, tumbling:1s now (resume with the job as it was, or start this one with a new checkpoint directory)"
        );
        assert!(check(&then, Some(&saved(&then)), "ck").is_ok());
    }

    #[test]
    fn fields_missing_on_either_side_differ() {
        let then = job(&[("key", "user"), ("mode", "append")]);
        let now = job(&[("input", "a.jsonl"), ("key", "user")]);
        assert_eq!(
            now.differences(&then),
            vec![
                "input (none) then, a.jsonl now".to_string(),
                "mode append then, (none) now".to_string(),
            ]
        );
        // A job that gives none does not resume a snapshot that has one.
        let error = check(&JobFingerprint::new(), Some(&saved(&then)), "ck").expect_err("refused");
        assert!(
            error.to_string().contains("key user then, (none) now"),
            "{error}"
        );
    }

    #[test]
    fn a_snapshot_without_a_fingerprint_resumes_only_a_job_without_one() {
        let now = job(&[("window", "tumbling:1s")]);
        for saved in [None, Some(&[][..])] {
            let error = check(&now, saved, "ck").expect_err("refused");
            assert!(
                error.to_string().contains("without a job fingerprint"),
                "{error}"
            );
        }
        assert!(check(&JobFingerprint::new(), None, "ck").is_ok());
    }
}

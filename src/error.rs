//! The one error type of the `tideflow` crate, classified by whose fault it is.

use std::io;
use std::path::PathBuf;

/// Everything that can stop a Tideflow job.
///
/// Errors are classified ([`Error::kind`]) so that the command line can exit with a code that
/// says whose mistake it was: the user's (bad configuration or input), the outside world's
/// (I/O), or Tideflow's own (a bug).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration mistake, found before the dataflow starts. The message starts with the
    /// setting at fault as the API names it (`Cluster::secret: ...`), or names the field.
    #[error("{0}")]
    Config(String),
    /// A record that cannot be read, with where it is.
    #[error("{path}:{line}: {reason}")]
    Input {
        /// The file (or stream name) the record came from.
        path: PathBuf,
        /// The 1-based line (or record) number.
        line: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// A Kafka message that cannot be read (undecodable, a tombstone, too long), with where it
    /// is.
    #[error("kafka topic {topic} partition {partition} offset {offset}: {reason}")]
    KafkaRecord {
        /// The topic the message came from.
        topic: String,
        /// Its partition.
        partition: i32,
        /// Its offset in the partition.
        offset: i64,
        /// What is wrong with it.
        reason: String,
    },
    /// A Kafka broker or client failure: a broker that cannot be reached, an offset out of
    /// range, a fatal client error. The message names the broker address or the topic.
    #[error("kafka: {0}")]
    Kafka(String),
    /// An I/O failure, with what was being done.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, naming the file.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A snapshot that cannot be used (damaged, missing, of another job), or a checkpoint
    /// directory owned by a newer run. The message names the file.
    #[error("snapshot: {0}")]
    Snapshot(String),
    /// A cluster that cannot form or broke: a peer that cannot be reached, refused the
    /// handshake, or was lost while the job ran. The message names the peer.
    #[error("cluster: {0}")]
    Cluster(String),
    /// A bug in Tideflow: a worker panicked or an invariant broke.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Whose fault an [`Error`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// Bad configuration or bad input: the user can fix it.
    User,
    /// The environment failed (disk, network).
    External,
    /// A bug in Tideflow.
    Internal,
}

impl Error {
    /// Whose fault this error is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Config(_) | Error::Input { .. } | Error::KafkaRecord { .. } => ErrorKind::User,
            Error::Io { .. } | Error::Kafka(_) | Error::Snapshot(_) | Error::Cluster(_) => {
                ErrorKind::External
            }
            Error::Internal(_) => ErrorKind::Internal,
        }
    }

    /// An I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

/// The result type of the `tideflow` crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

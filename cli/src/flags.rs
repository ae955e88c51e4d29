//! The library's errors in the command line's words. A library configuration error names the
//! API setting at fault (`Cluster::secret: must not be empty`); the command line names the flag
//! that sets it (`--cluster-secret: required with --processes (or set ...)`), so every message
//! a user sees speaks of what they typed.

use tideflow::{Error, SECRET_VAR};

/// The library's phrases and the command line's, the longer phrase of a setting first.
fn phrases() -> [(&'static str, String); 9] {
    [
        (
            "Cluster::secret: must not be empty",
            format!("--cluster-secret: required with --processes (or set {SECRET_VAR})"),
        ),
        (
            "wrong Cluster::secret",
            format!("wrong --cluster-secret or {SECRET_VAR}"),
        ),
        ("Cluster::addresses", "--hosts".into()),
        ("Cluster::process", "--process-id".into()),
        ("Cluster::cluster_id", "--cluster-id".into()),
        ("Checkpoint::interval", "--snapshot-interval".into()),
        ("Checkpoint::keep", "--keep-snapshots".into()),
        ("OnError", "--on-error".into()),
        ("Config::workers", "--workers".into()),
    ]
}

/// `error` with the library's setting names replaced by the flags that set them.
pub(crate) fn flag_names(error: Error) -> Error {
    let named = |message: String| {
        phrases()
            .iter()
            .fold(message, |message, (api, flag)| message.replace(api, flag))
    };
    match error {
        Error::Config(message) => Error::Config(named(message)),
        Error::Cluster(message) => Error::Cluster(named(message)),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tideflow::source::OnError;
    use tideflow::{Checkpoint, Cluster, Config};

    use super::*;

    fn cluster(process: usize, addresses: &[&str], id: &str, secret: &str) -> String {
        let addresses = addresses.iter().map(|a| a.to_string()).collect();
        let error = Cluster::new(process, addresses, id, secret)
            .validate()
            .expect_err("an invalid cluster");
        flag_names(error).to_string()
    }

    #[test]
    fn library_errors_name_the_flags_as_the_command_line_always_did() {
        let two = ["127.0.0.1:7001", "127.0.0.1:7002"];
        let cases = [
            (
                cluster(0, &two[..1], "t", "s"),
                "--hosts: a cluster needs the addresses of at least 2 processes",
            ),
            (
                cluster(2, &two, "t", "s"),
                "--process-id: 2 is not below the number of processes (2)",
            ),
            (
                cluster(0, &two, &"x".repeat(256), "s"),
                "--cluster-id: at most 255 bytes (and the secret at most 4096)",
            ),
            (
                cluster(0, &["127.0.0.1:7001", "nowhere"], "t", "s"),
                "--hosts: \"nowhere\" is not a HOST:PORT address",
            ),
            (
                cluster(0, &two, "t", ""),
                "--cluster-secret: required with --processes (or set TIDEFLOW_CLUSTER_SECRET)",
            ),
            (
                flag_names(Error::Cluster(
                    "refused by process 0: the cluster secrets differ (wrong Cluster::secret)"
                        .into(),
                ))
                .to_string(),
                "cluster: refused by process 0: the cluster secrets differ (wrong --cluster-secret or TIDEFLOW_CLUSTER_SECRET)",
            ),
            (
                flag_names("ignore".parse::<OnError>().expect_err("a bad policy")).to_string(),
                "--on-error: 'ignore' is not fail, skip or dead-letter:PATH",
            ),
        ];
        for (message, expected) in cases {
            assert_eq!(message, expected);
        }
        let dir = std::env::temp_dir().join("tideflow-flags-test-never-created");
        for (interval, keep, expected) in [
            (
                Duration::ZERO,
                2,
                "--snapshot-interval: must be longer than 0ms",
            ),
            (
                Duration::from_secs(1),
                0,
                "--keep-snapshots: must be at least 1",
            ),
        ] {
            let mut checkpoint = Checkpoint::new(&dir);
            checkpoint.interval = interval;
            checkpoint.keep = keep;
            let mut config = Config::workers(1);
            config.checkpoint = Some(checkpoint);
            let error = tideflow::execute(config, |_| Ok(())).expect_err("a bad checkpoint");
            assert_eq!(flag_names(error).to_string(), expected);
        }
        assert!(!dir.exists());
    }
}

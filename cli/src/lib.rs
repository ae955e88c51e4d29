//! The `tideflow` command line over the `tideflow` library (crate `tideflow-cli`; its binary,
//! `src/main.rs`, only calls [`main`]): argument parsing, the record model of `run`
//! ([`record`]), output encoders, progress outputs (JSON lines and the Prometheus endpoint), and
//! the subcommands.
//!
//! `tideflow run` aggregates a file or directory of JSON lines or CSV into windows;
//! `tideflow demo` runs a self-contained pipeline on the rate generator; `tideflow bench`
//! measures latency and throughput (docs/BENCHMARKS.md). Every error becomes
//! one line on standard error naming the flag, file or line at fault, and a non-zero exit code:
//! 2 for a user mistake, 3 for an I/O failure, 70 for a bug. SIGINT or SIGTERM stops `run`
//! gracefully, with the exit code 130 or 143 (`signals.rs`).

#![deny(missing_docs)]

/// `println!` that returns an error ("writing to standard output: Broken pipe") where
/// `println!` would panic, e.g. when the reader of a pipe has gone.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::print_out(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `eprintln!` that never panics: with standard error gone (a closed pipe) there is nowhere
/// left to say it, and the exit code still tells.
macro_rules! errln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        // In one write: the processes of a cluster share standard error, and a line written
        // in pieces (as `writeln!` writes it) can be cut by another process's.
        let mut line = format!($($arg)*);
        line.push('\n');
        let _ = std::io::stderr().write_all(line.as_bytes());
    }};
}

mod bench;
mod cluster;
mod columns;
mod demo;
mod flags;
mod output;
mod progress;
pub mod record;
mod run;
mod signals;
mod sql;
mod ui;

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

pub use output::RowEncoder;
pub use run::Plan;
use tideflow::{Error, ErrorKind};

/// Tideflow: continuous event-time windows over files and generated streams.
#[derive(Debug, Parser)]
#[command(name = "tideflow", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Aggregate a file (or directory) of JSON lines or CSV into event-time windows.
    Run(Box<run::RunArgs>),
    /// Print the dataflow `run` would build with these arguments, without running it.
    Explain(Box<run::RunArgs>),
    /// Run a SQL job: CREATE TABLE sources and sinks, SET options, one SELECT or INSERT INTO
    /// (or EXPLAIN of it), planned onto what `run` executes.
    Sql(Box<sql::SqlArgs>),
    /// Run `tideflow run` as N processes of one cluster on this machine: `cluster --local N --
    /// <run args>`.
    Cluster(cluster::ClusterArgs),
    /// Run a built-in pipeline on generated events and print windows, throughput and latency.
    Demo(demo::DemoArgs),
    /// Measure window-close latency, micro-batch against continuous mode, and throughput.
    Bench(bench::BenchArgs),
}

/// Runs the command line with `args` (the program name first) and returns the exit code.
pub fn main(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => return clap_exit(e),
    };
    // Rust discards what is written to a closed standard output: refuse to start instead.
    let writes_stdout = match &cli.command {
        Command::Run(args) => args.writes_stdout(),
        // A SELECT or EXPLAIN writes to standard output; the script is read only later.
        Command::Sql(_) => true,
        Command::Cluster(_) => false,
        Command::Explain(_) | Command::Demo(_) | Command::Bench(_) => true,
    };
    let stdout = match writes_stdout {
        true => stdout_is_open(),
        false => Ok(()),
    };
    let result = stdout.and_then(|()| match cli.command {
        Command::Run(args) => run::run(*args),
        Command::Sql(args) => sql::sql(*args),
        Command::Explain(args) => run::explain::explain(*args).map(|()| ExitCode::SUCCESS),
        Command::Cluster(args) => cluster::cluster(args),
        Command::Demo(args) => demo::demo(args).map(|()| ExitCode::SUCCESS),
        Command::Bench(args) => bench::bench(args).map(|()| ExitCode::SUCCESS),
    });
    match result {
        Ok(code) => code,
        Err(error) => {
            let error = flags::flag_names(error);
            // With standard error gone there is nowhere left to say it: the exit code does.
            errln!("tideflow: {error}");
            ExitCode::from(match error.kind() {
                ErrorKind::User => 2,
                ErrorKind::External => 3,
                ErrorKind::Internal => 70,
            })
        }
    }
}

/// Prints a clap error on one line (help and version as they are) and picks the exit code.
fn clap_exit(error: clap::Error) -> ExitCode {
    use clap::error::ErrorKind as Kind;
    if matches!(
        error.kind(),
        Kind::DisplayHelp | Kind::DisplayVersion | Kind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = error.print();
        return if error.kind() == Kind::DisplayHelpOnMissingArgumentOrSubcommand {
            ExitCode::from(2)
        } else {
            ExitCode::SUCCESS
        };
    }
    errln!("tideflow: {}", clap_message(&error));
    ExitCode::from(2)
}

/// A clap error on one line, without its usage and help hints, ending "(see --help)".
fn clap_message(error: &clap::Error) -> String {
    let rendered = error.render().to_string();
    let message: Vec<&str> = rendered
        .lines()
        .map(str::trim)
        .take_while(|line| !line.starts_with("Usage:") && !line.starts_with("For more information"))
        .filter(|line| !line.is_empty())
        .collect();
    let message = message.join(" ");
    format!(
        "{} (see --help)",
        message.strip_prefix("error: ").unwrap_or(&message)
    )
}

/// Checks `tideflow run` arguments as `tideflow run` would parse them, without running: the
/// error is the one `tideflow run` would print. Asked for help (`--help`), prints it and
/// returns `false`: there is nothing to run.
fn check_run_args(args: &[String]) -> Result<bool, Error> {
    use clap::error::ErrorKind as Kind;
    let argv = ["tideflow", "run"].into_iter().map(OsString::from);
    match Cli::try_parse_from(argv.chain(args.iter().map(OsString::from))) {
        Ok(_) => Ok(true),
        Err(error) if matches!(error.kind(), Kind::DisplayHelp | Kind::DisplayVersion) => {
            let _ = error.print();
            Ok(false)
        }
        Err(error) => Err(Error::Config(clap_message(&error))),
    }
}

/// Checks that standard output is open (`tideflow::sink::stdout_is_open`) and was not closed
/// when the process was started (`>&-`): the Rust runtime then opens `/dev/null` in its place
/// before `main`, where rows would vanish. [`STDOUT_CLOSED_AT_EXEC`] looked before it did.
fn stdout_is_open() -> Result<(), Error> {
    tideflow::sink::stdout_is_open()?;
    if STDOUT_CLOSED_AT_EXEC.load(std::sync::atomic::Ordering::Relaxed) {
        // EBADF: what writing to the closed descriptor would have said.
        let closed = std::io::Error::from_raw_os_error(libc::EBADF);
        return Err(Error::io("writing to standard output", closed));
    }
    Ok(())
}

/// Whether file descriptor 1 was closed when the process was executed, as
/// [`check_stdout_at_exec`] found it before the Rust runtime replaced it with `/dev/null`.
/// (A `/dev/null` a caller chose, read-write or not, is a valid standard output.)
static STDOUT_CLOSED_AT_EXEC: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// Runs [`check_stdout_at_exec`] from the ELF `.init_array`, which the C runtime calls before
/// `main`, so before Rust's own start-up reopens closed standard descriptors.
#[cfg(target_os = "linux")]
#[used]
#[link_section = ".init_array"]
static CHECK_STDOUT_AT_EXEC: extern "C" fn() = check_stdout_at_exec;

/// Records whether file descriptor 1 is closed.
#[cfg(target_os = "linux")]
extern "C" fn check_stdout_at_exec() {
    // SAFETY: `fcntl(F_GETFD)` only reads the descriptor's flags; it touches no memory.
    let closed = unsafe { libc::fcntl(1, libc::F_GETFD) } == -1;
    STDOUT_CLOSED_AT_EXEC.store(closed, std::sync::atomic::Ordering::Relaxed);
}

/// Writes `text` to standard output and flushes it; an error names standard output.
fn print_out(text: std::fmt::Arguments<'_>) -> Result<(), Error> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_fmt(text)
        .and_then(|()| stdout.flush())
        .map_err(|e| Error::io("writing to standard output", e))
}

/// Whole milliseconds of a duration, saturating at `u64::MAX`.
fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Parses a duration flag for clap.
fn duration_arg(text: &str) -> Result<Duration, String> {
    tideflow::parse_duration(text)
}

/// Parses `continuous`, `interval:DUR`, `available-now` or `once` for clap.
fn trigger_arg(text: &str) -> Result<tideflow::Trigger, String> {
    use tideflow::Trigger;
    match text {
        "continuous" => Ok(Trigger::Continuous),
        "available-now" => Ok(Trigger::AvailableNow),
        "once" => Ok(Trigger::Once),
        _ => match text.strip_prefix("interval:") {
            Some(interval) => match tideflow::parse_duration(interval)? {
                Duration::ZERO => Err("the interval must be longer than 0ms".to_string()),
                interval => Ok(Trigger::Interval(interval)),
            },
            None => Err(format!(
                "expected continuous, interval:DUR, available-now or once, got '{text}'"
            )),
        },
    }
}

/// Parses a value with `FromStr<Err = Error>` for clap.
fn spec_arg<T: std::str::FromStr<Err = Error>>(text: &str) -> Result<T, String> {
    text.parse()
        .map_err(|e: Error| flags::flag_names(e).to_string())
}

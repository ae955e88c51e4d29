//! The `tideflow` binary: parses arguments and runs the command line (see `tideflow::cli`).

fn main() -> std::process::ExitCode {
    tideflow::cli::main(std::env::args_os())
}

//! The `tideflow` binary: parses arguments and runs the command line (see the `tideflow_cli` library).

fn main() -> std::process::ExitCode {
    tideflow_cli::main(std::env::args_os())
}

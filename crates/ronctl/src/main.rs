//! `ronctl`: parse the command line and run it (everything else is in the library).

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    ronctl::run(ronctl::cli::Cli::parse())
}

//! `mongoose-server`: parse flags, hand over to [`mongoose::cli::main`].

use std::process::ExitCode;

use clap::Parser;

// MNG-R01: with `alloc-count`, every allocation is counted and hot-path ones attributed.
#[cfg(feature = "alloc-count")]
#[global_allocator]
static ALLOC: mongoose::alloc::CountingAllocator = mongoose::alloc::CountingAllocator;

fn main() -> ExitCode {
    match mongoose::cli::Cli::try_parse() {
        Ok(cli) => mongoose::cli::main(cli),
        Err(e) => {
            let _ = e.print();
            if matches!(e.kind(), clap::error::ErrorKind::DisplayHelp) {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            }
        }
    }
}

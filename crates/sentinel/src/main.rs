//! `sentinel-proxy` entry point; everything lives in the library ([`sentinel::cli`]).

fn main() -> std::process::ExitCode {
    sentinel::cli::main()
}

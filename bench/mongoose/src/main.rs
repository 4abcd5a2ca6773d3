//! `mongoose-bench`: see the library docs. Exit 2 on bad flags, 1 when a run does not
//! reconcile `sent = received + dropped`, else 0.

use clap::Parser;

fn main() {
    let args = mongoose_bench::Args::parse();
    let cfg = match args.resolve() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mongoose-bench: {e}");
            std::process::exit(2);
        }
    };
    std::process::exit(mongoose_bench::run(&cfg));
}

//! The `assay` command line.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = assay_api::cli::Cli::parse();
    assay_api::cli::init_tracing(cli.verbose);
    // Deep plans recurse: DataFusion's planner, and Ballista's plan (de)serialisation in
    // the in-process scheduler and executors, overflow tokio's 2 MiB default. Ballista's
    // own binaries use 32 MiB too; it is address space, touched only when needed.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(32 * 1024 * 1024)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(assay_api::cli::run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

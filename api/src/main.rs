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
    // The command runs on a worker thread: `block_on` would poll it on the main
    // thread, whose 8 MiB stack `assay sql` with a sum of 1,500 terms overflows.
    let outcome = runtime
        .block_on(async { tokio::spawn(assay_api::cli::run(cli)).await })
        .map_err(anyhow::Error::from)
        .and_then(|done| done);
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) if assay_api::cli::is_closed_pipe(&e) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", assay_api::cli::error_report(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

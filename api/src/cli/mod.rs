//! Subcommands of `assay`. Each one parses its flags, calls the engine, and prints.

mod backtest;
#[cfg(feature = "ballista")]
mod cluster;
mod decide;
mod generate;
mod ingest;
mod listen;
mod output;
mod serve;
mod sql;
mod token;

use std::path::{Path, PathBuf};

use anyhow::Context;
use assay_engine::progress::Progress;
use assay_engine::source::{BadFiles, Dataset};
use assay_engine::storage::s3::S3Settings;
use assay_engine::{Engine, QueryEngine};
use clap::{Parser, Subcommand};

/// assay: keep, drop or keep testing each newly launched style, from how customers behave.
#[derive(Debug, Parser)]
#[command(name = "assay", version, about, long_about = None)]
pub struct Cli {
    /// More log output (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Where the funnel, rollup and SQL queries run: `local`, `ballista-standalone` (a
    /// scheduler and executor in this process) or `ballista://HOST:PORT` (a running
    /// Ballista scheduler; build with `--features ballista`) [default: local].
    #[arg(long, global = true, env = "ASSAY_ENGINE")]
    pub engine: Option<QueryEngine>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate a realistic launch dataset with known ground truth (truth.parquet).
    Generate(generate::GenerateArgs),
    /// Serve the HTTP API (decisions, styles, overrides, runs) on the published run.
    Serve(Box<serve::ServeArgs>),
    /// Manage API tokens.
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Decide keep / drop / test for every style as of a time, and store the run.
    Decide(decide::DecideArgs),
    /// Run one read-only SQL query over every table and view.
    Sql(sql::SqlArgs),
    /// Ingest event logs (REES46, RetailRocket, H&M, canonical CSV/Parquet) as one batch.
    Ingest(ingest::IngestArgs),
    /// Bring the daily rollup up to date, or rebuild it from `events/`.
    Rollup(ingest::RollupArgs),
    /// Replay history day by day and score policies against baselines and hindsight.
    Backtest(backtest::BacktestArgs),
    /// Run a Ballista scheduler for `--engine ballista://HOST:PORT` (feature `ballista`).
    #[cfg(feature = "ballista")]
    Scheduler(cluster::SchedulerArgs),
    /// Run a Ballista executor that takes tasks from a scheduler (feature `ballista`).
    #[cfg(feature = "ballista")]
    Executor(cluster::ExecutorArgs),
}

/// The bundled sample dataset: `data/sample` in the working directory or the nearest
/// folder above it (so `cargo run` works from anywhere in the repository), else beside
/// the package `cargo run` names at run time. Nothing is baked in at compile time: a
/// release binary copied elsewhere looks where it runs, and finds nothing outside a
/// checkout.
pub fn default_data_dir() -> Option<PathBuf> {
    let sample = Path::new("data").join("sample");
    let from_cwd = std::env::current_dir().ok().and_then(|cwd| {
        cwd.ancestors()
            .map(|dir| dir.join(&sample))
            .find(|candidate| candidate.is_dir())
    });
    let from_cargo = || {
        std::env::var_os("CARGO_MANIFEST_DIR")
            .map(|dir| PathBuf::from(dir).join("..").join(&sample))
            .filter(|candidate| candidate.is_dir())
    };
    from_cwd.or_else(from_cargo)
}

/// `--data` as given, or the bundled sample when there is one.
///
/// # Errors
/// No `--data` and no `data/sample` here or above.
pub fn data_location(data: Option<String>) -> anyhow::Result<String> {
    if let Some(data) = data {
        return Ok(data);
    }
    match default_data_dir() {
        Some(dir) => Ok(dir.display().to_string()),
        None => anyhow::bail!(
            "no --data given (or ASSAY_DATA) and no bundled data/sample in {} or a folder \
             above it; pass --data DIR or --data s3://BUCKET/PREFIX",
            std::env::current_dir()
                .map(|d| d.display().to_string())
                .unwrap_or_else(|_| "the working folder".into())
        ),
    }
}

/// The dataset at a `--data` location: a folder or `s3://bucket/prefix` (S3 settings
/// from the `AWS_*` environment).
fn dataset(location: &str) -> anyhow::Result<Dataset> {
    Dataset::open(location, &S3Settings::default()).with_context(|| format!("dataset {location}"))
}

/// Whether the error is stdout closed under us (`assay decide | head`): the reader has
/// what it wanted, so the command ends quietly, as `cat` would.
pub fn is_closed_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// An error and its causes on one line, each said once: a library error often repeats
/// its source's text in its own message, and printing the whole chain said it twice or
/// three times.
pub fn error_report(error: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if text.is_empty() || out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

pub fn init_tracing(verbose: u8) {
    // Ballista's scheduler logs an ERROR for every stage whose metrics it cannot line
    // up with the plan's (cosmetic: the stage ran); it would bury real warnings.
    let default = match verbose {
        0 => "warn,ballista_scheduler::display=off",
        1 => "info,ballista_scheduler::display=off",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Colour codes only on a terminal: logs redirected to a file stay plain text.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let engine = cli.engine.clone().unwrap_or_default();
    match cli.command {
        Command::Generate(args) => generate::run(args),
        Command::Sql(args) => sql::run(args, &engine).await,
        Command::Decide(args) => decide::run(args, &engine).await,
        Command::Serve(args) => serve::run(*args, cli.engine).await,
        Command::Token(command) => token::run(command),
        Command::Ingest(args) => ingest::run(args, &engine).await,
        Command::Rollup(args) => ingest::run_rollup(args, &engine).await,
        Command::Backtest(args) => backtest::run(args, &engine).await,
        #[cfg(feature = "ballista")]
        Command::Scheduler(args) => cluster::run_scheduler(args).await,
        #[cfg(feature = "ballista")]
        Command::Executor(args) => cluster::run_executor(args).await,
    }
}

/// Opens a dataset for a one-shot command (bad files fail it: the user is there), which
/// shows the progress of long work on a terminal.
async fn open_engine(data: &str, engine: &QueryEngine) -> anyhow::Result<Engine> {
    let progress = Progress::on_terminal();
    let step = progress.step(format!("opening {data}"));
    let opened = Engine::open_on(dataset(data)?, BadFiles::Fail, engine)
        .await
        .with_context(|| format!("opening dataset {data} on engine {engine}"))?;
    step.finish_and_clear();
    opened.progress().show(true);
    Ok(opened)
}

#[cfg(test)]
mod tests {
    use super::error_report;

    #[derive(Debug, thiserror::Error)]
    #[error("planning failed: {0}")]
    struct Planning(#[source] std::io::Error);

    #[test]
    fn each_cause_is_said_once() {
        let io = std::io::Error::other("no field named 'x'");
        let error = anyhow::Error::new(Planning(io)).context("query over data/sample");
        assert_eq!(
            error_report(&error),
            "query over data/sample: planning failed: no field named 'x'"
        );
    }
}

//! End-to-end tests: the real `assay` binary on generated data.

mod attacks;
mod backtest;
mod bad_input;
mod clients;
mod daily;
mod decide;
mod escapes;
mod flight;
mod ingest;
mod notebooks;
mod pg;
mod reorders;
mod s3;
#[cfg(feature = "ballista")]
mod scale_out;
mod server;
mod sql;
mod support;
mod web;
mod webhooks;

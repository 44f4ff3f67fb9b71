//! assay's engine: Parquet launch logs in, keep / drop / test decisions out.
//!
//! The data flow is the module layout: [`source`] registers and checks the Parquet
//! tables, [`sql`] holds the funnel views, [`funnel`] reads them into typed rows,
//! [`rollup`] keeps the daily rollup
//! the funnel reads, [`decision`] is the pure decision math, [`store`] keeps decision runs.
//! [`compute`] picks where the heavy queries run (this process or Ballista).
//! [`generate`] makes realistic launch data with known truth.

pub mod backtest;
mod bounded_functions;
mod columns;
pub mod compute;
mod day_intervals;
pub mod decision;
pub mod error;
pub mod funnel;
pub mod generate;
pub mod ingest;
mod like_escape;
pub mod memory_ceiling;
pub mod parquet_io;
mod plan_size;
pub mod progress;
mod query_slots;
pub mod rollup;
mod run;
pub mod sandbox;
mod session;
pub mod source;
pub mod sql;
pub mod storage;
pub mod store;

pub use compute::QueryEngine;
pub use error::{EngineError, ErrorKind, Result};
pub use funnel::{DailyRow, Funnel, StyleInfo};
pub use session::Engine;
pub use store::{DecisionRun, DecisionStore, RunSummary};

//! assay's engine: Parquet launch logs in, keep / drop / test decisions out.
//!
//! The data flow is the module layout: [`source`] registers and checks the Parquet
//! tables, [`sql`] holds the funnel views, [`funnel`] reads them into typed rows,
//! [`decision`] is the pure decision math, [`store`] keeps decision runs.

pub mod decision;

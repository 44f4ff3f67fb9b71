//! assay's edges over `assay-engine`: the command line, the HTTP server and the
//! PostgreSQL wire protocol.

pub mod auth;
pub mod cli;
pub mod pg;
pub mod server;

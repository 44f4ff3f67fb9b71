//! assay's edges over `assay-engine`: the command line and the HTTP server.

pub mod auth;
pub mod cli;
pub mod server;

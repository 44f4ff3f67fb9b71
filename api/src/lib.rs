//! assay's edges over `assay-engine`: the command line, the HTTP server, the
//! PostgreSQL wire protocol and Arrow Flight SQL.

pub mod auth;
pub mod cli;
pub mod connections;
pub mod daily;
pub mod error_codes;
pub mod flight;
pub mod pg;
pub mod server;
pub mod spreadsheet;
pub mod time_input;
pub mod tls;
pub mod web;
pub mod webhooks;

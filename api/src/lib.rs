//! assay's edges: the command line (and, later, the HTTP server) over `assay-engine`.

pub mod cli;

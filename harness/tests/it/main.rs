//! The harness's integration tests: one binary, one module per area.

mod engines;
mod replay;
mod fuzz;
mod parser;

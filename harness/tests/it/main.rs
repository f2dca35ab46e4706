//! The harness's integration tests: one binary, one module per area.

mod browser;
mod db;
mod engines;
mod faults;
mod filelock;
mod fuzz;
mod gate;
mod imports;
mod isolation;
mod lang_cli;
mod lock_reports;
mod lockfile;
mod params;
mod parser;
mod pgspec;
mod pgspec_explore;
mod pgspec_model;
mod real;
mod realdb;
mod realdb_isolation;
mod replay;
mod shard;

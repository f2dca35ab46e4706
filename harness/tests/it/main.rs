//! The harness's integration tests: one binary, one module per area.

mod browser;
mod db;
mod engines;
mod faults;
mod real;
mod realdb;
mod isolation;
mod realdb_isolation;
mod replay;
mod shard;
mod fuzz;
mod params;
mod parser;
mod lockfile;
mod gate;
mod pgspec;

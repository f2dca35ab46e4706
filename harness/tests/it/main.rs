//! The harness's integration tests: one binary, one module per area.

mod browser;
mod collections;
mod db;
mod engines;
mod faults;
mod filelock;
mod fmt;
mod fuzz;
mod fuzz_corpus;
mod fuzz_spec;
mod fuzz_token;
mod gate;
mod imports;
mod isolation;
mod lang_cli;
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

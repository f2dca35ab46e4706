//! Integration tests for every renderer, driven by the shared fixtures in `fixtures.rs`;
//! snapshots are expect-test literals (`UPDATE_EXPECT=1 cargo test -p reports` refreshes them).

mod fixtures;
mod html;
mod junit;
mod large_run;
mod markdown;
mod table;
mod write_all;

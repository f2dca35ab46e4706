//! What the xtask's integration tests share: the workspace root and the racelab binary.

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// The racelab binary the workspace's tests built, in this test's own profile directory
/// (`target/debug`, or `target/ci` under CI's `--profile ci`), building it there if needed.
pub fn racelab() -> PathBuf {
    let exe = std::env::current_exe().expect("the test knows its own path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("a test binary lives in target/PROFILE/deps")
        .to_path_buf();
    let bin = profile_dir.join("racelab");
    if !bin.exists() {
        let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") | None => "dev".to_string(),
            Some(p) => p.to_string(),
        };
        let ok = Command::new(env!("CARGO"))
            .args([
                "build",
                "-q",
                "-p",
                "racelab",
                "--bin",
                "racelab",
                "--profile",
                &profile,
            ])
            .current_dir(workspace())
            .status()
            .expect("cargo runs");
        assert!(ok.success(), "building racelab failed");
    }
    bin
}

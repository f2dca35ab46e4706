//! Scenario paths: relative to the scenario's root, which they may not climb out of.
//!
//! Shared by the lowering (a literal path is checked where it is written) and the filesystem
//! model (a computed path is checked when an operation runs).

/// Refuses a path whose `..` would climb above the scenario's root (`/..`, `/a/../..`): on a
/// real backend the root is a directory of the host, and a scenario must never reach out of
/// it. The model refuses the same paths, so model and real runs agree.
pub fn check_confined(path: &str) -> Result<(), String> {
    let mut depth = 0usize;
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." if depth == 0 => {
                return Err(format!("the path `{path}` climbs above the scenario's root with `..`; scenario paths are relative to the root and cannot leave it"))
            }
            ".." => depth -= 1,
            _ => depth += 1,
        }
    }
    Ok(())
}

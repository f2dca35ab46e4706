//! Tearing down a matrix a run left behind, from its state file or its root.

use std::path::PathBuf;

use super::state::{StateFile, STATE_FILE};
use super::{teardown, Error, Report};

/// What to tear down: a matrix root or its state file.
#[derive(Debug, Clone)]
pub enum Target {
    Root(PathBuf),
    State(PathBuf),
}

/// What [`down`] found.
#[derive(Debug)]
pub enum DownOutcome {
    /// No state file (and, for a root, nothing mounted or attached under it): nothing to do.
    NothingThere(PathBuf),
    /// Torn down from the state file.
    TornDown(Report),
    /// A root without a state file, but with mounts or loop devices under it: swept; the directory is left.
    Swept(Report),
}

/// Tears down the matrix at `target`, from its intent log; idempotent, and fine on a half-finished `up`.
pub fn down(target: &Target) -> Result<DownOutcome, Error> {
    let state = match target {
        Target::State(p) => p.clone(),
        Target::Root(r) => r.join(STATE_FILE),
    };
    if !state.exists() {
        let Target::Root(root) = target else {
            return Ok(DownOutcome::NothingThere(state));
        };
        // No log: nothing of ours should be there, but make sure nothing mounted stays behind.
        let Ok(root) = std::fs::canonicalize(root) else {
            return Ok(DownOutcome::NothingThere(root.clone()));
        };
        let mut report = Report::default();
        teardown::sweep(&root, &mut report);
        if !report.is_clean() {
            return Err(Error::Teardown {
                problems: report.problems,
                state,
            });
        }
        return Ok(
            if report.unmounted.is_empty()
                && report.lazily_unmounted.is_empty()
                && report.detached.is_empty()
            {
                DownOutcome::NothingThere(root)
            } else {
                DownOutcome::Swept(report)
            },
        );
    }
    let euid = nix::unistd::geteuid();
    if !euid.is_root() {
        return Err(Error::Infra(anyhow::anyhow!(
            "`cargo xtask fs down` needs root to unmount and detach loop devices (this process runs as uid {}); run it as root",
            euid.as_raw()
        )));
    }
    let sf = StateFile::load(&state).map_err(|e| Error::BadInput(format!("{e:#}")))?;
    let state_path = sf.path.clone();
    let report = teardown::teardown(sf);
    if report.is_clean() {
        Ok(DownOutcome::TornDown(report))
    } else {
        Err(Error::Teardown {
            problems: report.problems,
            state: state_path,
        })
    }
}

//! The NFS part of `cargo xtask run-scenarios`: the lock scenarios rerun inside the NFS guest on nfs3, nfs4 and two NFSv3 clients, merged into the main summary.
//!
//! The main suite (model engines, local filesystems) has already written
//! `target/racelab/summary.json`. This runs racelab's suite a second time, inside the guest
//! ([`super::run`]), on the lock scenarios only, with three real targets:
//!
//! - `nfs3`: the NFSv3 mount, every actor on one client;
//! - `nfs4`: the NFSv4.2 mount;
//! - `nfs3x2`: `DIR_A,DIR_B`, the same directory through the two NFSv3 clients, so actors on
//!   client B see client A's changes through their own attribute cache;
//! - `nfs4x2`: the same through two NFSv4.2 clients.
//!
//! The lock scenarios' `nfs-*` variants (`nfs cache 3s`: the NFS client model) run only on the
//! two-client targets; their other variants only on the one-client targets (harness
//! `suite::model_only_reason`).
//!
//! Its real rows (`fs:nfs…`, each with the mount options the guest kernel reports, and in
//! `env.server_version` which guest and kernel served them) are appended to the main summary and
//! every report is re-rendered with `reports::write_all`. When the rig cannot come up (not root,
//! no apt, no guest boots) the rows are still there, `skipped` with the reason: a missing NFS
//! run is never a pass.
//!
//! System calls in a guest are 10-100x slower than the host's, so the guest suite is `--quick` with
//! loom only (its model part just finds the tokens to force), with 10 forced replays per token
//! and 20 stress runs per variant and target instead of the host's 100 (`--replays`,
//! `--stress-runs`): enough to reproduce and to rate. `--no-nfs` leaves the part out.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Instant;

use reports::{Outcome, RunResult, Summary};

use super::{Ended, Options};

/// The scenarios rerun on NFS: the lock races whose reports are about NFS, the lock
/// implementations that claim to be safe on NFS (flufl.lock, racelab's LinkLock), and
/// nfs-two-clients, whose `nfs` variant runs on the two-client target (`nfs3x2`): client B's
/// stale attribute cache, forced and under stress.
pub const SCENARIOS: &[&str] = &[
    "mailman-lockfile",
    "mailman-stale-lock",
    "flufl-lock",
    "racelab-linklock",
    "nfs-two-clients",
];

/// The scenarios the qemu fallback reruns: its system calls are about 10x slower than UML's and
/// its model part runs emulated, so only the two Mailman races and the small two-client
/// scenario fit the NFS part's 10 minutes (measured: 8 min 51 s with boot, debug racelab, on a
/// two-core host loaded by other builds). The others' NFS rows are then skipped, saying so.
pub const QEMU_SCENARIOS: &[&str] = &["mailman-lockfile", "mailman-stale-lock", "nfs-two-clients"];

/// The real targets inside the guest, as the summary names them.
pub const TARGETS: &[&str] = &["nfs3", "nfs4", "nfs3x2", "nfs4x2"];

/// What the NFS part needs to know about the main run.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Params {
    /// The racelab binary (the host's; the guest runs the host's files).
    pub racelab: PathBuf,
    /// The workspace root: the scenarios are `scenarios/NAME.race` under it.
    pub root: PathBuf,
    /// The main summary directory (`target/racelab`), rewritten with the NFS rows.
    pub summary_dir: PathBuf,
    /// Where the guest suite writes its own reports (`target/racelab-nfs`).
    pub out: PathBuf,
    /// The rig (`cargo xtask nfs run --rig`).
    pub rig: PathBuf,
}

impl Params {
    pub fn new(racelab: PathBuf, root: PathBuf, target: &Path) -> Params {
        Params {
            racelab,
            root,
            summary_dir: target.join("racelab"),
            out: target.join("racelab-nfs"),
            rig: PathBuf::from(super::DEFAULT_RIG),
        }
    }
}

/// Runs the NFS suite and merges it into the main summary. Returns the exit code the NFS rows
/// call for (0 met or skipped, 1 an expectation failed, 3 an error), or None when there was
/// nothing to do (the main summary holds none of the lock scenarios' real rows) or a signal
/// stopped it.
pub fn run(p: &Params) -> anyhow::Result<Option<u8>> {
    let summary_path = p.summary_dir.join("summary.json");
    // The main suite stopped before writing its reports (bad input): nothing to add to.
    if !summary_path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&summary_path)
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", summary_path.display()))?;
    let mut summary: Summary = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("parsing {}: {e}", summary_path.display()))?;
    let templates = real_variants(&summary.results);
    if templates.is_empty() {
        return Ok(None);
    }
    let scenarios: Vec<&str> = SCENARIOS
        .iter()
        .copied()
        .filter(|s| templates.iter().any(|t| t.scenario == *s))
        .collect();
    println!(
        "\n== NFS: {} on {} inside a guest (User-mode Linux, else qemu)",
        scenarios.join(", "),
        TARGETS.join(", ")
    );
    let t = Instant::now();
    let rows = match guest_rows(p, &scenarios) {
        Ok((mut rows, guest_name)) => {
            if guest_name == "qemu" {
                let left_out: Vec<RunResult> = templates
                    .iter()
                    .filter(|t| !QEMU_SCENARIOS.contains(&t.scenario.as_str()))
                    .cloned()
                    .collect();
                rows.extend(rows_for_all(&left_out, Outcome::Skipped, "left out on the qemu fallback guest (User-mode Linux did not boot here): its system calls are about 10x slower, and the NFS part must stay under 10 minutes"));
            }
            rows
        }
        Err(Stop::Signal) => return Ok(None),
        Err(Stop::Skip(why)) => {
            println!("NFS suite skipped: {why}");
            rows_for_all(&templates, Outcome::Skipped, &why)
        }
        Err(Stop::Error(why)) => {
            println!("NFS suite failed: {why}");
            rows_for_all(&templates, Outcome::Error, &why)
        }
    };
    println!(
        "NFS part: {} rows in {:.0}s",
        rows.len(),
        t.elapsed().as_secs_f64()
    );
    let code = exit_code(&rows);
    summary.results.extend(rows);
    summary.ok = exit_code(&summary.results) == 0;
    let written = reports::write_all(&summary, &p.summary_dir).map_err(|e| {
        anyhow::anyhow!(
            "writing the merged reports to {}: {e}",
            p.summary_dir.display()
        )
    })?;
    for w in written {
        println!("rewrote {} with the NFS rows", w.display());
    }
    Ok(Some(code))
}

enum Stop {
    Signal,
    Skip(String),
    Error(String),
}

/// Runs racelab's suite in the guest and returns its NFS rows.
fn guest_rows(p: &Params, scenarios: &[&str]) -> Result<(Vec<RunResult>, &'static str), Stop> {
    if !nix::unistd::Uid::effective().is_root() {
        return Err(Stop::Skip("not root: real NFS needs a guest with nfsd, which `cargo xtask nfs run` sets up only as root; run as root to include nfs3 and nfs4".into()));
    }
    let mut opts = Options::new();
    opts.rig.clone_from(&p.rig);
    opts.cwd.clone_from(&p.root);
    let m = opts.mounts();
    let command_for = |guest: &str| -> Vec<OsString> {
        let mut argv: Vec<OsString> = vec![p.racelab.clone().into(), "suite".into()];
        let chosen = scenarios
            .iter()
            .filter(|s| guest != "qemu" || QEMU_SCENARIOS.contains(s));
        argv.extend(chosen.map(|s| p.root.join("scenarios").join(format!("{s}.race")).into()));
        // Syscalls in a guest are slow and it has one CPU: fewer forced replays and stress runs
        // than on the host (10 and 20 per token and variant), enough to reproduce and to rate.
        argv.extend(
            [
                "--quick",
                "--engines",
                "loom",
                "--replays",
                "10",
                "--stress-runs",
                "20",
                "--out",
            ]
            .map(OsString::from),
        );
        argv.push(p.out.clone().into());
        for (name, dirs) in [
            ("nfs3", vec![&m.nfs3]),
            ("nfs4", vec![&m.nfs4]),
            ("nfs3x2", vec![&m.nfs3, &m.nfs3b]),
            ("nfs4x2", vec![&m.nfs4, &m.nfs4b]),
        ] {
            let dirs: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
            argv.push(format!("--real={name}={}", dirs.join(",")).into());
        }
        argv
    };
    let _ = std::fs::remove_file(p.out.join("summary.json"));
    let run = match super::run_adapted(&opts, &command_for) {
        Ok(run) => run,
        // A guest that should boot on every x86_64 host and did not is an error, not a skip.
        Err(e @ super::Error::NoGuest(_)) => return Err(Stop::Error(why_down(&e.to_string()))),
        Err(e) => {
            return Err(Stop::Skip(format!(
                "the NFS guest could not come up: {}",
                why_down(&e.to_string())
            )))
        }
    };
    println!("NFS guest: {}", run.guest);
    let status = match run.ended {
        Ended::Interrupted(_) => return Err(Stop::Signal),
        Ended::Exited(n) => n,
    };
    let path = p.out.join("summary.json");
    let text = std::fs::read_to_string(&path).map_err(|e| {
        Stop::Error(format!(
            "racelab suite in the guest exited with {status} and left no {}: {e}",
            path.display()
        ))
    })?;
    let nfs: Summary = serde_json::from_str(&text)
        .map_err(|e| Stop::Error(format!("parsing {}: {e}", path.display())))?;
    let mut rows: Vec<RunResult> = nfs
        .results
        .into_iter()
        .filter(|r| TARGETS.iter().any(|t| r.backend == format!("fs:{t}")))
        .collect();
    for r in &mut rows {
        r.env.get_or_insert_with(Default::default).server_version =
            Some(format!("Linux knfsd in {}", run.guest));
    }
    Ok((rows, run.guest_name))
}

/// The error's first line, and the guest console's line that says what failed, if there is
/// one. [`super::Error::NoGuest`] names every attempt's failing line on lines of their own.
fn why_down(s: &str) -> String {
    if s.starts_with("no NFS guest could boot") {
        return s.lines().map(str::trim).collect::<Vec<_>>().join("; ");
    }
    let first = first_line(s);
    match s
        .lines()
        .find(|l| l.contains("failed") && !l.contains("find_iomem") && !l.contains("ubd device"))
    {
        Some(cause) if cause != first => format!("{first} (guest console: {})", cause.trim()),
        _ => first,
    }
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or(s).to_string()
}

/// One row per lock-scenario variant that ran on a local real filesystem: the variants the
/// NFS targets would run.
fn real_variants(rows: &[RunResult]) -> Vec<RunResult> {
    let mut out: Vec<RunResult> = Vec::new();
    for r in rows
        .iter()
        .filter(|r| SCENARIOS.contains(&r.scenario.as_str()) && r.backend.starts_with("fs:"))
    {
        if !out
            .iter()
            .any(|o| o.scenario == r.scenario && o.variant == r.variant)
        {
            out.push(r.clone());
        }
    }
    out
}

/// A row per variant and target that did not run, with the reason.
fn rows_for_all(templates: &[RunResult], outcome: Outcome, why: &str) -> Vec<RunResult> {
    templates
        .iter()
        .flat_map(|t| TARGETS.iter().map(move |n| marked(t, n, outcome, why)))
        .collect()
}

/// A row for `target` that did not run: the template's scenario, variant and expectation.
fn marked(template: &RunResult, target: &str, outcome: Outcome, why: &str) -> RunResult {
    RunResult {
        engine: "forced-replay".into(),
        backend: format!("fs:{target}"),
        outcome,
        invariant: None,
        exhaustive: false,
        coverage: None,
        covers: None,
        schedules: 0,
        seconds: 0.0,
        first_failure_after: None,
        replay: None,
        met: false,
        findings: vec![],
        switches: None,
        shrunk_switches: None,
        rate: None,
        rates: vec![],
        divergence: None,
        env: None,
        bound: None,
        states: None,
        reason: Some(why.to_string()),
        trace: None,
        proved_by: None,
        ..template.clone()
    }
}

/// racelab's rule (harness `suite::exit_code`), for the rows this part adds: an error is 3, an
/// unmet expectation 1; skipped rows are neither a pass nor a failure.
fn exit_code(rows: &[RunResult]) -> u8 {
    if rows.iter().any(|r| r.outcome == Outcome::Error) {
        3
    } else if rows.iter().any(|r| r.outcome != Outcome::Skipped && !r.met) {
        1
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(scenario: &str, variant: &str, backend: &str) -> RunResult {
        let json = format!(
            r#"{{"scenario":"{scenario}","variant":"{variant}","engine":"forced-replay","backend":"{backend}","faults":null,"expected":"violation","outcome":"violation","invariant":"mutual_exclusion","exhaustive":false,"schedules":100,"seconds":1.0,"first_failure_after":1,"replay":"rl1_x","met":true}}"#
        );
        serde_json::from_str(&json).expect("a valid row")
    }

    #[test]
    fn an_unavailable_rig_gives_skipped_rows_for_every_target_never_passes() {
        let rows = vec![
            row("mailman-lockfile", "mailman-2.1", "model"),
            row("mailman-lockfile", "mailman-2.1", "fs:tempdir"),
            row("mailman-lockfile", "mailman-2.1", "fs:tmpfs"),
            row("patchwork-person", "v", "fs:tempdir"),
        ];
        let t = real_variants(&rows);
        assert_eq!(
            t.len(),
            1,
            "one template per variant that ran on a real filesystem"
        );
        let s = rows_for_all(&t, Outcome::Skipped, "not root");
        assert_eq!(
            s.iter().map(|r| r.backend.as_str()).collect::<Vec<_>>(),
            ["fs:nfs3", "fs:nfs4", "fs:nfs3x2", "fs:nfs4x2"]
        );
        assert!(s.iter().all(|r| r.outcome == Outcome::Skipped
            && !r.met
            && r.reason.as_deref() == Some("not root")
            && r.replay.is_none()));
        assert_eq!(exit_code(&s), 0);
    }
}

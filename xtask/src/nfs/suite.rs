//! The NFS part of `cargo xtask run-scenarios`: the lock scenarios rerun inside the NFS guest on nfs3, nfs4 and two NFSv3 clients, merged into the main summary.
//!
//! It starts beside the main suite (model engines, local filesystems, databases), in a thread
//! of its own ([`start`]), and merges into `target/racelab/summary.json` once the main suite has
//! written it ([`finish`]). It runs racelab's suite a second time, inside the guest
//! ([`super::run`]), on the lock scenarios only, with four real targets:
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
//! System calls in a guest are 10-100x slower than the host's, so the guest explores nothing:
//! it forces the model findings of the main suite beside it (`target/racelab/model.json`,
//! written before the main suite's real runs; with `--engines` or `--shard`, or run alone as
//! `cargo xtask nfs suite`, loom, native-pct and native-random explore on the host first) and
//! the guest suite forces their findings (`racelab suite --findings-from`: loom's and native-pct's on one client,
//! native-random's on two), with 10 forced replays per token
//! and 20 stress runs per variant and target instead of the host's 100 (`--replays`,
//! `--stress-runs`): enough to reproduce and to rate; 3 and 3 on the qemu fallback
//! ([`counts`]). `--no-nfs` leaves the part out. The guest log has each pass's wall time
//! (`NFS step pass one-client: N s`).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use reports::{Outcome, RunResult, Summary};

use super::{Ended, Options};

/// The scenarios rerun on NFS: the lock races whose reports are about NFS, the lock
/// implementations that claim to be safe on NFS (flufl.lock, racelab's LinkLock), and
/// nfs-two-clients, whose `nfs` variant runs on the two-client target (`nfs3x2`): client B's
/// stale attribute cache, forced and under stress; and filelock and portalocker, whose reported
/// races (#21) meet NFS on two clients, for the gated replays of their documented tokens
/// ([`GATE_REPLAY_ONLY`]).
pub const SCENARIOS: &[&str] = &[
    "mailman-lockfile",
    "mailman-stale-lock",
    "flufl-lock",
    "racelab-linklock",
    "nfs-two-clients",
    "filelock",
    "portalocker",
];

/// Scenarios the NFS part runs only as gated replays of their documented tokens
/// ([`GATE_REPLAYS`]), not in the forced-replay and stress passes. Measured with `cargo xtask
/// nfs suite` (User-mode Linux 7.2): on nfs3x2 and nfs4x2 the native-random tokens of
/// filelock's nfs-v3.29.4 and portalocker's nfs-v3.2.0 and nfs-v4.0.0 all diverge from the
/// model in forced replay (12 rows unmet): a waiter's flock of the file another client unlinked
/// (silly-renamed) is EAGAIN on real NFS where the model says ok, and fstat of it after the
/// releaser's close reads nlink 1 (NFSv3) or 0 (NFSv4.2) where the model says ESTALE; their
/// stress-chaos runs did break mutual_exclusion on both targets (filelock nfs-v3.29.4 after 8
/// and 3 runs of 20). Until the model's NFS flock and fstat follow Linux, the forced rows would
/// fail every CI run on a model error, not a library's: left out, the real libraries' replays
/// kept (portalocker's tokens were found through the gate on NFS itself: its ext4 token does
/// not carry over, scenarios/portalocker.race, "On NFS").
const GATE_REPLAY_ONLY: &[&str] = &["filelock", "portalocker"];

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
    /// The Python venv with flufl.lock (`cargo xtask venv`) for the gated runs, or why there is
    /// none (the gate rows are then skipped, saying so).
    pub venv: Result<PathBuf, String>,
    /// The main suite's model rows, when it runs beside this part with every engine: their
    /// findings are forced in the guest instead of exploring the same variants on the host a
    /// second time ([`host_findings`]). None explores them here.
    pub main_model: Option<MainModel>,
}

/// The model rows the main suite writes as soon as it has explored (`racelab suite` writes
/// `model.json` in its report directory before its real runs start).
#[derive(Debug, Clone)]
pub struct MainModel {
    /// The file to wait for.
    pub path: PathBuf,
    /// Set when the main suite has ended: a file still missing then will never come (the suite
    /// stopped before its model rows), and this part explores on its own instead of waiting.
    pub ended: Arc<AtomicBool>,
}

impl MainModel {
    /// The model rows of a `racelab suite --out DIR` started after this call (an earlier run's
    /// file is removed, so it is never mistaken for this run's).
    pub fn in_dir(dir: &Path) -> MainModel {
        let path = dir.join("model.json");
        let _ = std::fs::remove_file(&path);
        MainModel {
            path,
            ended: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The model rows of a run that has ended (`cargo xtask nfs suite --findings-from`): used
    /// when the file exists, else the part explores on the host.
    pub fn finished(path: PathBuf) -> MainModel {
        MainModel {
            path,
            ended: Arc::new(AtomicBool::new(true)),
        }
    }

    /// Waits for the file; None when the main suite ended without it or the part was cancelled.
    fn wait(&self, cancel: Option<&AtomicBool>) -> Option<PathBuf> {
        loop {
            let ended = self.ended.load(Ordering::Relaxed);
            if self.path.is_file() {
                return Some(self.path.clone());
            }
            let cancelled = cancel.is_some_and(|c| c.load(Ordering::Relaxed));
            if ended || cancelled || crate::signals::pending().is_some() {
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }
}

impl Params {
    pub fn new(racelab: PathBuf, root: PathBuf, target: &Path) -> Params {
        Params {
            racelab,
            root,
            summary_dir: target.join("racelab"),
            out: target.join("racelab-nfs"),
            rig: PathBuf::from(super::DEFAULT_RIG),
            venv: Err("no venv for the gated runs (cargo xtask venv)".into()),
            main_model: None,
        }
    }
}

/// Runs the NFS suite after the main one and merges it into the main summary. Returns the exit
/// code the NFS rows call for (0 met or skipped, 1 an expectation failed, 3 an error), or None
/// when there was nothing to do (the main summary holds none of the lock scenarios' real rows)
/// or a signal stopped it.
pub fn run(p: &Params) -> anyhow::Result<Option<u8>> {
    let Some(summary) = read_summary(p)? else {
        return Ok(None);
    };
    let templates = real_variants(&summary.results);
    let scenarios: Vec<&'static str> = SCENARIOS
        .iter()
        .copied()
        .filter(|s| templates.iter().any(|t| t.scenario == *s))
        .collect();
    if scenarios.is_empty() {
        return Ok(None);
    }
    finish(p, start(p, scenarios))
}

/// The NFS part under way in its own thread.
pub struct Started {
    scenarios: Vec<&'static str>,
    since: Instant,
    log: PathBuf,
    cancel: Arc<AtomicBool>,
    guest: std::thread::JoinHandle<Result<(Vec<RunResult>, &'static str), Stop>>,
}

impl Started {
    /// Stops the guest early (as Ctrl-C would); [`finish`] then adds nothing.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }
}

/// The lock scenarios a suite over `path` (a directory of `.race` files, or one file) runs: the
/// ones the NFS part reruns when it starts before the main suite has written its summary.
pub fn scenarios_in(path: &Path) -> Vec<&'static str> {
    SCENARIOS
        .iter()
        .copied()
        .filter(|s| {
            if path.is_dir() {
                path.join(format!("{s}.race")).is_file()
            } else {
                path.file_stem().is_some_and(|f| f == *s)
            }
        })
        .collect()
}

/// Boots the guest and runs its passes in a thread, so the host's own rows run meanwhile: the
/// guest is one CPU that mostly waits on its own NFS round trips, and running it after the main
/// suite made it the longest part of CI. The guest's output goes to `out/guest.log`, printed by
/// [`finish`] as one block.
pub fn start(p: &Params, scenarios: Vec<&'static str>) -> Started {
    let log = p.out.join("guest.log");
    let _ = std::fs::create_dir_all(&p.out);
    let _ = std::fs::remove_file(&log);
    let cancel = Arc::new(AtomicBool::new(false));
    println!(
        "NFS part started beside the main suite: {} on {} inside a guest (its output: {})",
        scenarios.join(", "),
        TARGETS.join(", "),
        log.display()
    );
    let guest = {
        let (p, scenarios, log, cancel) =
            (p.clone(), scenarios.clone(), log.clone(), cancel.clone());
        std::thread::spawn(move || guest_rows(&p, &scenarios, Some(log), Some(cancel)))
    };
    Started {
        scenarios,
        since: Instant::now(),
        log,
        cancel,
        guest,
    }
}

/// Waits for the guest, prints its output, and merges its rows into the main summary (skipped
/// or error rows, with the reason, for every variant when it could not run).
pub fn finish(p: &Params, started: Started) -> anyhow::Result<Option<u8>> {
    let outcome = started
        .guest
        .join()
        .unwrap_or_else(|_| Err(Stop::Error("the NFS part's thread panicked".into())));
    println!(
        "\n== NFS: {} on {} inside a guest (User-mode Linux, else qemu)",
        started.scenarios.join(", "),
        TARGETS.join(", ")
    );
    if let Ok(text) = std::fs::read_to_string(&started.log) {
        print!("{text}");
    }
    let Some(mut summary) = read_summary(p)? else {
        return Ok(None);
    };
    let templates = real_variants(&summary.results);
    if templates.is_empty() {
        return Ok(None);
    }
    let rows = match outcome {
        Ok((mut rows, guest_name)) => {
            if let Err(why) = &p.venv {
                rows.extend(gate_rows_not_run(&templates, Outcome::Skipped, why));
            } else if guest_name == "qemu" {
                // The replays of the documented tokens ran; the explorations did not.
                rows.extend(
                    gate_rows_not_run(&templates, Outcome::Skipped, QEMU_GATE)
                        .into_iter()
                        .filter(|r| r.engine != "replay"),
                );
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
        started.since.elapsed().as_secs_f64()
    );
    let code = exit_code(&rows);
    // A rerun (`cargo xtask nfs suite`) replaces the NFS rows a run before merged.
    summary.results.retain(|r| {
        !TARGETS
            .iter()
            .any(|t| r.backend.ends_with(&format!(":{t}")))
    });
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

/// The main summary, or None when the main suite stopped before writing it (bad input).
fn read_summary(p: &Params) -> anyhow::Result<Option<Summary>> {
    let summary_path = p.summary_dir.join("summary.json");
    if !summary_path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&summary_path)
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", summary_path.display()))?;
    let summary = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("parsing {}: {e}", summary_path.display()))?;
    Ok(Some(summary))
}

enum Stop {
    Signal,
    Skip(String),
    Error(String),
}

/// Runs racelab's suite in the guest and returns its NFS rows.
fn guest_rows(
    p: &Params,
    scenarios: &[&'static str],
    output: Option<PathBuf>,
    cancel: Option<Arc<AtomicBool>>,
) -> Result<(Vec<RunResult>, &'static str), Stop> {
    if !nix::unistd::Uid::effective().is_root() {
        return Err(Stop::Skip("not root: real NFS needs a guest with nfsd, which `cargo xtask nfs run` sets up only as root; run as root to include nfs3 and nfs4".into()));
    }
    let mut opts = Options::new();
    opts.rig.clone_from(&p.rig);
    opts.cwd.clone_from(&p.root);
    opts.output = output;
    opts.cancel = cancel.clone();
    let m = opts.mounts();
    let dirs_of = |target: &str| -> String {
        let dirs = match target {
            "nfs3" => vec![&m.nfs3],
            "nfs4" => vec![&m.nfs4],
            "nfs3x2" => vec![&m.nfs3, &m.nfs3b],
            _ => vec![&m.nfs4, &m.nfs4b],
        };
        let dirs: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
        dirs.join(",")
    };
    let main_findings = p
        .main_model
        .as_ref()
        .and_then(|m| m.wait(cancel.as_deref()));
    if crate::signals::pending().is_some() {
        return Err(Stop::Signal);
    }
    let findings = match main_findings {
        Some(rows) => rows,
        None => {
            let explored: Vec<&'static str> = scenarios
                .iter()
                .copied()
                .filter(|s| !GATE_REPLAY_ONLY.contains(s))
                .collect();
            host_findings(p, &explored)?
        }
    };
    let command_for = |guest: &str| -> Vec<OsString> {
        // Each step's wall time goes to the log (`NFS step ...: N s`), so a slow guest shows
        // where its time went.
        let mut script = String::from("status=0\nt=$(date +%s)\n");
        // On qemu every exec reads its binary through 9p and the emulated MMU: the suite and
        // its worker processes (`racelab __worker`, one per actor, started again after every
        // killed one) run from a copy in the guest's tmpfs /run instead (measured in the
        // guest: 10 forced replays of mailman-2.1 on nfs3 in 3.4 s against 4.1 s from 9p).
        let racelab = shell_quote(&p.racelab.display().to_string());
        if guest == "qemu" {
            script.push_str(&format!(
                "racelab=/run/racelab-nfs-suite; cp {racelab} \"$racelab\" || racelab={racelab}\n"
            ));
        } else {
            script.push_str(&format!("racelab={racelab}\n"));
        }
        let timed = |script: &mut String, what: &str| {
            script.push_str(&format!(
                "echo \"NFS step {what}: $(( $(date +%s) - t )) s\"; t=$(date +%s)\n"
            ));
        };
        for pass in passes(guest, scenarios) {
            let mut argv: Vec<String> = vec![p.racelab.display().to_string(), "suite".into()];
            argv.extend(pass.scenarios.iter().map(|s| {
                p.root
                    .join("scenarios")
                    .join(format!("{s}.race"))
                    .display()
                    .to_string()
            }));
            // Syscalls in a guest are slow and it has one CPU: fewer forced replays and stress
            // runs than on the host ([`counts`]), enough to reproduce and to rate.
            argv.extend(
                [
                    "--quick",
                    "--json-only",
                    "--findings-from",
                    &findings.display().to_string(),
                    "--engines",
                    pass.engines,
                    "--replays",
                    pass.replays,
                    "--stress-runs",
                    pass.stress_runs,
                    "--out",
                ]
                .map(String::from),
            );
            argv.push(p.out.join(pass.name).display().to_string());
            for (target, left_out) in &pass.targets {
                argv.push(match left_out {
                    None => format!("--real={target}={}", dirs_of(target)),
                    Some(why) => format!("--real={target}=!{why}"),
                });
            }
            let mut line: Vec<String> = argv.iter().map(|a| shell_quote(a)).collect();
            line[0] = "\"$racelab\"".into();
            script.push_str(&format!("{} || status=$?\n", line.join(" ")));
            timed(&mut script, &format!("pass {}", pass.name));
        }
        for run in gate_runs(guest, scenarios, &p.venv) {
            let Ok(venv) = &p.venv else { continue };
            let file = p
                .root
                .join("scenarios")
                .join(format!("{}.race", run.scenario));
            if let Some(token) = run.token {
                let argv: Vec<String> = vec![
                    p.racelab.display().to_string(),
                    "replay".into(),
                    file.display().to_string(),
                    "--variant".into(),
                    run.variant.into(),
                    "--backend".into(),
                    format!("gate:{}", dirs_of(run.target)),
                    token.into(),
                ];
                let line: Vec<String> = argv.iter().map(|a| shell_quote(a)).collect();
                let out = gate_json(p, &run);
                // Not reproducing is a row (unmet), not a failure of the script.
                script.push_str(&format!(
                    "RACELAB_VENV={} {} > {} 2>&1; echo $? > {}\n",
                    shell_quote(&venv.display().to_string()),
                    line.join(" "),
                    shell_quote(&out.display().to_string()),
                    shell_quote(&out.with_extension("rc").display().to_string())
                ));
                timed(
                    &mut script,
                    &format!(
                        "gate replay {}/{} on {}",
                        run.scenario, run.variant, run.target
                    ),
                );
                continue;
            }
            let argv: Vec<String> = vec![
                p.racelab.display().to_string(),
                "explore".into(),
                file.display().to_string(),
                "--variant".into(),
                run.variant.into(),
                "--backend".into(),
                format!("gate:{}", dirs_of(run.target)),
                "--schedules".into(),
                run.executions.into(),
                "--seconds".into(),
                "900".into(),
                "--json".into(),
            ];
            let line: Vec<String> = argv.iter().map(|a| shell_quote(a)).collect();
            script.push_str(&format!(
                "RACELAB_VENV={} {} > {} || status=$?\n",
                shell_quote(&venv.display().to_string()),
                line.join(" "),
                shell_quote(&gate_json(p, &run).display().to_string())
            ));
            timed(
                &mut script,
                &format!(
                    "gate run {}/{} on {}",
                    run.scenario, run.variant, run.target
                ),
            );
        }
        script.push_str("exit $status\n");
        vec!["sh".into(), "-c".into(), script.into()]
    };
    for pass in ["one-client", "two-clients", "two-clients-flufl"] {
        let _ = std::fs::remove_file(p.out.join(pass).join("summary.json"));
    }
    let _ = std::fs::remove_dir_all(p.out.join("gate"));
    let _ = std::fs::create_dir_all(p.out.join("gate"));
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
    let mut rows: Vec<RunResult> = Vec::new();
    for pass in passes(run.guest_name, scenarios) {
        let path = p.out.join(pass.name).join("summary.json");
        let text = std::fs::read_to_string(&path).map_err(|e| {
            Stop::Error(format!(
                "racelab suite in the guest exited with {status} and left no {}: {e}",
                path.display()
            ))
        })?;
        let nfs: Summary = serde_json::from_str(&text)
            .map_err(|e| Stop::Error(format!("parsing {}: {e}", path.display())))?;
        rows.extend(
            nfs.results
                .into_iter()
                .filter(|r| TARGETS.iter().any(|t| r.backend == format!("fs:{t}"))),
        );
    }
    let templates = read_summary(p)
        .ok()
        .flatten()
        .map(|s| real_variants(&s.results))
        .unwrap_or_default();
    for g in gate_runs(run.guest_name, scenarios, &p.venv) {
        match gate_row(p, &g, status, &templates) {
            Ok(row) => rows.push(row),
            Err(why) => {
                println!(
                    "NFS gate run {}/{} on {}: {why}",
                    g.scenario, g.variant, g.target
                );
                rows.extend(
                    gate_rows_not_run(&rows.clone(), Outcome::Error, &why)
                        .into_iter()
                        .filter(|r| r.backend == format!("gate:{}", g.target)),
                );
            }
        }
    }
    for r in &mut rows {
        r.env.get_or_insert_with(Default::default).server_version =
            Some(format!("Linux knfsd in {}", run.guest));
    }
    Ok((rows, run.guest_name))
}

/// The engines whose findings the guest forces (see [`passes`]), explored on the host.
const HOST_ENGINES: &str = "loom,native-pct,native-random";

/// Explores the scenarios on the host (`racelab suite --quick`, [`HOST_ENGINES`]) and returns
/// its summary, whose findings the guest then forces (`--findings-from`): the guest spends its
/// time on real NFS calls only. (Exploring in the guest took 250 s of its 630 under User-mode
/// Linux, and everything is emulated on the qemu fallback.) Its output goes to `model.log`.
fn host_findings(p: &Params, scenarios: &[&'static str]) -> Result<PathBuf, Stop> {
    let out = p.out.join("model");
    let _ = std::fs::remove_dir_all(&out);
    let log = std::fs::File::create(p.out.join("model.log")).map_err(|e| {
        Stop::Error(format!(
            "creating {}: {e}",
            p.out.join("model.log").display()
        ))
    })?;
    let log2 = log
        .try_clone()
        .map_err(|e| Stop::Error(format!("duplicating the log: {e}")))?;
    let status = std::process::Command::new(&p.racelab)
        .arg("suite")
        .args(
            scenarios
                .iter()
                .map(|s| p.root.join("scenarios").join(format!("{s}.race"))),
        )
        .args(["--quick", "--engines", HOST_ENGINES, "--out"])
        .arg(&out)
        .stdout(log)
        .stderr(log2)
        .status()
        .map_err(|e| Stop::Error(format!("starting {}: {e}", p.racelab.display())))?;
    if crate::signals::pending().is_some() {
        return Err(Stop::Signal);
    }
    let summary = out.join("summary.json");
    match status.code() {
        // 1: some expectation not met by these two engines alone; their findings still count.
        Some(0 | 1) if summary.is_file() => Ok(summary),
        _ => Err(Stop::Error(format!(
            "exploring the NFS scenarios on the host failed ({status}); see {}",
            p.out.join("model.log").display()
        ))),
    }
}

/// One `racelab suite` run inside the guest: some scenarios, the model engines whose findings
/// (explored on the host, [`host_findings`]) it forces, and the real targets (a reason instead of directories: listed as
/// skipped). All passes run in one boot, one after the other.
#[derive(Debug, Clone, PartialEq)]
struct Pass {
    /// Its reports go to `target/racelab-nfs/NAME`.
    name: &'static str,
    scenarios: Vec<&'static str>,
    engines: &'static str,
    /// Forced replays per token and target.
    replays: &'static str,
    /// Free runs per variant and target (with and without chaos).
    stress_runs: &'static str,
    targets: Vec<(&'static str, Option<&'static str>)>,
}

/// Why flufl-lock's `nfs-*` variants are not forced on two NFSv3 clients (scenarios/flufl-lock.race,
/// "On two NFS clients", says what was measured).
const FLUFL_NFS3X2: &str = "flufl-lock's nfs-crash schedules reach a stat through client B's cached name of a claim file another client removed; NFSv4.2 answers from B's cache as the model does, NFSv3 looks the name up again after the ESTALE of the utime before it, so the forced replay diverges at an mtime flufl.lock never reads (see the scenario)";

/// Forced replays per token, and free runs per variant and target, in the guest: User-mode
/// Linux runs real calls at about a tenth of the host's speed (10 and 20, against the host's
/// 20 and 50); under qemu's emulation a run of a lock scenario takes 0.6-1.2 s (measured with
/// workers reused from run to run: 20 runs of mailman-2.1 in 13.1 s, of flufl-lock/crash in
/// 23.3 s), ten times more, so 3 and 3: every row still runs (reproduced or not, with its
/// rate's interval), and the NFS part stays under 10 minutes. Measured with `cargo xtask nfs
/// suite --findings-from` and `RACELAB_NFS_FAIL=uml` on a two-core host at a load of 8-10:
/// 671 s with the host root over 9p uncached, 443 s with `cache=loose` and racelab run from
/// the guest's tmpfs (boot 21 s, one-client pass 297 s, two-clients 95 s, flufl 18 s; forced
/// replays about 3.6 ms a step, against User-mode Linux's 0.2), and 553 s in a second run that
/// also made the three gated replays (boot 24 s, passes 359, 116 and 16 s, replays 31 s): the
/// load decides more than anything here.
fn counts(guest: &str) -> (&'static str, &'static str) {
    if guest == "qemu" {
        ("3", "3")
    } else {
        ("10", "20")
    }
}

/// Why the gated rows are left out on the qemu fallback.
const QEMU_GATE: &str = "left out on the qemu fallback guest (User-mode Linux did not boot here): a gated execution takes about ten times User-mode Linux's 1.4-2.5 s there (flufl.lock's race needs about 45 of them, the filelock sample 12); the documented tokens' gated replays do run there";

/// The guest suite's passes. One client (`nfs3`, `nfs4`): every chosen scenario, the schedules
/// of loom and native-pct (few preemptions each: within `--quick`'s 8 s loom's alone found
/// tokens for at most 5 of the 12 variants that break on one client, none on a loaded host;
/// with native-pct's, 11 are forced, all but two-busy-qrunners, and all 68 forced rows
/// reproduced on User-mode Linux). Two clients (`nfs3x2`, `nfs4x2`), where
/// only the `nfs-*` variants (the NFS client model) and nfs-two-clients run: native-random's
/// schedules, because loom finds none of the lock scenarios' two-client races within
/// `--quick`'s 8 s (nfs-mailman-2.1, flufl-lock/nfs-crash) and native-random finds them within
/// 10,000 schedules. (native-random is not used on one client: its schedules of the POSIX
/// variants reach a stat of a file whose last name was just removed, which a POSIX
/// filesystem reports with nlink 0 and an NFS client, holding the file open, silly-renames
/// and reports with nlink 1.) The qemu fallback runs the same passes with fewer runs
/// ([`counts`]).
fn passes(guest: &str, scenarios: &[&'static str]) -> Vec<Pass> {
    let (replays, stress_runs) = counts(guest);
    let chosen: Vec<&'static str> = scenarios.to_vec();
    let one_client: Vec<&'static str> = chosen
        .iter()
        .copied()
        .filter(|s| !GATE_REPLAY_ONLY.contains(s))
        .collect();
    let mut out = vec![Pass {
        name: "one-client",
        scenarios: one_client.clone(),
        engines: "loom,native-pct",
        replays,
        stress_runs,
        targets: vec![("nfs3", None), ("nfs4", None)],
    }];
    let (flufl, others): (Vec<&'static str>, Vec<&'static str>) =
        one_client.iter().partition(|s| **s == "flufl-lock");
    if !others.is_empty() {
        out.push(Pass {
            name: "two-clients",
            scenarios: others,
            engines: "native-random",
            replays,
            stress_runs,
            targets: vec![("nfs3x2", None), ("nfs4x2", None)],
        });
    }
    if !flufl.is_empty() {
        out.push(Pass {
            name: "two-clients-flufl",
            scenarios: flufl,
            engines: "native-random",
            replays,
            stress_runs,
            targets: vec![("nfs3x2", Some(FLUFL_NFS3X2)), ("nfs4x2", None)],
        });
    }
    out
}

/// Real executions of the gated flufl.lock on two clients: the crash race took 45 executions to
/// its first failure on both nfs4x2 and nfs3x2 (66 on the host's ext4), 1.4-2.3 s each in the
/// guest; a third of this budget is margin.
const GATE_EXECUTIONS: &str = "150";

/// One gated run in the guest, the real library's processes alternating between two NFS
/// clients: an exploration (gate-random; the real flufl.lock 10.0.0 on the variant whose race
/// the NFS reports are about: a holder that crashes, and the others breaking its lock), or the
/// replay of one documented token (`token`), one execution, which must break `invariant`.
#[derive(Debug, Clone, PartialEq)]
struct GateRun {
    scenario: &'static str,
    variant: &'static str,
    target: &'static str,
    token: Option<&'static str>,
    invariant: &'static str,
    /// An exploration's budget in executions (a replay is one).
    executions: &'static str,
}

impl GateRun {
    /// The row's engine: `gate-random` for an exploration, `replay` for a token.
    fn engine(&self) -> &'static str {
        if self.token.is_some() {
            "replay"
        } else {
            "gate-random"
        }
    }
}

/// The documented gate tokens replayed on two NFS clients (a gated execution costs about 2 s in
/// the guest, an exploration minutes): (scenario, variant, the invariant it breaks, target,
/// token). Each is documented in its scenario.
const GATE_REPLAYS: &[(&str, &str, &str, &str, &str)] = &[
    // scenarios/filelock.race, "Real NFS agrees": 3.29.4's two holders on two NFSv4.2 clients,
    // a waiter's fstat reading nlink 1 on the silly-renamed file.
    ("filelock", "v3.29.4", "mutual_exclusion", "nfs4x2", "rl1_AvV6op4IZmlsZWxvY2sHdjMuMjkuNBBtdXR1YWxfZXhjbHVzaW9uAglnYXRlLnNlZWTuoe6Dsf2ijZYBDGdhdGUudGlja19tc9APAA0BCAILAAsBAwIGAQPmO1Sf"),
    // scenarios/portalocker.race, "On NFS": 3.2.0's atexit release unlinks a path whose
    // isfile() its client's cache answered, FileNotFoundError (nfs4x2); 4.0.0's flock of the
    // file the other client's releaser unlinked and closed, ESTALE (nfs3x2).
    ("portalocker", "v3.2.0", "unhandled_error", "nfs4x2", "rl1_Avy5qlALcG9ydGFsb2NrZXIGdjMuMi4wD3VuaGFuZGxlZF9lcnJvcgIJZ2F0ZS5zZWVksLegs-PE78hjDGdhdGUudGlja19tc9APAQIAAwEIAgIBAgICAQMCAwACAgoyEGur"),
    ("portalocker", "v4.0.0", "unhandled_error", "nfs3x2", "rl1_AhJS-GQLcG9ydGFsb2NrZXIGdjQuMC4wD3VuaGFuZGxlZF9lcnJvcgIJZ2F0ZS5zZWVktNPCn9Cz__gJDGdhdGUudGlja19tc9APAQUAAwEEAgMAAQEGAAECAgACAgIAAgIBAAECAgACAgEAAQIBAAECAgACAgEAAQICAAICAQABAgIAAgICAAECAQABAgEAAgICAAICAgACAgEAAQICAAICAgACAgIAAgICAAICAQABAgIAAQIBAAICAgACAgEAAQICAAICAgACAgIAAgICAAICAgACAgIAAQIBAAICAgACAgIAAYS4TD0"),
];

/// The gated runs for this guest: flufl-lock's crash on two NFSv4.2 clients, when
/// flufl-lock is among the scenarios, the filelock sample, and the documented tokens' replays,
/// when there is a venv. On the qemu fallback only the replays: one execution each, measured
/// there at 13-23 s (filelock 3.29.4 20 s, portalocker 3.2.0 13 s, 4.0.0 22 s, all reproduced;
/// load 8), where the explorations would take minutes each (skipped, saying so: [`QEMU_GATE`]).
fn gate_runs(
    guest: &str,
    scenarios: &[&'static str],
    venv: &Result<PathBuf, String>,
) -> Vec<GateRun> {
    if venv.is_err() {
        return Vec::new();
    }
    if guest == "qemu" {
        return gate_runs("uml", scenarios, venv)
            .into_iter()
            .filter(|r| r.token.is_some())
            .collect();
    }
    // nfs4x2 only: measured on both, the crash race broke after the same 45 executions on
    // nfs3x2 (37.5 s); one is enough to show it each run, and the NFS part is CI's longest.
    let mut runs = Vec::new();
    if scenarios.contains(&"flufl-lock") {
        runs.push(GateRun {
            scenario: "flufl-lock",
            variant: "crash",
            target: "nfs4x2",
            token: None,
            invariant: "",
            executions: GATE_EXECUTIONS,
        });
    }
    // The fixed filelock (3.29.5 keeps the lock file) where 3.29.4's silly-renamed file gave two
    // holders: a sample, since a variant that holds can only end "not refuted" (about 2.5 s an
    // execution in the guest).
    if scenarios.contains(&"filelock") {
        runs.push(GateRun {
            scenario: "filelock",
            variant: "v3.29.5",
            target: "nfs4x2",
            token: None,
            invariant: "",
            executions: "12",
        });
    }
    for (scenario, variant, invariant, target, token) in GATE_REPLAYS {
        if scenarios.contains(scenario) {
            runs.push(GateRun {
                scenario,
                variant,
                target,
                token: Some(token),
                invariant,
                executions: "1",
            });
        }
    }
    runs
}

/// Where the guest writes a gated run's rows (`racelab explore --json`), or a replay's step
/// table (`.txt`, its exit status beside it in `.rc`).
fn gate_json(p: &Params, run: &GateRun) -> PathBuf {
    let ext = if run.token.is_some() { "txt" } else { "json" };
    p.out.join("gate").join(format!(
        "{}-{}-{}.{ext}",
        run.scenario, run.variant, run.target
    ))
}

/// The row of a gated replay: `racelab replay`'s exit status says whether the token broke its
/// invariant again (0), or not (1); anything else is an error with the output's last line.
fn replay_row(
    p: &Params,
    run: &GateRun,
    token: &str,
    templates: &[RunResult],
) -> Result<RunResult, String> {
    let out = gate_json(p, run);
    let rc = std::fs::read_to_string(out.with_extension("rc"))
        .map_err(|e| format!("the gated replay in the guest left no exit status: {e}"))?;
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    let last = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    let reproduced = match rc.trim() {
        "0" => true,
        "1" => false,
        other => return Err(format!("racelab replay exited with {other}: {last}")),
    };
    let template = templates
        .iter()
        .find(|t| t.scenario == run.scenario && t.variant == run.variant)
        .ok_or_else(|| {
            format!(
                "no row of {}/{} in the main summary",
                run.scenario, run.variant
            )
        })?;
    let why = format!(
        "the documented token replayed once through the gate on two NFS clients ({}): {last}",
        run.target
    );
    let mut row = marked(template, run.target, Outcome::Holds, &why);
    row.engine = run.engine().into();
    row.backend = format!("gate:{}", run.target);
    row.expected = reports::Verdict::Violation;
    row.expected_invariants = vec![run.invariant.to_string()];
    row.schedules = 1;
    row.replay = Some(token.to_string());
    if reproduced {
        row.outcome = Outcome::Violation;
        row.invariant = Some(run.invariant.to_string());
        row.first_failure_after = Some(1);
    }
    row.met = reproduced;
    Ok(row)
}

/// The row of a gated run, named after its target (`gate:nfs4x2`), or why the guest left none.
fn gate_row(
    p: &Params,
    run: &GateRun,
    status: i32,
    templates: &[RunResult],
) -> Result<RunResult, String> {
    if let Some(token) = run.token {
        return replay_row(p, run, token, templates);
    }
    let path = gate_json(p, run);
    let rows = std::fs::read_to_string(&path)
        .map_err(|e| e.to_string())
        .and_then(|t| serde_json::from_str::<Vec<RunResult>>(&t).map_err(|e| e.to_string()));
    match rows {
        Ok(rows) if rows.len() == 1 => {
            let mut row = rows.into_iter().next().expect("one row");
            row.backend = format!("gate:{}", run.target);
            Ok(row)
        }
        Ok(rows) => Err(format!(
            "{} rows in {} instead of one",
            rows.len(),
            path.display()
        )),
        Err(e) => Err(format!(
            "the gated run in the guest (exit {status}) left no rows in {}: {e}",
            path.display()
        )),
    }
}

/// Rows for the gated runs that did not happen, with the reason, one per run the guest would
/// have made, from the variant's forced-replay row (its expectation).
fn gate_rows_not_run(templates: &[RunResult], outcome: Outcome, why: &str) -> Vec<RunResult> {
    let any_venv = Ok(PathBuf::new());
    gate_runs("uml", SCENARIOS, &any_venv)
        .iter()
        .filter_map(|g| {
            let t = templates
                .iter()
                .find(|t| t.scenario == g.scenario && t.variant == g.variant)?;
            let mut row = marked(t, g.target, outcome, why);
            row.engine = g.engine().into();
            row.backend = format!("gate:{}", g.target);
            Some(row)
        })
        .collect()
}

/// `s` as one word for `sh`.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
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
    let mut rows: Vec<RunResult> = templates
        .iter()
        .filter(|t| !GATE_REPLAY_ONLY.contains(&t.scenario.as_str()))
        .flat_map(|t| TARGETS.iter().map(move |n| marked(t, n, outcome, why)))
        .collect();
    rows.extend(gate_rows_not_run(templates, outcome, why));
    rows
}

/// A row for `target` that did not run: the template's scenario, variant and expectation.
fn marked(template: &RunResult, target: &str, outcome: Outcome, why: &str) -> RunResult {
    RunResult {
        faults: template.faults.clone(),
        assumptions: template.assumptions.clone(),
        outcome,
        reason: Some(why.to_string()),
        ..RunResult::unmeasured(
            &template.scenario,
            &template.variant,
            "forced-replay",
            format!("fs:{target}"),
            (template.expected, template.expected_invariants.clone()),
        )
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
    fn two_client_targets_get_native_random_schedules_and_flufl_skips_nfs3x2_with_its_reason() {
        let all = SCENARIOS.to_vec();
        let p = passes("uml", &all);
        assert_eq!(
            p.iter().map(|x| (x.name, x.engines)).collect::<Vec<_>>(),
            [
                ("one-client", "loom,native-pct"),
                ("two-clients", "native-random"),
                ("two-clients-flufl", "native-random")
            ]
        );
        let one: Vec<&str> = all
            .iter()
            .copied()
            .filter(|s| !GATE_REPLAY_ONLY.contains(s))
            .collect();
        assert_eq!(
            p[0].scenarios, one,
            "every scenario on one client but the replay-only ones"
        );
        assert_eq!(p[0].targets, [("nfs3", None), ("nfs4", None)]);
        assert!(!p[1].scenarios.contains(&"flufl-lock") && p[1].scenarios.len() == one.len() - 1);
        assert!(!p.iter().any(|x| x.scenarios.contains(&"filelock")));
        assert_eq!(p[1].targets, [("nfs3x2", None), ("nfs4x2", None)]);
        assert_eq!(p[2].scenarios, ["flufl-lock"]);
        assert_eq!(
            p[2].targets,
            [("nfs3x2", Some(FLUFL_NFS3X2)), ("nfs4x2", None)]
        );
        // Only what the main run covered; no empty pass.
        let p = passes("uml", &["mailman-lockfile"]);
        assert_eq!(
            p.iter().map(|x| x.name).collect::<Vec<_>>(),
            ["one-client", "two-clients"]
        );
    }

    #[test]
    fn the_qemu_fallback_runs_the_same_passes_with_fewer_runs() {
        let uml = passes("uml", SCENARIOS);
        let qemu = passes("qemu", SCENARIOS);
        assert_eq!(uml.len(), qemu.len());
        for (u, q) in uml.iter().zip(&qemu) {
            assert_eq!(
                (u.name, &u.scenarios, &u.targets),
                (q.name, &q.scenarios, &q.targets)
            );
            assert_eq!((q.replays, q.stress_runs), counts("qemu"));
            assert_eq!((u.replays, u.stress_runs), counts("uml"));
        }
        // On qemu the gated explorations are left out, the documented tokens' replays kept.
        let qemu_gate: Vec<&str> = gate_runs("qemu", SCENARIOS, &Ok(PathBuf::from("/venv")))
            .iter()
            .map(|r| r.engine())
            .collect();
        assert_eq!(qemu_gate, ["replay", "replay", "replay"]);
    }

    #[test]
    fn the_part_started_before_the_main_suite_reruns_the_lock_scenarios_it_will_run() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
        assert_eq!(scenarios_in(&dir), SCENARIOS);
        assert_eq!(scenarios_in(&dir.join("flufl-lock.race")), ["flufl-lock"]);
        assert!(scenarios_in(&dir.join("patchwork-series.race")).is_empty());
    }

    #[test]
    fn the_gated_runs_are_on_two_nfs4_clients_only_where_they_can() {
        let venv = Ok(PathBuf::from("/venv"));
        let runs = gate_runs("uml", SCENARIOS, &venv);
        let what: Vec<(&str, &str, &str, &str)> = runs
            .iter()
            .map(|r| (r.scenario, r.variant, r.target, r.engine()))
            .collect();
        assert_eq!(
            what,
            [
                ("flufl-lock", "crash", "nfs4x2", "gate-random"),
                ("filelock", "v3.29.5", "nfs4x2", "gate-random"),
                ("filelock", "v3.29.4", "nfs4x2", "replay"),
                ("portalocker", "v3.2.0", "nfs4x2", "replay"),
                ("portalocker", "v4.0.0", "nfs3x2", "replay"),
            ]
        );
        // A replay is one execution of a token, in place of an exploration.
        assert!(runs[2..]
            .iter()
            .all(|r| r.token.is_some_and(|t| t.starts_with("rl1_"))));
        assert!(gate_runs("qemu", SCENARIOS, &venv)
            .iter()
            .all(|r| r.token.is_some()));
        assert!(gate_runs("uml", &["mailman-lockfile"], &venv).is_empty());
        assert!(gate_runs("uml", SCENARIOS, &Err("no venv".into())).is_empty());
        // When they cannot run, their rows are there anyway, skipped with the reason.
        let rows = rows_for_all(
            &[
                row("flufl-lock", "crash", "fs:tempdir"),
                row("filelock", "v3.29.4", "fs:tempdir"),
            ],
            Outcome::Skipped,
            "no guest",
        );
        let gate: Vec<(&str, &str)> = rows
            .iter()
            .filter(|r| r.backend.starts_with("gate:"))
            .map(|r| (r.engine.as_str(), r.backend.as_str()))
            .collect();
        assert_eq!(
            gate,
            [("gate-random", "gate:nfs4x2"), ("replay", "gate:nfs4x2")]
        );
        // filelock is a gated replay only: no forced-replay rows of it on the NFS targets.
        assert!(!rows
            .iter()
            .any(|r| r.scenario == "filelock" && r.backend.starts_with("fs:")));
        assert!(rows.iter().all(|r| r.outcome == Outcome::Skipped && !r.met));
    }

    #[test]
    fn shell_quote_keeps_one_word() {
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
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

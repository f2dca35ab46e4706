//! What runs in the guest: the racelab suite passes and gated runs as one shell script, and the rows they leave.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use reports::{RunResult, Summary};

use super::plan::{gate_json, gate_runs, passes};
use super::rows::{gate_error_row, gate_row, real_variants, why_down};
use super::{read_summary, Params, GATE_REPLAY_ONLY, TARGETS};
use crate::nfs::{Ended, Options};

/// Tries of a documented token's gated replay whose schedule diverged before the row says so.
pub(super) const GATE_REPLAY_ATTEMPTS: u32 = 5;

/// Why the guest part ended without rows of its own.
pub(super) enum Stop {
    Signal,
    Skip(String),
    Error(String),
}

/// Runs racelab's suite in the guest and returns its NFS rows.
pub(super) fn guest_rows(
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
                // Not reproducing is a row (unmet), not a failure of the script. A replay whose
                // schedule diverged (a process it names was not at a gated call: blocked in the
                // kernel on NFS, where a lock is granted by the server's callback) is tried
                // again, up to GATE_REPLAY_ATTEMPTS times; the row says how many diverged
                // (measured: portalocker 4.0.0's token on nfs3x2 diverged in 7 of 12 tries).
                script.push_str(&format!(
                    "rm -f {diverged}; for attempt in $(seq {attempts}); do RACELAB_VENV={venv} {cmd} > {out} 2>&1; rc=$?; if [ $rc = 3 ] && grep -q 'the schedule diverged' {out}; then tail -n 1 {out} >> {diverged}; continue; fi; break; done; echo $rc > {rc}\n",
                    attempts = GATE_REPLAY_ATTEMPTS,
                    venv = shell_quote(&venv.display().to_string()),
                    cmd = line.join(" "),
                    out = shell_quote(&out.display().to_string()),
                    diverged = shell_quote(&out.with_extension("diverged").display().to_string()),
                    rc = shell_quote(&out.with_extension("rc").display().to_string())
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
    for pass in ["one-client", "two-clients"] {
        let _ = std::fs::remove_file(p.out.join(pass).join("summary.json"));
    }
    let _ = std::fs::remove_dir_all(p.out.join("gate"));
    let _ = std::fs::create_dir_all(p.out.join("gate"));
    let run = match crate::nfs::run_adapted(&opts, &command_for) {
        Ok(run) => run,
        // A guest that should boot on every x86_64 host and did not is an error, not a skip.
        Err(e @ crate::nfs::Error::NoGuest(_)) => {
            return Err(Stop::Error(why_down(&e.to_string())))
        }
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
    // The gated rows take their variants' faults and assumptions from the model rows this part
    // forced (it has them: the guest ran on them), not from the main summary, which the main
    // suite may not have written yet when the guest is done.
    let templates: Vec<RunResult> = std::fs::read_to_string(&findings)
        .ok()
        .and_then(|t| serde_json::from_str::<Summary>(&t).ok())
        .map(|s| s.results)
        .into_iter()
        .flatten()
        .chain(
            read_summary(p)
                .ok()
                .flatten()
                .map(|s| real_variants(&s.results))
                .into_iter()
                .flatten(),
        )
        .collect();
    for g in gate_runs(run.guest_name, scenarios, &p.venv) {
        match gate_row(p, &g, status, &templates) {
            Ok(row) => rows.push(row),
            Err(why) => {
                println!(
                    "NFS gate run {}/{} on {}: {why}",
                    g.scenario, g.variant, g.target
                );
                rows.push(gate_error_row(&g, &templates, &why));
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
pub(super) const HOST_ENGINES: &str = "loom,native-pct,native-random";

/// Explores the scenarios on the host (`racelab suite --quick`, [`HOST_ENGINES`]) and returns
/// its summary, whose findings the guest then forces (`--findings-from`): the guest spends its
/// time on real NFS calls only. (Exploring in the guest took 250 s of its 630 under User-mode
/// Linux, and everything is emulated on the qemu fallback.) Its output goes to `model.log`.
pub(super) fn host_findings(p: &Params, scenarios: &[&'static str]) -> Result<PathBuf, Stop> {
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

/// `s` as one word for `sh`.
pub(super) fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

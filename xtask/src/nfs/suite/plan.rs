//! What the guest runs: the suite passes per target, the forced-replay and stress counts per guest, and the gated runs.

use std::path::PathBuf;

use super::{Params, GATE_REPLAY_ONLY};

/// One `racelab suite` run inside the guest: some scenarios, the model engines whose findings
/// (explored on the host, [`host_findings`]) it forces, and the real targets (a reason instead of directories: listed as
/// skipped). All passes run in one boot, one after the other.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Pass {
    /// Its reports go to `target/racelab-nfs/NAME`.
    pub(super) name: &'static str,
    pub(super) scenarios: Vec<&'static str>,
    pub(super) engines: &'static str,
    /// Forced replays per token and target.
    pub(super) replays: &'static str,
    /// Free runs per variant and target (with and without chaos).
    pub(super) stress_runs: &'static str,
    pub(super) targets: Vec<(&'static str, Option<&'static str>)>,
}

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
pub(super) fn counts(guest: &str) -> (&'static str, &'static str) {
    if guest == "qemu" {
        ("3", "3")
    } else {
        ("10", "20")
    }
}

/// Why the gated rows are left out on the qemu fallback.
pub(super) const QEMU_GATE: &str = "left out on the qemu fallback guest (User-mode Linux did not boot here): a gated execution takes about ten times User-mode Linux's 1.4-2.5 s there (flufl.lock's race needs about 45 of them, the filelock sample 12); the documented tokens' gated replays do run there";

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
pub(super) fn passes(guest: &str, scenarios: &[&'static str]) -> Vec<Pass> {
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
    // Two clients: the same scenarios. (flufl-lock once had a pass of its own, on nfs4x2
    // only, until the model gave a stat through a cached name both answers NFSv3 and NFSv4.2
    // give: scenarios/flufl-lock.race, nfs-crash.)
    if !one_client.is_empty() {
        out.push(Pass {
            name: "two-clients",
            scenarios: one_client,
            engines: "native-random",
            replays,
            stress_runs,
            targets: vec![("nfs3x2", None), ("nfs4x2", None)],
        });
    }
    out
}

/// Real executions of the gated flufl.lock on two clients: the crash race took 45 executions to
/// its first failure on both nfs4x2 and nfs3x2 (66 on the host's ext4), 1.4-2.3 s each in the
/// guest; a third of this budget is margin.
pub(super) const GATE_EXECUTIONS: &str = "150";

/// One gated run in the guest, the real library's processes alternating between two NFS
/// clients: an exploration (gate-random; the real flufl.lock 10.0.0 on the variant whose race
/// the NFS reports are about: a holder that crashes, and the others breaking its lock), or the
/// replay of one documented token (`token`), one execution, which must break `invariant`.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct GateRun {
    pub(super) scenario: &'static str,
    pub(super) variant: &'static str,
    pub(super) target: &'static str,
    pub(super) token: Option<&'static str>,
    pub(super) invariant: &'static str,
    /// An exploration's budget in executions (a replay is one).
    pub(super) executions: &'static str,
}

impl GateRun {
    /// The row's engine: `gate-random` for an exploration, `replay` for a token.
    pub(super) fn engine(&self) -> &'static str {
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
pub(super) const GATE_REPLAYS: &[(&str, &str, &str, &str, &str)] = &[
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
pub(super) fn gate_runs(
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
pub(super) fn gate_json(p: &Params, run: &GateRun) -> PathBuf {
    let ext = if run.token.is_some() { "txt" } else { "json" };
    p.out.join("gate").join(format!(
        "{}-{}-{}.{ext}",
        run.scenario, run.variant, run.target
    ))
}

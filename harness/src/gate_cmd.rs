//! `racelab explore --backend gate` and `racelab replay --backend gate`: a scenario's real
//! program under the gate, on a real directory.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use racelab::gate::explore::{replay, Strategy};
use racelab::gate::report::explore_row;
use racelab::gate::run::GateOptions;
use racelab::ir::Program;
use racelab::schedule::Schedule;
use reports::table::{render_trace, Style};
use reports::Trace;

/// How the gate runs, from the command line.
pub struct GateArgs {
    /// Where runs are made (`gate:DIR`; default the temp dir).
    pub base: PathBuf,
    /// `gate:DIR,DIR2,...`: the same directory through other clients (two NFS mounts of one
    /// export); actors alternate between them.
    pub clients: Vec<PathBuf>,
    pub tick_ms: u64,
    pub step_timeout: Duration,
}

impl GateArgs {
    /// `gate` or `gate:DIR`; `None` for other backends.
    pub fn parse(
        backend: &str,
        tick_ms: u64,
        step_timeout_s: f64,
    ) -> Option<Result<GateArgs, String>> {
        let rest = if backend == "gate" {
            Some("")
        } else {
            backend.strip_prefix("gate:")
        }?;
        let mut dirs: Vec<PathBuf> = if rest.is_empty() {
            vec![std::env::temp_dir()]
        } else {
            rest.split(',').map(PathBuf::from).collect()
        };
        if let Some(d) = dirs.iter().find(|d| !d.is_dir()) {
            return Some(Err(format!("--backend gate:{rest}: {} is not a directory; give an existing directory on the filesystem to test (or DIR,DIR2 for one directory through two clients)", d.display())));
        }
        let base = dirs.remove(0);
        Some(Ok(GateArgs {
            base,
            clients: dirs,
            tick_ms,
            step_timeout: Duration::from_secs_f64(step_timeout_s.max(0.1)),
        }))
    }

    fn options(&self, file: &Path) -> Result<GateOptions, String> {
        let mut opts = GateOptions::new(file, &self.base)?;
        opts.clients.clone_from(&self.clients);
        opts.tick_ns = self.tick_ms * 1_000_000;
        opts.step_timeout = self.step_timeout;
        Ok(opts)
    }
}

pub fn strategies(engine: &str) -> Result<Vec<Strategy>, String> {
    match engine {
        "gate-random" => Ok(vec![Strategy::Random]),
        "gate-pct" => Ok(vec![Strategy::Pct { depth: 3 }]),
        "all" => Ok(vec![Strategy::Random, Strategy::Pct { depth: 3 }]),
        other => Err(format!("engine `{other}` does not drive real programs; with --backend gate, use gate-random, gate-pct or all")),
    }
}

/// Explores each program through the gate; prints rows (or JSON) and returns the exit code.
#[allow(clippy::too_many_arguments)]
pub fn explore(
    file: &Path,
    stem: &str,
    progs: &[&Program],
    engine: &str,
    args: &GateArgs,
    executions: u64,
    seconds: f64,
    seed: u64,
    json: bool,
    style: Style,
    tty: bool,
) -> u8 {
    racelab::backend::cancel::install();
    let strategies = match strategies(engine) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let opts = match args.options(file) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            return 3;
        }
    };
    if progs.iter().all(|p| p.gate.is_none()) {
        eprintln!("error: {}: no variant names a real program; add `gate \"COMMAND\"` to the scenario (docs/language.md, section 5.15) or explore the model (`--backend model`)", file.display());
        return 2;
    }
    let mut rows = Vec::new();
    for prog in progs {
        if prog.gate.is_none() {
            eprintln!("{stem}/{}: skipped: the variant has no `gate \"COMMAND\"` (no real program to run)", prog.variant);
            continue;
        }
        for &s in &strategies {
            let bar = if tty {
                indicatif::ProgressBar::new(executions)
            } else {
                indicatif::ProgressBar::hidden()
            };
            bar.set_message(format!("{stem}/{} [{}]", prog.variant, s.engine_name()));
            let mut progress = |n: u64, found: usize| {
                bar.set_position(n);
                bar.set_message(format!(
                    "{stem}/{} [{}] {found} found",
                    prog.variant,
                    s.engine_name()
                ));
            };
            let budget = racelab::gate::explore::GateBudget {
                executions,
                seconds,
            };
            let row = explore_row(stem, prog, &opts, s, budget, seed, &mut progress);
            bar.finish_and_clear();
            rows.push(row);
            if let Some(sig) = racelab::backend::cancel::requested() {
                eprintln!("interrupted by signal {sig}: every gated process was killed and reaped, every run directory removed");
                return (128 + sig).clamp(0, 255) as u8;
            }
        }
    }
    crate::print_rows(&rows, file, json, "execution", "--backend gate ", style);
    racelab::suite::exit_code(&rows) as u8
}

/// Replays a gate token `times` times; every run must break the token's invariant.
pub fn replay_token(
    prog: &Arc<Program>,
    sched: &Schedule,
    file: &Path,
    args: &GateArgs,
    times: u32,
    style: Style,
) -> u8 {
    racelab::backend::cancel::install();
    let opts = match args.options(file) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            return 3;
        }
    };
    let what = sched.target.as_deref().unwrap_or("a violation");
    let mut reproduced = 0;
    let mut shown = false;
    for i in 0..times.max(1) {
        let exec = match replay(prog, &opts, sched) {
            Ok(e) => e,
            Err(e) => {
                eprintln!("error: replay {} through the gate: {e}", i + 1);
                return if e.contains("token") { 2 } else { 3 };
            }
        };
        if !shown {
            let verdict = exec.verdict();
            let trace = Trace {
                scenario: prog.scenario.clone(),
                variant: prog.variant.clone(),
                actors: prog.actors.iter().map(|a| a.name.to_string()).collect(),
                steps: exec.trace.clone(),
                verdict,
            };
            print!("{}", render_trace(&trace, style));
            shown = true;
        }
        if sched.target.as_ref().is_some_and(|t| exec.broke(t)) {
            reproduced += 1;
        }
    }
    println!(
        "\n{reproduced}/{} gated replays reproduced {what}",
        times.max(1)
    );
    if reproduced == times.max(1) {
        0
    } else {
        1
    }
}

/// `racelab __gate-linklock LOCKFILE COUNTER WORK_MS`: one locker of
/// `scenarios/racelab-linklock.race` with racelab's real LinkLock, for the gate (a Rust program
/// beside flufl.lock's Python). It follows the conventions of docs/language.md section 5.15:
/// paths are the scenario's, under `$RACELAB_ROOT`; the critical section is the file
/// `.racelab/critical/list/$RACELAB_ACTOR`; NotLocked on release is a line in `.racelab/logs/events`.
pub fn linklock_driver(lockfile: &Path, counter: &Path, work_ms: u64) -> u8 {
    use racelab::lockfile::{FileLock, LinkLock, LinkOptions};
    use std::io::Write;
    let (Ok(root), Ok(me)) = (
        std::env::var("RACELAB_ROOT"),
        std::env::var("RACELAB_ACTOR"),
    ) else {
        eprintln!(
            "error: __gate-linklock runs under the gate, which sets RACELAB_ROOT and RACELAB_ACTOR"
        );
        return 2;
    };
    let under = |p: &Path| PathBuf::from(format!("{root}{}", p.display()));
    let log = |name: &str, line: &str| {
        let path = format!("{root}/.racelab/logs/{name}");
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "{line}");
        }
    };
    let marker = PathBuf::from(format!("{root}/.racelab/critical/list/{me}"));
    let mut lock = match LinkLock::new(&under(lockfile), LinkOptions::default()) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    if let Err(e) = lock.acquire(None) {
        eprintln!("error: acquire: {e}");
        return 1;
    }
    let step = || -> std::io::Result<()> {
        std::fs::write(&marker, b"")?;
        let n: u64 = match std::fs::read_to_string(under(counter)) {
            Ok(s) => s.trim().parse().unwrap_or(0),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        std::thread::sleep(Duration::from_millis(work_ms));
        std::fs::write(under(counter), (n + 1).to_string())?;
        log("done", &me);
        std::fs::remove_file(&marker)
    };
    if let Err(e) = step() {
        eprintln!("error: in the critical section: {e}");
        return 1;
    }
    match lock.release() {
        Ok(()) => 0,
        Err(e) => {
            log("events", &format!("{me}: NotLockedError"));
            eprintln!("error: release: {e}");
            1
        }
    }
}

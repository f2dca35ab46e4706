//! `racelab explore --backend gate` and `racelab replay --backend gate`: a scenario's real
//! program under the gate, on a real directory.

use std::path::{Path, PathBuf};
use std::time::Duration;

use racelab_core::error::Error;
use racelab_core::schedule::Schedule;
use racelab_real::gate::explore::{replay, Strategy};
use racelab_real::gate::report::explore_row;
use racelab_real::gate::run::GateOptions;
use reports::table::render_trace;
use reports::Trace;

use super::load::{load, load_variant_with, pick_variants, stem};
use super::output::{eprint_error, interrupted_exit, print_rows, Output, BAD_INPUT};

/// How the gate runs, from the command line.
pub(crate) struct GateArgs {
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
    pub(crate) fn parse(
        backend: &str,
        tick_ms: u64,
        step_timeout_s: f64,
    ) -> Option<Result<GateArgs, Error>> {
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
            return Some(Err(Error::bad_input(format!("--backend gate:{rest}: {} is not a directory; give an existing directory on the filesystem to test (or DIR,DIR2 for one directory through two clients)", d.display()))));
        }
        let base = dirs.remove(0);
        Some(Ok(GateArgs {
            base,
            clients: dirs,
            tick_ms,
            step_timeout: Duration::from_secs_f64(step_timeout_s.max(0.1)),
        }))
    }

    /// The gate's options for `file`; what fails here (the gate's own setup) is infrastructure.
    fn options(&self, file: &Path) -> Result<GateOptions, Error> {
        let mut opts = GateOptions::new(file, &self.base)?;
        opts.clients.clone_from(&self.clients);
        opts.tick_ns = self.tick_ms * 1_000_000;
        opts.step_timeout = self.step_timeout;
        Ok(opts)
    }
}

/// The gate engines `--engine` names.
fn strategies(engine: &str) -> Result<Vec<Strategy>, Error> {
    match engine {
        "gate-random" => Ok(vec![Strategy::Random]),
        "gate-pct" => Ok(vec![Strategy::Pct { depth: 3 }]),
        "all" => Ok(vec![Strategy::Random, Strategy::Pct { depth: 3 }]),
        other => Err(Error::bad_input(format!("engine `{other}` does not drive real programs; with --backend gate, use gate-random, gate-pct or all"))),
    }
}

/// What `racelab explore --backend gate` asks for (from `ExploreArgs`, which this module does
/// not import: the commands call the gate, not the other way round).
pub(crate) struct ExploreRequest<'a> {
    pub file: &'a Path,
    pub variant: Option<&'a str>,
    pub engine: Option<&'a str>,
    pub schedules: Option<u64>,
    pub seconds: f64,
    pub seed: u64,
    pub json: bool,
}

/// `racelab explore --backend gate[:DIR]`: explores each picked variant's program through the
/// gate; prints rows (or JSON) and returns the exit code.
pub(crate) fn explore(args: &ExploreRequest, gate: Result<GateArgs, Error>, out: &Output) -> u8 {
    let file = args.file;
    // Real executions cost a fraction of a second each, not microseconds.
    let engine = args.engine.unwrap_or("gate-random");
    let executions = args.schedules.unwrap_or(200);
    let gate = match gate {
        Ok(g) => g,
        Err(e) => {
            eprint_error(&e);
            return e.exit_code();
        }
    };
    let sc = match load(file, out) {
        Ok(sc) => sc,
        Err(c) => return c,
    };
    let progs = match pick_variants(&sc, args.variant, file) {
        Ok(p) => p,
        Err(c) => return c,
    };
    let stem = stem(file);
    racelab_real::backend::cancel::install();
    let strategies = match strategies(engine) {
        Ok(s) => s,
        Err(e) => {
            eprint_error(&e);
            return e.exit_code();
        }
    };
    let opts = match gate.options(file) {
        Ok(o) => o,
        Err(e) => {
            eprint_error(&e);
            return e.exit_code();
        }
    };
    if progs.iter().all(|p| p.gate.is_none()) {
        eprintln!("error: {}: no variant names a real program; add `gate \"COMMAND\"` to the scenario (docs/language.md, section 5.15) or explore the model (`--backend model`)", file.display());
        return BAD_INPUT;
    }
    let mut rows = Vec::new();
    for prog in progs {
        if prog.gate.is_none() {
            eprintln!("{stem}/{}: skipped: the variant has no `gate \"COMMAND\"` (no real program to run)", prog.variant);
            continue;
        }
        for &s in &strategies {
            let bar = if out.tty {
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
            let budget = racelab_real::gate::explore::GateBudget {
                executions,
                seconds: args.seconds,
            };
            let row = explore_row(&stem, prog, &opts, s, budget, args.seed, &mut progress);
            bar.finish_and_clear();
            rows.push(row);
            if let Some(sig) = racelab_real::backend::cancel::requested() {
                eprintln!("interrupted by signal {sig}: every gated process was killed and reaped, every run directory removed");
                return interrupted_exit(sig);
            }
        }
    }
    print_rows(
        &rows,
        file,
        args.json,
        "execution",
        "--backend gate ",
        out.style(),
    );
    racelab_real::suite::exit_code(&rows) as u8
}

/// `racelab replay --backend gate[:DIR] TOKEN`: replays a gate token `times` times; every run
/// must break the token's invariant.
pub(crate) fn replay_token(
    (file, variant, token, times): (&Path, &str, &str, u32),
    gate: Result<GateArgs, Error>,
    out: &Output,
) -> u8 {
    let gate = match gate {
        Ok(g) => g,
        Err(e) => {
            eprint_error(&e);
            return e.exit_code();
        }
    };
    let sched = match Schedule::decode(token) {
        Ok(s) => s,
        Err(e) => {
            let e = Error::from(e);
            eprint_error(&e);
            return e.exit_code();
        }
    };
    // The token's own parameters (its seed and tick are the gate's, not the scenario's).
    let params = sched
        .params
        .iter()
        .filter(|(n, _)| !n.starts_with("gate."))
        .cloned()
        .collect();
    let prog = match load_variant_with(file, variant, &params, out) {
        Ok(p) => p,
        Err(c) => return c,
    };
    let sched = &sched;
    racelab_real::backend::cancel::install();
    let opts = match gate.options(file) {
        Ok(o) => o,
        Err(e) => {
            eprint_error(&e);
            return e.exit_code();
        }
    };
    let what = sched.target.as_deref().unwrap_or("a violation");
    let mut reproduced = 0;
    let mut shown = false;
    for i in 0..times.max(1) {
        let exec = match replay(&prog, &opts, sched) {
            Ok(e) => e,
            Err(e) => {
                eprint_error(format_args!("replay {} through the gate: {e}", i + 1));
                return e.exit_code();
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
            print!("{}", render_trace(&trace, out.style()));
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

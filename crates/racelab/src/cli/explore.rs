//! `racelab explore FILE`: a scenario's interleavings explored by the model engines (or, with
//! `--backend gate`, its real program through the gate) until an invariant breaks or the budget
//! runs out; the results as tables with replay commands, or as JSON.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use racelab_core::explore::{Budget, EngineConfig};
use racelab_lang::ir::Program;
use racelab_real::suite;

use super::gate::GateArgs;
use super::load::{load, parse_engines, pick_variants, stem};
use super::output::{eprint_error, print_rows, Output, BAD_INPUT};

#[derive(clap::Args)]
pub(crate) struct ExploreArgs {
    pub file: PathBuf,
    /// The variant to explore (default: every variant).
    #[arg(long)]
    pub variant: Option<String>,
    /// shuttle-random, shuttle-pct, shuttle-dfs, loom, native-random, native-pct, native-dfs,
    /// or all (default shuttle-random); with --backend gate: gate-random, gate-pct or all
    /// (default gate-random).
    #[arg(long)]
    pub engine: Option<String>,
    /// `model` (the default), or `gate[:DIR]`: the scenario's real program (`gate "..."`),
    /// its file-system calls under racelab's schedules, in fresh directories under DIR (the
    /// temp dir by default). Budgets then count real executions. `gate:DIR,DIR2`: one
    /// directory through two clients (two NFS mounts of one export), actors alternating.
    #[arg(long, default_value = "model")]
    pub backend: String,
    /// The gate: wake-ups fall on ticks of this many milliseconds (0: exact).
    #[arg(long, default_value_t = 1000)]
    pub tick_ms: u64,
    /// The gate: a process that makes no gated call for this many seconds is hung: it is
    /// killed, reaped and reported.
    #[arg(long, default_value_t = 20.0)]
    pub step_timeout: f64,
    /// The most schedules to explore per engine (default 20000; with --backend gate, real
    /// executions, default 200).
    #[arg(long)]
    pub schedules: Option<u64>,
    /// The most seconds to spend per engine.
    #[arg(long, default_value_t = 20.0)]
    pub seconds: f64,
    #[arg(long, default_value_t = 0x5eed)]
    pub seed: u64,
    /// loom's preemption bound.
    #[arg(long, default_value_t = 2)]
    pub preemption_bound: usize,
    /// native-dfs: the most distinct states to expand (a 128-bit fingerprint each: about 33 bytes of memory per state measured) before giving up on a proof.
    #[arg(long, default_value_t = racelab_core::explore::native::DEFAULT_MAX_STATES)]
    pub max_states: u64,
    /// native-dfs: partial-order reduction with sleep sets: a transition that commutes with a
    /// sibling already explored is skipped. It skips transitions, never states, so on the
    /// built-in scenarios it costs more than it saves (mailman-lockfile/patched 0.48 s with it,
    /// 0.42 s without); off by default.
    #[arg(long)]
    pub por: bool,
    /// native-dfs: threads for the proof search (default: the CPUs). A search that finds a
    /// violation is repeated on one thread, so the counterexample is the same every time.
    #[arg(long)]
    pub workers: Option<usize>,
    /// For a scenario with `param`s: how many draws of their values to explore (each with
    /// the whole budget); a failing draw is shrunk to the smallest values that still fail.
    #[arg(long, default_value_t = 8)]
    pub param_draws: u32,
    /// Explore only shard I of N of the file's variants (`--shard 2/3`).
    #[arg(long, value_parser = racelab::shard::parse)]
    pub shard: Option<reports::Shard>,
    /// Print the results as JSON instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// Explores on the backend the arguments name: the model, or the gate.
pub(crate) fn run(args: &ExploreArgs, out: &Output) -> u8 {
    if let Some(gate) = GateArgs::parse(&args.backend, args.tick_ms, args.step_timeout) {
        let request = super::gate::ExploreRequest {
            file: &args.file,
            variant: args.variant.as_deref(),
            engine: args.engine.as_deref(),
            schedules: args.schedules,
            seconds: args.seconds,
            seed: args.seed,
            json: args.json,
        };
        return super::gate::explore(&request, gate, out);
    }
    if args.backend != "model" {
        eprint_error(format_args!("explore runs on `--backend model` or `--backend gate[:DIR]`, not `{}`; real filesystems and databases replay and stress what the model finds (racelab replay, racelab stress)", args.backend));
        return BAD_INPUT;
    }
    explore_model(args, out)
}

/// The model engines on every picked variant, one portfolio per variant.
fn explore_model(args: &ExploreArgs, out: &Output) -> u8 {
    let file = args.file.as_path();
    let engine = args.engine.as_deref().unwrap_or("shuttle-random");
    let budget = Budget::new(
        args.schedules.unwrap_or(20_000),
        Duration::from_secs_f64(args.seconds.max(0.001)),
    );
    let sc = match load(file, out) {
        Ok(sc) => sc,
        Err(c) => return c,
    };
    let engines = match parse_engines(&[engine.to_string()]) {
        Ok(e) => e,
        Err(msg) => {
            eprint_error(msg);
            return BAD_INPUT;
        }
    };
    let mut progs = match pick_variants(&sc, args.variant.as_deref(), file) {
        Ok(p) => p,
        Err(c) => return c,
    };
    if let Some(s) = args.shard {
        let mut position = 0u32;
        progs.retain(|_| {
            position += 1;
            (position - 1) % s.count == s.index - 1
        });
    }
    let mut rows = Vec::new();
    for prog in progs {
        let prog = Arc::new(prog.clone());
        let configs: Vec<EngineConfig> = engines
            .iter()
            .map(|&k| {
                let cfg = EngineConfig::new(k, budget)
                    .seed(args.seed)
                    .preemption_bound(args.preemption_bound)
                    .max_states(args.max_states)
                    .por(args.por);
                match args.workers {
                    Some(n) => cfg.workers(n),
                    None => cfg,
                }
            })
            .collect();
        if !prog.params.is_empty() {
            // Parameters: each engine explores draws of their values; a failure is shrunk.
            for cfg in &configs {
                match search_params(args, &prog, cfg) {
                    Ok(row) => rows.push(row),
                    Err(c) => return c,
                }
            }
            continue;
        }
        // One portfolio per variant: a native-dfs proof settles it for the other engines.
        let jobs: Vec<suite::Job> = configs
            .iter()
            .map(|&config| suite::Job {
                scenario: stem(file),
                prog: prog.clone(),
                config,
            })
            .collect();
        rows.extend(suite::run(&jobs, &|_| {}));
    }
    suite::judge_portfolio(&mut rows);
    print_rows(&rows, file, args.json, "schedule", "", out.style());
    suite::exit_code(&rows) as u8
}

/// One engine on draws of a variant's parameters: says what was drawn and what the failure
/// shrank to, and answers with the row of the (shrunk) result.
fn search_params(
    args: &ExploreArgs,
    prog: &Program,
    cfg: &EngineConfig,
) -> Result<reports::RunResult, u8> {
    let file = args.file.as_path();
    let src = std::fs::read_to_string(file).unwrap_or_default();
    let s = match racelab_core::params::search(
        &file.display().to_string(),
        &src,
        &prog.variant,
        &prog.params,
        cfg,
        args.param_draws,
        args.seed,
    ) {
        Ok(s) => s,
        Err(e) => {
            eprint_error(e);
            return Err(BAD_INPUT);
        }
    };
    let show = |v: &BTreeMap<String, i64>| {
        v.iter()
            .map(|(n, x)| format!("{n} = {x}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let drawn: Vec<String> = s.draws.iter().map(|d| format!("({})", show(d))).collect();
    // Beside the JSON on stdout, the parameter search goes to stderr.
    let say = |line: String| {
        if args.json {
            eprintln!("{line}")
        } else {
            println!("{line}")
        }
    };
    match &s.failing_before_shrink {
        Some(before) => say(format!(
            "{}/{} [{}]: parameters drawn {}; the failure at ({}) shrinks to ({}) in {} steps",
            stem(file),
            prog.variant,
            cfg.kind.name(),
            drawn.join(" "),
            show(before),
            show(&s.result.values),
            s.shrink_steps
        )),
        None => say(format!(
            "{}/{} [{}]: parameters drawn {}; none broke anything",
            stem(file),
            prog.variant,
            cfg.kind.name(),
            drawn.join(" ")
        )),
    }
    Ok(suite::result_row(
        &stem(file),
        &s.result.prog,
        cfg,
        s.result.outcome,
    ))
}

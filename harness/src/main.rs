//! The `racelab` command line: check, explore, replay and suite.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

mod fmt_cmd;
mod gate_cmd;

use clap::{Parser, Subcommand};
use racelab::backend::db::DbSpec;
use racelab::backend::forced::{forced_replay, ForcedError};
use racelab::backend::{ActorMode, BackendSpec};
use racelab::explore::{Budget, EngineConfig, EngineKind};
use racelab::lang::{self, Scenario};
use racelab::schedule::{Schedule, TokenError};
use racelab::{replay, suite};
use reports::table::{render_result_line, render_trace, Style};

/// Exit codes (DESIGN.md): 0 expectations met, 1 an expectation failed, 2 bad input, 3 infrastructure.
const BAD_INPUT: u8 = 2;
const INFRASTRUCTURE: u8 = 3;

#[derive(Parser)]
#[command(
    name = "racelab",
    version,
    about = "Find, print and replay races described as scenarios"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check scenario files for errors without running them.
    Check {
        /// Scenario files (*.race), or PostgreSQL isolation specs (*.spec).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Explore a scenario's interleavings until an invariant breaks or the budget runs out.
    Explore {
        file: PathBuf,
        /// The variant to explore (default: every variant).
        #[arg(long)]
        variant: Option<String>,
        /// shuttle-random, shuttle-pct, shuttle-dfs, loom, native-random, native-pct, native-dfs,
        /// or all (default shuttle-random); with --backend gate: gate-random, gate-pct or all
        /// (default gate-random).
        #[arg(long)]
        engine: Option<String>,
        /// `model` (the default), or `gate[:DIR]`: the scenario's real program (`gate "..."`),
        /// its file-system calls under racelab's schedules, in fresh directories under DIR (the
        /// temp dir by default). Budgets then count real executions. `gate:DIR,DIR2`: one
        /// directory through two clients (two NFS mounts of one export), actors alternating.
        #[arg(long, default_value = "model")]
        backend: String,
        /// The gate: wake-ups fall on ticks of this many milliseconds (0: exact).
        #[arg(long, default_value_t = 1000)]
        tick_ms: u64,
        /// The gate: a process that makes no gated call for this many seconds is hung: it is
        /// killed, reaped and reported.
        #[arg(long, default_value_t = 20.0)]
        step_timeout: f64,
        /// The most schedules to explore per engine (default 20000; with --backend gate, real
        /// executions, default 200).
        #[arg(long)]
        schedules: Option<u64>,
        /// The most seconds to spend per engine.
        #[arg(long, default_value_t = 20.0)]
        seconds: f64,
        #[arg(long, default_value_t = 0x5eed)]
        seed: u64,
        /// loom's preemption bound.
        #[arg(long, default_value_t = 2)]
        preemption_bound: usize,
        /// native-dfs: the most distinct states to expand (a 128-bit fingerprint each: about 33 bytes of memory per state measured) before giving up on a proof.
        #[arg(long, default_value_t = racelab::explore::native::DEFAULT_MAX_STATES)]
        max_states: u64,
        /// native-dfs: partial-order reduction with sleep sets. It skips transitions, never
        /// states, and on the built-in scenarios costs more than it saves (see ARCHITECTURE.md).
        #[arg(long)]
        por: bool,
        /// native-dfs: threads for the proof search (default: the CPUs). A search that finds a
        /// violation is repeated on one thread, so the counterexample is the same every time.
        #[arg(long)]
        workers: Option<usize>,
        /// For a scenario with `param`s: how many draws of their values to explore (each with
        /// the whole budget); a failing draw is shrunk to the smallest values that still fail.
        #[arg(long, default_value_t = 8)]
        param_draws: u32,
        /// Explore only shard I of N of the file's variants (`--shard 2/3`).
        #[arg(long, value_parser = racelab::shard::parse)]
        shard: Option<reports::Shard>,
        /// Print the results as JSON instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// Replay a recorded schedule and print its step table.
    Replay {
        file: PathBuf,
        /// The variant the token was recorded for.
        #[arg(long)]
        variant: String,
        /// The replay token printed by `racelab explore`.
        token: String,
        /// Where to replay: `model`, or `fs:DIR` (real syscalls in a fresh directory under DIR,
        /// checked step by step against the model), or `gate[:DIR]` (or `gate:DIR,DIR2`, one
        /// directory through two clients) for a token found through the gate.
        #[arg(long, default_value = "model")]
        backend: String,
        /// The gate: a process that makes no gated call for this many seconds is hung.
        #[arg(long, default_value_t = 20.0)]
        step_timeout: f64,
        /// Real actors: `threads` or `processes` (real signals). Only with `--backend fs:DIR`.
        #[arg(long, default_value = "processes")]
        actors: String,
        /// Replay this many times and check that every run gives the same outcome.
        #[arg(long, default_value_t = 1)]
        times: u32,
        /// Run the token's schedule on another variant of the same scenario: does the fix
        /// survive the failing interleaving, does the POSIX model predict what NFS did?
        #[arg(long)]
        on_variant: Option<String>,
    },
    /// Run a variant many times with free-running real actors and measure how often each invariant breaks.
    Stress {
        file: PathBuf,
        #[arg(long)]
        variant: String,
        /// `fs:DIR`: a real directory (each run gets a fresh subdirectory, removed after).
        #[arg(long)]
        backend: String,
        /// How many runs.
        #[arg(long, default_value_t = 200)]
        runs: u64,
        /// Random pauses before real operations (like rr's chaos mode).
        #[arg(long)]
        chaos: bool,
        /// `threads` or `processes`.
        #[arg(long, default_value = "processes")]
        actors: String,
        /// Runs in parallel (default: the number of CPUs).
        #[arg(long)]
        jobs: Option<usize>,
        #[arg(long, default_value_t = 0x5eed)]
        seed: u64,
        /// Inject none of the variant's faults (by default a nemesis makes them real at random
        /// step boundaries of every run: SIGKILL, SIGSTOP/SIGCONT, the signal).
        #[arg(long)]
        no_nemesis: bool,
        /// Print the result as JSON (a summary.json row).
        #[arg(long)]
        json: bool,
    },
    /// (internal) Starts a program under racelab's gate: traced, with its seccomp filter.
    #[command(name = "__gate-exec", hide = true)]
    GateExec {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        argv: Vec<String>,
    },
    /// (internal) The gate benchmark's program: `calls` file-system calls (stat and utime, by
    /// turns) on FILE, then exit.
    #[command(name = "__gate-bench", hide = true)]
    GateBench { file: PathBuf, calls: u64 },
    /// (internal) One locker of racelab-linklock.race with the real LinkLock, run under the gate.
    #[command(name = "__gate-linklock", hide = true)]
    GateLinkLock {
        lockfile: PathBuf,
        counter: PathBuf,
        work_ms: u64,
    },
    /// (internal) A worker process performing one actor's operations for a real backend.
    #[command(name = "__worker", hide = true)]
    Worker { root: PathBuf, parent: u32 },
    /// (internal) One lock owner of a contention run (benchmarks, the flufl.lock interop test):
    /// prints a JSON report (racelab::lockfile::worker::Report).
    #[command(name = "__lockbench", hide = true)]
    LockBench {
        #[arg(long)]
        strategy: String,
        #[arg(long)]
        lock: PathBuf,
        #[arg(long)]
        iters: u64,
        /// CLOCK_MONOTONIC instant (ns) to start at, so that all owners start together.
        #[arg(long, default_value_t = 0)]
        start_ns: u64,
        #[arg(long)]
        counter: Option<PathBuf>,
        #[arg(long)]
        lifetime_ms: Option<u64>,
        #[arg(long)]
        timeout_ms: Option<u64>,
        /// Keep cycling until this long has passed, also after `--iters` cycles: a few cycles
        /// in a fresh process measure its cold start, not the lock.
        #[arg(long)]
        min_ms: Option<u64>,
    },
    /// Run PostgreSQL isolation specs (*.spec) on a real PostgreSQL server and compare the
    /// output with their expected files, as PostgreSQL's isolationtester does (docs/isolation.md).
    Isolation(racelab::pgspec::cli::Args),
    /// Run every scenario × variant × engine and write summary.json, summary.md, summary.html, junit.xml.
    Suite {
        /// Scenario files or directories (default: ./scenarios).
        paths: Vec<PathBuf>,
        /// Where to write the reports.
        #[arg(long, default_value = "target/racelab")]
        out: PathBuf,
        /// A run under two minutes on two cores.
        #[arg(long)]
        quick: bool,
        /// Engines to use (comma-separated); default all.
        #[arg(long, value_delimiter = ',')]
        engines: Vec<String>,
        /// Also run on a real filesystem: `NAME=DIR` (forced replays of every model finding,
        /// and stress runs). Repeatable. `NAME=!reason` lists it as skipped.
        #[arg(long = "real")]
        real: Vec<String>,
        /// Forced replays per model finding on each real target (default 100).
        #[arg(long)]
        replays: Option<u32>,
        /// Stress runs per variant on each real target, with and without chaos (default: 100
        /// with --quick, else 500).
        #[arg(long)]
        stress_runs: Option<u64>,
        /// Also run the database scenarios on a real database: `sqlite`, `postgres=URL`,
        /// `mariadb=URL` (forced replays statement by statement, and stress runs). Repeatable.
        /// `NAME=!reason` lists it as skipped.
        #[arg(long = "db")]
        db: Vec<String>,
        /// Also run every variant that names a real program (`gate "..."`) through the gate, in
        /// a real directory: `NAME=DIR`, or `NAME=DIR,DIR2` for one directory seen through two
        /// clients (NFS mounts), actors alternating between them. Repeatable. `NAME=!reason`
        /// lists it as skipped.
        #[arg(long = "gate")]
        gate: Vec<String>,
        /// Run only shard I of N (`--shard 1/2`): the variants whose position in the suite is
        /// I-1 modulo N, with every engine and backend; `racelab merge` combines the shards.
        #[arg(long, value_parser = racelab::shard::parse)]
        shard: Option<reports::Shard>,
        /// Take the model's findings (the tokens to force on `--real` targets) from this
        /// summary.json instead of exploring (those of `--engines` only, when given): its model
        /// rows are not repeated in the reports.
        /// The NFS part uses it to explore on the host and only force and stress in the guest.
        #[arg(long, value_name = "SUMMARY")]
        findings_from: Option<PathBuf>,
        /// Write only summary.json (no Markdown, HTML or JUnit), for a caller that merges the
        /// rows into its own reports.
        #[arg(long)]
        json_only: bool,
    },
    /// Format scenario files (*.race) in place: indentation by brackets, canonical spaces,
    /// comments and line breaks kept, the tokens (and so replay tokens) unchanged.
    Fmt {
        /// Change nothing: list the files that are not formatted (exit 1 if any).
        #[arg(long)]
        check: bool,
        /// Scenario or library files (*.race).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Write NAME.race: a commented starting scenario (two actors, a lock file, an invariant,
    /// a variant that breaks it and one that holds) that checks and explores as it is.
    New {
        /// The scenario's name; the file is NAME.race (NAME may be a path, `dir/NAME`).
        name: String,
    },
    /// Combine the summary.json files of every shard of a sharded suite into one summary (and
    /// its Markdown, HTML and JUnit XML).
    Merge {
        /// The shards' summary.json files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Where to write the merged reports.
        #[arg(long, default_value = "target/racelab")]
        out: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { BAD_INPUT } else { 0 });
        }
    };
    let out = Output::detect();
    let code = match cli.command {
        Command::Check { files } => check(&files, &out),
        Command::Explore {
            file,
            variant,
            engine,
            backend,
            tick_ms,
            step_timeout,
            schedules,
            seconds,
            seed,
            preemption_bound,
            max_states,
            por,
            workers,
            param_draws,
            shard,
            json,
        } => {
            if let Some(gate) = gate_cmd::GateArgs::parse(&backend, tick_ms, step_timeout) {
                // Real executions cost a fraction of a second each, not microseconds.
                return ExitCode::from(gate_explore_cmd(
                    &file,
                    variant.as_deref(),
                    engine.as_deref().unwrap_or("gate-random"),
                    gate,
                    schedules.unwrap_or(200),
                    seconds,
                    seed,
                    json,
                    &out,
                ));
            }
            if backend != "model" {
                eprint_error(format_args!("explore runs on `--backend model` or `--backend gate[:DIR]`, not `{backend}`; real filesystems and databases replay and stress what the model finds (racelab replay, racelab stress)"));
                return ExitCode::from(BAD_INPUT);
            }
            let engine = engine.unwrap_or_else(|| "shuttle-random".to_string());
            let budget = Budget::new(
                schedules.unwrap_or(20_000),
                Duration::from_secs_f64(seconds.max(0.001)),
            );
            explore_cmd(
                &file,
                variant.as_deref(),
                &engine,
                budget,
                seed,
                (
                    preemption_bound,
                    max_states,
                    shard,
                    param_draws,
                    por,
                    workers,
                ),
                json,
                &out,
            )
        }
        Command::Replay {
            file,
            variant,
            token,
            backend,
            step_timeout,
            actors,
            times,
            on_variant,
        } => {
            if let Some(gate) = gate_cmd::GateArgs::parse(&backend, 1000, step_timeout) {
                return ExitCode::from(gate_replay_cmd(&file, &variant, &token, gate, times, &out));
            }
            replay_cmd(
                &file,
                &variant,
                &token,
                &backend,
                &actors,
                times,
                on_variant.as_deref(),
                &out,
            )
        }
        Command::Stress {
            file,
            variant,
            backend,
            runs,
            chaos,
            actors,
            jobs,
            seed,
            no_nemesis,
            json,
        } => stress_cmd(
            &file,
            &variant,
            &backend,
            runs,
            (chaos, !no_nemesis),
            &actors,
            jobs,
            seed,
            json,
            &out,
        ),
        Command::GateExec { argv } => {
            return ExitCode::from(racelab::gate::launch::gate_exec(&argv).clamp(0, 255) as u8)
        }
        Command::GateBench { file, calls } => return ExitCode::from(gate_bench_cmd(&file, calls)),
        Command::GateLinkLock {
            lockfile,
            counter,
            work_ms,
        } => return ExitCode::from(gate_cmd::linklock_driver(&lockfile, &counter, work_ms)),
        Command::Worker { root, parent } => {
            return ExitCode::from(
                racelab::backend::process::worker_main(&root, parent).clamp(0, 255) as u8,
            )
        }
        Command::LockBench {
            strategy,
            lock,
            iters,
            start_ns,
            counter,
            lifetime_ms,
            timeout_ms,
            min_ms,
        } => lockbench_cmd(
            &strategy,
            lock,
            iters,
            start_ns,
            counter,
            (lifetime_ms, timeout_ms, min_ms),
        ),
        Command::Suite {
            paths,
            out: dir,
            quick,
            engines,
            real,
            db,
            gate,
            replays,
            stress_runs,
            shard,
            findings_from,
            json_only,
        } => suite_cmd(
            &paths,
            &dir,
            quick,
            &engines,
            (&real, &db, &gate),
            (replays, stress_runs, findings_from.as_deref(), json_only),
            shard,
            &out,
        ),
        Command::Merge { files, out: dir } => merge_cmd(&files, &dir),
        Command::New { name } => new_cmd(&name),
        Command::Fmt { check, files } => fmt_cmd::fmt_cmd(&files, check, &out),
        Command::Isolation(args) => racelab::pgspec::cli::main(&args),
    };
    ExitCode::from(code)
}

/// `racelab __lockbench`: one owner of a lock contention run; its report on stdout as JSON.
fn lockbench_cmd(
    strategy: &str,
    lock: PathBuf,
    iters: u64,
    start_ns: u64,
    counter: Option<PathBuf>,
    (lifetime_ms, timeout_ms, min_ms): (Option<u64>, Option<u64>, Option<u64>),
) -> u8 {
    use racelab::lockfile::{worker, MutexLock, Strategy};
    let strategy = match Strategy::parse(strategy) {
        Ok(s) if s.excludes_processes() => s,
        Ok(s) => {
            eprintln!("error: lock strategy `{}` excludes threads of one process only; a lock worker process cannot use it", s.name());
            return BAD_INPUT;
        }
        Err(e) => {
            eprintln!("error: {e}");
            return BAD_INPUT;
        }
    };
    let opts = worker::WorkerOpts {
        strategy,
        lock,
        iters,
        counter,
        lifetime: lifetime_ms.map(Duration::from_millis),
        timeout: timeout_ms.map(Duration::from_millis),
        min_time: min_ms.map(Duration::from_millis),
    };
    match worker::run(&opts, &MutexLock::new(), start_ns) {
        Ok(report) => match serde_json::to_string(&report) {
            Ok(json) => {
                println!("{json}");
                0
            }
            Err(e) => {
                eprintln!("error: encoding the report: {e}");
                3
            }
        },
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

/// How to print: colour and Unicode only on a terminal, and never when NO_COLOR is set.
struct Output {
    color: bool,
    tty: bool,
}

impl Output {
    fn detect() -> Output {
        let tty = std::io::stdout().is_terminal();
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Output {
            color: tty && !no_color,
            tty,
        }
    }
    fn style(&self) -> Style {
        Style {
            color: self.color,
            unicode: self.tty,
        }
    }
}

fn eprint_error(msg: impl std::fmt::Display) {
    eprintln!("error: {msg}");
}

/// Reads and compiles a scenario file and picks one variant, printing what went wrong.
fn load_variant(file: &Path, variant: &str, out: &Output) -> Result<Arc<racelab::ir::Program>, u8> {
    load_variant_with(file, variant, &Default::default(), out)
}

/// [`load_variant`] with values for the scenario's parameters (a replay token's).
fn load_variant_with(
    file: &Path,
    variant: &str,
    params: &std::collections::BTreeMap<String, i64>,
    out: &Output,
) -> Result<Arc<racelab::ir::Program>, u8> {
    let sc = load_with(file, params, out)?;
    pick_variants(&sc, Some(variant), file).map(|p| Arc::new(p[0].clone()))
}

/// Reads and compiles a scenario file, printing diagnostics on failure.
fn load(path: &Path, out: &Output) -> Result<Scenario, u8> {
    load_with(path, &Default::default(), out)
}

/// [`load`] with values for the scenario's parameters.
fn load_with(
    path: &Path,
    params: &std::collections::BTreeMap<String, i64>,
    out: &Output,
) -> Result<Scenario, u8> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            eprint_error(format_args!("cannot read {}: {e}", path.display()));
            return Err(BAD_INPUT);
        }
    };
    let name = path.display().to_string();
    let compiled =
        lang::decode_source(&name, bytes).and_then(|src| lang::compile_with(&name, &src, params));
    compiled.map_err(|errors| {
        eprint_scenario_errors(&errors, out);
        BAD_INPUT
    })
}

/// Prints a file's diagnostics with miette: file:line:col, the line, a caret, and help.
fn eprint_scenario_errors(errors: &lang::ScenarioErrors, out: &Output) {
    let theme = if out.color {
        miette::GraphicalTheme::unicode()
    } else {
        miette::GraphicalTheme::unicode_nocolor()
    };
    let handler = miette::GraphicalReportHandler::new_themed(theme).with_width(100);
    let mut text = String::new();
    let _ = handler.render_report(&mut text, errors);
    eprint!("{text}");
}

fn check(files: &[PathBuf], out: &Output) -> u8 {
    let mut code = 0;
    for f in files {
        if f.extension().is_some_and(|x| x == "spec") {
            match check_spec(f, out) {
                Ok(line) => println!("{line}"),
                Err(c) => code = c,
            }
            continue;
        }
        match load(f, out) {
            Ok(sc) => println!(
                "{}: ok ({} variant{}: {})",
                f.display(),
                sc.variants.len(),
                if sc.variants.len() == 1 { "" } else { "s" },
                sc.variant_names().join(", ")
            ),
            Err(c) => code = c,
        }
    }
    code
}

/// `racelab check FILE.spec`: a PostgreSQL isolation spec, with the same diagnostics.
fn check_spec(path: &Path, out: &Output) -> Result<String, u8> {
    match racelab::pgspec::load(path) {
        Ok(spec) => Ok(format!(
            "{}: ok (isolation spec: {} sessions, {} permutations)",
            path.display(),
            spec.sessions.len(),
            spec.permutation_count()
        )),
        Err(racelab::pgspec::LoadError::Syntax(errors)) => {
            eprint_scenario_errors(&errors, out);
            Err(BAD_INPUT)
        }
        Err(e) => {
            eprint_error(e);
            Err(BAD_INPUT)
        }
    }
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn parse_engines(spec: &[String]) -> Result<Vec<EngineKind>, String> {
    if spec.is_empty() || spec.iter().any(|s| s == "all") {
        return Ok(EngineKind::ALL.to_vec());
    }
    spec.iter()
        .map(|s| {
            EngineKind::from_name(s).ok_or_else(|| {
                let names: Vec<_> = EngineKind::ALL.iter().map(|e| e.name()).collect();
                format!(
                    "unknown engine `{s}`; choose from {} or all",
                    names.join(", ")
                )
            })
        })
        .collect()
}

fn pick_variants<'s>(
    sc: &'s Scenario,
    variant: Option<&str>,
    file: &Path,
) -> Result<Vec<&'s racelab::ir::Program>, u8> {
    match variant {
        None => Ok(sc.variants.iter().collect()),
        Some(v) => match sc.variant(v) {
            Some(p) => Ok(vec![p]),
            None => {
                eprint_error(format_args!(
                    "{} has no variant `{v}`; its variants are: {}",
                    file.display(),
                    sc.variant_names().join(", ")
                ));
                Err(BAD_INPUT)
            }
        },
    }
}

#[allow(clippy::too_many_arguments)]
fn explore_cmd(
    file: &Path,
    variant: Option<&str>,
    engine: &str,
    budget: Budget,
    seed: u64,
    (bound, max_states, shard, param_draws, por, workers): (
        usize,
        u64,
        Option<reports::Shard>,
        u32,
        bool,
        Option<usize>,
    ),
    json: bool,
    out: &Output,
) -> u8 {
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
    let mut progs = match pick_variants(&sc, variant, file) {
        Ok(p) => p,
        Err(c) => return c,
    };
    if let Some(s) = shard {
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
                    .seed(seed)
                    .preemption_bound(bound)
                    .max_states(max_states)
                    .por(por);
                match workers {
                    Some(n) => cfg.workers(n),
                    None => cfg,
                }
            })
            .collect();
        if !prog.params.is_empty() {
            // Parameters: each engine explores draws of their values; a failure is shrunk.
            let src = std::fs::read_to_string(file).unwrap_or_default();
            for cfg in &configs {
                match racelab::params::search(
                    &file.display().to_string(),
                    &src,
                    &prog.variant,
                    &prog.params,
                    cfg,
                    param_draws,
                    seed,
                ) {
                    Ok(s) => {
                        let show = |v: &std::collections::BTreeMap<String, i64>| {
                            v.iter()
                                .map(|(n, x)| format!("{n} = {x}"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        };
                        let drawn: Vec<String> =
                            s.draws.iter().map(|d| format!("({})", show(d))).collect();
                        // Beside the JSON on stdout, the parameter search goes to stderr.
                        let say = |line: String| {
                            if json {
                                eprintln!("{line}")
                            } else {
                                println!("{line}")
                            }
                        };
                        match &s.failing_before_shrink {
                            Some(before) => say(format!(
                                "{}/{} [{}]: parameters drawn {}; the failure at ({}) shrinks to ({}) in {} steps",
                                stem(file), prog.variant, cfg.kind.name(), drawn.join(" "), show(before), show(&s.result.values), s.shrink_steps
                            )),
                            None => say(format!("{}/{} [{}]: parameters drawn {}; none broke anything", stem(file), prog.variant, cfg.kind.name(), drawn.join(" "))),
                        }
                        rows.push(suite::result_row(
                            &stem(file),
                            &s.result.prog,
                            cfg,
                            s.result.outcome,
                        ));
                    }
                    Err(e) => {
                        eprint_error(e);
                        return BAD_INPUT;
                    }
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
    print_rows(&rows, file, json, "schedule", "", out.style());
    suite::exit_code(&rows) as u8
}

/// Prints exploration rows: as JSON, or each row's result line, its findings with their replay
/// commands (`replay_flags` added, such as `--backend gate`), and the lead finding's step table.
fn print_rows(
    rows: &[reports::RunResult],
    file: &Path,
    json: bool,
    unit: &str,
    replay_flags: &str,
    style: Style,
) {
    if json {
        println!("{}", serde_json::to_string_pretty(rows).unwrap_or_default());
        return;
    }
    for r in rows {
        println!("{}", render_result_line(r));
        if let Some(reason) = &r.reason {
            println!("  {reason}");
        }
        if let (Some(c), Some(covers)) = (r.coverage, &r.covers) {
            println!("  coverage: {} ({covers})", c.as_str());
        }
        for f in &r.findings {
            println!(
                "  {} broke after {} {unit}(s); shrunk from {} to {} context switches; replay: racelab replay {} --variant {} {replay_flags}{}",
                f.invariant,
                f.after,
                f.switches,
                f.shrunk_switches,
                file.display(),
                r.variant,
                f.replay
            );
            if f.original != f.replay && !f.original.is_empty() {
                println!("    as found (before shrinking): {}", f.original);
            }
        }
        if let Some(t) = &r.trace {
            println!();
            print!("{}", render_trace(t, style));
            println!();
        }
    }
    // Every engine's row of a variant states the same assumptions: print them once.
    let mut shown: Vec<&str> = Vec::new();
    for r in rows.iter().filter(|r| !r.assumptions.is_empty()) {
        if !shown.contains(&r.variant.as_str()) {
            shown.push(&r.variant);
            println!("model assumptions ({}):", r.variant);
            for a in &r.assumptions {
                println!("  - {a}");
            }
        }
    }
}

/// `racelab __gate-bench FILE CALLS`: a program whose every call is a gated step.
fn gate_bench_cmd(file: &Path, calls: u64) -> u8 {
    if let Err(e) = std::fs::write(file, b"bench") {
        eprint_error(format_args!("{}: {e}", file.display()));
        return 1;
    }
    let now = nix::sys::time::TimeSpec::new(1_100_000_000, 0);
    for i in 0..calls {
        let r = if i % 2 == 0 {
            nix::sys::stat::stat(file).map(|_| ())
        } else {
            nix::sys::stat::utimensat(
                nix::fcntl::AT_FDCWD,
                file,
                &now,
                &now,
                nix::sys::stat::UtimensatFlags::FollowSymlink,
            )
        };
        if let Err(e) = r {
            eprint_error(format_args!("{}: {e}", file.display()));
            return 1;
        }
    }
    0
}

/// `racelab explore --backend gate[:DIR]`.
#[allow(clippy::too_many_arguments)]
fn gate_explore_cmd(
    file: &Path,
    variant: Option<&str>,
    engine: &str,
    gate: Result<gate_cmd::GateArgs, String>,
    executions: u64,
    seconds: f64,
    seed: u64,
    json: bool,
    out: &Output,
) -> u8 {
    let gate = match gate {
        Ok(g) => g,
        Err(e) => {
            eprint_error(e);
            return BAD_INPUT;
        }
    };
    let sc = match load(file, out) {
        Ok(sc) => sc,
        Err(c) => return c,
    };
    let progs = match pick_variants(&sc, variant, file) {
        Ok(p) => p,
        Err(c) => return c,
    };
    gate_cmd::explore(
        file,
        &stem(file),
        &progs,
        engine,
        &gate,
        executions,
        seconds,
        seed,
        json,
        out.style(),
        out.tty,
    )
}

/// `racelab replay --backend gate[:DIR] TOKEN`.
fn gate_replay_cmd(
    file: &Path,
    variant: &str,
    token: &str,
    gate: Result<gate_cmd::GateArgs, String>,
    times: u32,
    out: &Output,
) -> u8 {
    let gate = match gate {
        Ok(g) => g,
        Err(e) => {
            eprint_error(e);
            return BAD_INPUT;
        }
    };
    let sched = match Schedule::decode(token) {
        Ok(s) => s,
        Err(e) => {
            eprint_error(e);
            return BAD_INPUT;
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
    gate_cmd::replay_token(&prog, &sched, file, &gate, times, out.style())
}

#[allow(clippy::too_many_arguments)]
fn replay_cmd(
    file: &Path,
    variant: &str,
    token: &str,
    backend: &str,
    actors: &str,
    times: u32,
    on_variant: Option<&str>,
    out: &Output,
) -> u8 {
    // `db:sqlite|postgres[=URL]|mariadb[=URL]`: the same token, one statement per step on real connections.
    let db = match backend.strip_prefix("db:").map(DbSpec::parse) {
        Some(Ok(d)) => Some(d),
        Some(Err(e)) => {
            eprint_error(e);
            return BAD_INPUT;
        }
        None => None,
    };
    let backend = if db.is_some() { "model" } else { backend };
    let backend = match BackendSpec::parse(backend) {
        Ok(b) => b,
        Err(e) => {
            eprint_error(e);
            return BAD_INPUT;
        }
    };
    let mode = match ActorMode::parse(actors) {
        Ok(m) => m,
        Err(e) => {
            eprint_error(e);
            return BAD_INPUT;
        }
    };
    // A token recorded with parameter values replays on the scenario compiled with them.
    let params = Schedule::decode(token)
        .map(|s| s.param_values())
        .unwrap_or_default();
    let prog = match load_variant_with(file, variant, &params, out) {
        Ok(p) => p,
        Err(c) => return c,
    };
    let mut sched = match Schedule::decode(token).and_then(|s| s.check_fits(&prog).map(|()| s)) {
        Ok(s) => s,
        Err(e) => {
            eprint_error(e);
            return BAD_INPUT;
        }
    };
    // The same steps, on another variant: the token is checked against the variant it was
    // recorded for, then re-addressed.
    let prog = match on_variant {
        None => prog,
        Some(w) => match load_variant(file, w, out) {
            Ok(p) => {
                sched.variant = p.variant.clone();
                sched.fingerprint = p.fingerprint;
                if p.split_calls && !prog.split_calls {
                    sched = racelab::replay::split_halves(&p, &sched);
                }
                p
            }
            Err(c) => return c,
        },
    };
    if let Some(db) = &db {
        return db_forced_replay_cmd(&prog, &sched, db, times, out);
    }
    if let BackendSpec::Fs(root) = backend {
        return forced_replay_cmd(&prog, &sched, &root, mode, times, out);
    }
    let mut first: Option<replay::Replayed> = None;
    for i in 0..times.max(1) {
        match replay::replay(&prog, &sched) {
            Ok(r) => {
                if let Some(f) = &first {
                    if f.broken != r.broken {
                        eprint_error(format_args!("replay {} gave a different outcome than replay 1: the model is not deterministic (a racelab bug)", i + 1));
                        return 1;
                    }
                } else {
                    first = Some(r);
                }
            }
            Err(e @ TokenError::Diverged { .. }) | Err(e) => {
                eprint_error(e);
                return BAD_INPUT;
            }
        }
    }
    let Some(r) = first else { return 1 };
    print!("{}", render_trace(&r.trace, out.style()));
    let reproduced = r.reproduced(&sched);
    let what = sched.target.as_deref().unwrap_or("a violation");
    if times > 1 {
        println!("\n{times} replays, identical outcome every time");
    }
    if reproduced {
        println!("\nreproduced: {what}");
        0
    } else {
        println!("\nnot reproduced: {what} did not break");
        1
    }
}

/// Forces the schedule on real actors `times` times; every run must reproduce, none diverge.
fn forced_replay_cmd(
    prog: &Arc<racelab::ir::Program>,
    sched: &Schedule,
    roots: &[PathBuf],
    mode: ActorMode,
    times: u32,
    out: &Output,
) -> u8 {
    racelab::backend::cancel::install();
    let what = sched.target.as_deref().unwrap_or("a violation");
    let mut reproduced = 0;
    let _reuse = racelab::backend::process::Reuse::here();
    for i in 0..times.max(1) {
        let r = match forced_replay(prog, sched, roots, mode) {
            Ok(r) => r,
            Err(ForcedError::Token(e)) => {
                eprint_error(e);
                return BAD_INPUT;
            }
            Err(ForcedError::Infrastructure(why)) => {
                eprint_error(format_args!(
                    "the real backend failed (run {}): {why}",
                    i + 1
                ));
                return INFRASTRUCTURE;
            }
            Err(e @ ForcedError::Interrupted(sig)) => {
                eprint_error(e);
                return (128 + sig).clamp(0, 255) as u8;
            }
        };
        if i == 0 {
            print!("{}", render_trace(&r.trace, out.style()));
            let dirs: Vec<String> = roots.iter().map(|r| r.display().to_string()).collect();
            println!(
                "\nbackend: {} ({}, mounted at {}, options {}), actors as {}",
                dirs.join(", "),
                r.env.fs_type,
                r.env.mount_point,
                r.env.options,
                mode.name()
            );
        }
        if let Some(d) = &r.divergence {
            println!(
                "\nrun {}: reality diverged from the model at step {} ({}: {}): the model says {}, the real system said {}",
                i + 1,
                d.step,
                d.actor,
                d.operation,
                d.model,
                d.real
            );
            return 1;
        }
        if r.reproduced(sched) {
            reproduced += 1;
        } else {
            println!("\nrun {}: {what} did not break on the real system", i + 1);
        }
    }
    let times = times.max(1);
    println!("\nreproduced {what} on the real system in {reproduced} of {times} forced replays, no divergence from the model");
    if reproduced == times {
        0
    } else {
        1
    }
}

#[allow(clippy::too_many_arguments)]
fn stress_cmd(
    file: &Path,
    variant: &str,
    backend: &str,
    runs: u64,
    (chaos, nemesis): (bool, bool),
    actors: &str,
    jobs: Option<usize>,
    seed: u64,
    json: bool,
    out: &Output,
) -> u8 {
    if let Some(db) = backend.strip_prefix("db:") {
        return db_stress_cmd(file, variant, db, runs, jobs, seed, json, out);
    }
    let root = match BackendSpec::parse(backend) {
        Ok(BackendSpec::Fs(root)) => root,
        Ok(BackendSpec::Model) => {
            eprint_error("stress runs real actors: pass `--backend fs:DIR` (the model is explored, not stressed: use `racelab explore`)");
            return BAD_INPUT;
        }
        Err(e) => {
            eprint_error(e);
            return BAD_INPUT;
        }
    };
    let mode = match ActorMode::parse(actors) {
        Ok(m) => m,
        Err(e) => {
            eprint_error(e);
            return BAD_INPUT;
        }
    };
    if runs == 0 {
        eprint_error("--runs must be at least 1: a rate from zero runs says nothing");
        return BAD_INPUT;
    }
    let prog = match load_variant(file, variant, out) {
        Ok(p) => p,
        Err(c) => return c,
    };
    racelab::backend::cancel::install();
    let jobs = jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let nemesis = nemesis
        && prog
            .faults
            .iter()
            .any(|f| racelab::backend::nemesis::injectable(&f.kind));
    let cfg = racelab::backend::stress::StressConfig {
        runs,
        chaos,
        mode,
        jobs,
        seed,
        nemesis,
    };
    let bar = progress_bar(
        runs,
        out,
        &format!(
            "stress {} {}",
            prog.variant,
            if chaos { "(chaos)" } else { "" }
        ),
    );
    let result = racelab::backend::stress::stress(&prog, &root, &cfg, &|_| bar.inc(1));
    bar.finish_and_clear();
    let r = match result {
        Ok(r) => r,
        Err(why) => {
            eprint_error(format_args!("the real backend failed: {why}"));
            return racelab::backend::cancel::requested()
                .map_or(INFRASTRUCTURE, |sig| (128 + sig).clamp(0, 255) as u8);
        }
    };
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let row = racelab::suite::stress_row(&stem, &prog, &r, &r.env.fs_type, &root[0]);
    if json {
        println!("{}", serde_json::to_string_pretty(&row).unwrap_or_default());
    } else {
        println!(
            "{}/{} on {} ({}, {}), {} actors{}: {} runs in {:.1}s ({:.1} runs/s)",
            stem,
            prog.variant,
            root.iter()
                .map(|r| r.display().to_string())
                .collect::<Vec<_>>()
                .join(","),
            r.env.fs_type,
            r.env.options,
            mode.name(),
            if chaos { ", chaos" } else { "" },
            r.runs,
            r.seconds,
            r.runs_per_second()
        );
        for rate in &r.rates {
            println!(
                "  {:<20} {:>5} / {:<5} = {:>6.2}%  (95% CI {:.2}%..{:.2}%)",
                rate.invariant,
                rate.hits,
                rate.runs,
                100.0 * rate.hits as f64 / rate.runs.max(1) as f64,
                100.0 * rate.low,
                100.0 * rate.high
            );
        }
        if let Some(faults) = &row.faults {
            println!("  faults: {faults}");
        }
        if let Some((i, sched, trace)) = &r.first_failure {
            println!(
                "\nfirst failing run (#{}): schedule {}",
                i + 1,
                sched.encode()
            );
            print!("{}", render_trace(trace, out.style()));
        }
    }
    if row.met {
        0
    } else {
        1
    }
}

/// A progress bar on a terminal; nothing (hidden) otherwise.
fn progress_bar(len: u64, out: &Output, what: &str) -> indicatif::ProgressBar {
    if !out.tty {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {per_sec} eta {eta}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_string());
    bar
}

fn scenario_files(paths: &[PathBuf]) -> Vec<PathBuf> {
    let roots = if paths.is_empty() {
        vec![PathBuf::from("scenarios")]
    } else {
        paths.to_vec()
    };
    let mut files = Vec::new();
    for p in roots {
        if p.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(&p)
                .map(|rd| {
                    rd.filter_map(Result::ok)
                        .map(|e| e.path())
                        .filter(|f| f.extension().is_some_and(|x| x == "race"))
                        .collect()
                })
                .unwrap_or_default();
            found.sort();
            files.extend(found);
        } else {
            files.push(p);
        }
    }
    files
}

#[allow(clippy::too_many_arguments)]
fn suite_cmd(
    paths: &[PathBuf],
    dir: &Path,
    quick: bool,
    engines: &[String],
    (real, db, gate): (&[String], &[String], &[String]),
    counts: (Option<u32>, Option<u64>, Option<&Path>, bool),
    shard: Option<reports::Shard>,
    out: &Output,
) -> u8 {
    let mut gate_targets = Vec::new();
    for g in gate {
        match g.split_once('=') {
            Some((name, reason)) if reason.starts_with('!') => {
                gate_targets.push(racelab::gate::report::GateTarget {
                    name: name.to_string(),
                    dir: Err(reason[1..].to_string()),
                    clients: Vec::new(),
                })
            }
            Some((name, d)) if !name.is_empty() && d.split(',').all(|d| Path::new(d).is_dir()) => {
                let mut dirs = d.split(',').map(PathBuf::from);
                gate_targets.push(racelab::gate::report::GateTarget {
                    name: name.to_string(),
                    dir: Ok(dirs.next().unwrap_or_default()),
                    clients: dirs.collect(),
                })
            }
            _ => {
                eprint_error(format_args!(
                    "--gate {g}: expected NAME=DIR (or NAME=DIR,DIR2: one directory through two clients) with existing directories, or NAME=!reason"
                ));
                return BAD_INPUT;
            }
        }
    }
    let mut db_targets = Vec::new();
    for d in db {
        let target = match d.split_once('=') {
            Some((name, reason)) if reason.starts_with('!') => suite::RealDbTarget {
                name: name.to_string(),
                spec: Err(reason[1..].to_string()),
            },
            _ => match DbSpec::parse(d) {
                Ok(spec) => suite::RealDbTarget {
                    name: spec.name().trim_start_matches("db:").to_string(),
                    spec: Ok(spec),
                },
                Err(e) => {
                    eprint_error(format_args!("--db {d}: {e}"));
                    return BAD_INPUT;
                }
            },
        };
        db_targets.push(target);
    }
    if !db_targets.is_empty() {
        racelab::backend::cancel::install();
    }
    let engine_names = engines;
    let engines = match parse_engines(engines) {
        Ok(e) => e,
        Err(msg) => {
            eprint_error(msg);
            return BAD_INPUT;
        }
    };
    let mut targets = Vec::new();
    for r in real {
        match r.split_once('=') {
            Some((name, reason)) if reason.starts_with('!') => targets.push(suite::RealFsTarget {
                name: name.to_string(),
                dir: Err(reason[1..].to_string()),
            }),
            Some((name, d)) if !name.is_empty() && d.split(',').all(|p| Path::new(p).is_dir()) => {
                targets.push(suite::RealFsTarget {
                    name: name.to_string(),
                    dir: Ok(d.split(',').map(PathBuf::from).collect()),
                })
            }
            _ => {
                eprint_error(format_args!(
                    "--real {r}: expected NAME=DIR with an existing directory (or NAME=!reason)"
                ));
                return BAD_INPUT;
            }
        }
    }
    if !targets.is_empty() {
        racelab::backend::cancel::install();
    }
    let files = scenario_files(paths);
    if files.is_empty() {
        eprint_error("no scenario files found; pass *.race files or directories holding them");
        return BAD_INPUT;
    }
    let mut scenarios = Vec::new();
    let mut bad = false;
    for f in &files {
        match load(f, out) {
            Ok(sc) => {
                for p in &sc.variants {
                    if p.expected.is_none() {
                        eprint_error(format_args!("{}: variant `{}` states no expectation; explore it and write `expect ...`", f.display(), p.variant));
                        bad = true;
                    }
                }
                scenarios.push((stem(f), sc));
            }
            Err(_) => bad = true,
        }
    }
    if bad {
        return BAD_INPUT;
    }
    if let Some(s) = shard {
        scenarios = racelab::shard::select(scenarios, s);
        println!(
            "shard {}/{}: {} variants",
            s.index,
            s.count,
            scenarios
                .iter()
                .map(|(_, sc)| sc.variants.len())
                .sum::<usize>()
        );
    }
    let cfg = if quick {
        suite::SuiteConfig::quick()
    } else {
        suite::SuiteConfig::full()
    };
    let borrowed_findings = counts.2;
    // Another run's model rows (`--findings-from`), read before anything starts: a bad file is
    // bad input.
    let borrowed_rows = match borrowed_findings {
        Some(from) => match suite::model_rows_from(from, &scenarios, engine_names) {
            Ok(rows) => Some(rows),
            Err(e) => {
                eprint_error(format_args!("--findings-from {}: {e}", from.display()));
                return BAD_INPUT;
            }
        },
        None => None,
    };
    let progress = indicatif::MultiProgress::new();
    if !out.tty {
        progress.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let spinner = progress.add(indicatif::ProgressBar::new_spinner());
    spinner.enable_steady_tick(Duration::from_millis(200));
    let say = |what: &str, r: &reports::RunResult| {
        spinner.set_message(format!(
            "{what}: {}/{}/{} on {}",
            r.scenario, r.variant, r.engine, r.backend
        ))
    };
    let (mut results, ((fs_rows, gate_rows), db_rows)) = std::thread::scope(|outer| {
        // Gated runs explore real programs on their own (they need no model finding), and spend
        // their time in ptrace stops and the programs' start-up: they start now, beside the
        // model engines and then the filesystem and database rows, instead of after the model
        // (the tracer is this thread throughout). In CI they took 6 of the main suite's 10
        // minutes in this one thread, after the model's 4.
        let gate = outer.spawn(|| {
            if gate_targets.is_empty() || racelab::backend::cancel::requested().is_some() {
                return Vec::new();
            }
            racelab::backend::cancel::install();
            // Each execution starts real processes (a fraction of a second): budgets in
            // executions. A variant expected to hold can only end "not refuted" however long it
            // runs; quick mode gives it fewer executions than one expected to break, which needs
            // them to find its race (flufl-lock's crash: 66 here).
            let (budget, holds_budget) = if quick {
                (
                    racelab::gate::explore::GateBudget {
                        executions: 150,
                        seconds: 75.0,
                    },
                    racelab::gate::explore::GateBudget {
                        executions: 40,
                        seconds: 30.0,
                    },
                )
            } else {
                let full = racelab::gate::explore::GateBudget {
                    executions: 600,
                    seconds: 300.0,
                };
                (full, full)
            };
            let with_files: Vec<(String, PathBuf, Scenario)> = scenarios
                .iter()
                .filter_map(|(stem, sc)| {
                    files
                        .iter()
                        .find(|f| self::stem(f) == *stem)
                        .map(|f| (stem.clone(), f.clone(), sc.clone()))
                })
                .collect();
            racelab::gate::report::suite_rows(
                &with_files,
                &gate_targets,
                (budget, holds_budget),
                0x5eed,
                &|r| say("gate", r),
            )
        });
        let results = match borrowed_rows {
            Some(rows) => rows,
            None => {
                let jobs = suite::jobs(&scenarios, &cfg, &engines);
                let bar = progress.add(indicatif::ProgressBar::new(jobs.len() as u64));
                bar.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{spinner} exploring [{bar:30}] {pos}/{len} {msg}",
                    )
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
                );
                bar.enable_steady_tick(Duration::from_millis(200));
                let rows = suite::run(&jobs, &|r| {
                    bar.set_message(format!("{}/{}/{}", r.scenario, r.variant, r.engine));
                    bar.inc(1);
                });
                bar.finish_and_clear();
                if let Err(e) = suite::write_model_rows(&rows, dir) {
                    eprintln!(
                        "warning: cannot write {}: {e}",
                        dir.join(suite::MODEL_ROWS_FILE).display()
                    );
                }
                rows
            }
        };
        // The real runs: the database servers at the same time as the filesystems. Database
        // rows spend their time waiting for a server (the blocked-statement polls), the others
        // on processes and disks, so the two overlap on two cores instead of queueing.
        let model_rows = &results;
        let (fs_rows, db_rows) = std::thread::scope(|s| {
            let db = s.spawn(|| {
                if db_targets.is_empty() {
                    return Vec::new();
                }
                // A forced replay on a server costs a CREATE DATABASE (~0.1-0.3 s): 5 per schedule.
                let rc = if quick {
                    suite::RealConfig {
                        replays: 5,
                        stress_runs: 100,
                        jobs: 2,
                    }
                } else {
                    suite::RealConfig {
                        replays: 20,
                        stress_runs: 500,
                        jobs: 2,
                    }
                };
                suite::db_rows(&scenarios, model_rows, &db_targets, &rc, &|r| say("db", r))
            });
            let mut fs_rows = Vec::new();
            if !targets.is_empty() {
                // Forced replays are cheap (tens of ms each): 20 even in quick mode, so "reproduces
                // every time" is measured (Wilson lower bound 0.84), not assumed; 100 in full runs.
                // Quick mode's 50 free runs per variant and filesystem keep CI's real part to a few
                // minutes on six filesystems (measured: 100 replays and 100 runs took 9 minutes).
                let mut rc = if quick {
                    suite::RealConfig {
                        replays: 20,
                        stress_runs: 50,
                        jobs: 2,
                    }
                } else {
                    suite::RealConfig {
                        replays: 100,
                        stress_runs: 500,
                        jobs: 2,
                    }
                };
                rc.replays = counts.0.unwrap_or(rc.replays).max(1);
                rc.stress_runs = counts.1.unwrap_or(rc.stress_runs).max(1);
                fs_rows =
                    suite::real_rows(&scenarios, model_rows, &targets, &rc, &|r| say("real", r));
            }
            (fs_rows, db.join().unwrap_or_default())
        });
        (
            results,
            ((fs_rows, gate.join().unwrap_or_default()), db_rows),
        )
    });
    spinner.finish_and_clear();
    if borrowed_findings.is_some() {
        // Another run's model rows: they chose the tokens, they are that run's to report.
        results.clear();
    }
    // Filesystem rows first, then databases, then the gate: the order the reports always had.
    results.extend(fs_rows);
    results.extend(db_rows);
    results.extend(gate_rows);
    if let Some(sig) = racelab::backend::cancel::requested() {
        eprint_error(format_args!(
            "interrupted by signal {sig}; real runs and gated processes were cleaned up"
        ));
        return (128 + sig).clamp(0, 255) as u8;
    }
    // Printed after the portfolio is judged: a row's verdict can depend on other engines' findings.
    for r in &results {
        println!("{}", render_result_line(r));
        if let Some(reason) = &r.reason {
            println!("  {reason}");
        }
    }
    let summary = reports::Summary {
        ok: suite::exit_code(&results) == 0,
        results,
        shard,
    };
    let written = if counts.3 {
        reports::write_json(&summary, dir)
    } else {
        reports::write_all(&summary, dir)
    };
    match written {
        Ok(paths) => {
            println!("\n{}", summary.tally().describe());
            for p in paths {
                println!("wrote {}", p.display());
            }
        }
        Err(e) => {
            eprint_error(format_args!(
                "cannot write reports to {}: {e}",
                dir.display()
            ));
            return 3;
        }
    }
    suite::exit_code(&summary.results) as u8
}

/// Forces the schedule on a real database `times` times, one statement per step, each actor on
/// its own connection; every run must reproduce, none diverge.
fn db_forced_replay_cmd(
    prog: &Arc<racelab::ir::Program>,
    sched: &Schedule,
    db: &DbSpec,
    times: u32,
    out: &Output,
) -> u8 {
    racelab::backend::cancel::install();
    let what = sched.target.as_deref().unwrap_or("a violation");
    let mut reproduced = 0;
    let mut replayer = racelab::backend::db::forced::DbReplayer::new(db);
    for i in 0..times.max(1) {
        let r = match replayer.replay(prog, sched) {
            Ok(r) => r,
            Err(ForcedError::Token(e)) => {
                eprint_error(e);
                return BAD_INPUT;
            }
            Err(ForcedError::Infrastructure(why)) => {
                eprint_error(format_args!(
                    "the real database failed (run {}): {why}",
                    i + 1
                ));
                return INFRASTRUCTURE;
            }
            Err(ForcedError::Interrupted(sig)) => return (128 + sig).clamp(0, 255) as u8,
        };
        if i == 0 {
            print!("{}", render_trace(&r.trace, out.style()));
            println!(
                "\nbackend: {} ({}, isolation {}), one connection per actor",
                r.info.backend, r.info.server_version, r.info.isolation_level
            );
        }
        if let Some(d) = &r.divergence {
            println!("\nrun {}: reality diverged from the model at step {} ({}: {}): the model says {}, the real database said {}", i + 1, d.step, d.actor, d.operation, d.model, d.real);
            return 1;
        }
        if r.reproduced(sched) {
            reproduced += 1;
        } else {
            println!("\nrun {}: {what} did not break on the real database", i + 1);
        }
    }
    let times = times.max(1);
    println!("\nreproduced {what} on the real database in {reproduced} of {times} forced replays, no divergence from the model");
    if reproduced == times {
        0
    } else {
        1
    }
}

/// Stress runs on a real database: free-running actors, each on its own connection.
#[allow(clippy::too_many_arguments)]
fn db_stress_cmd(
    file: &Path,
    variant: &str,
    db: &str,
    runs: u64,
    jobs: Option<usize>,
    seed: u64,
    json: bool,
    out: &Output,
) -> u8 {
    let db = match DbSpec::parse(db) {
        Ok(d) => d,
        Err(e) => {
            eprint_error(e);
            return BAD_INPUT;
        }
    };
    if runs == 0 {
        eprint_error("--runs must be at least 1: a rate from zero runs says nothing");
        return BAD_INPUT;
    }
    let prog = match load_variant(file, variant, out) {
        Ok(p) => p,
        Err(c) => return c,
    };
    racelab::backend::cancel::install();
    let jobs = jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let r = match racelab::backend::db::stress::stress(&prog, &db, runs, jobs, seed) {
        Ok(r) => r,
        Err(why) => {
            eprint_error(format_args!("the real database failed: {why}"));
            return racelab::backend::cancel::requested()
                .map_or(INFRASTRUCTURE, |sig| (128 + sig).clamp(0, 255) as u8);
        }
    };
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let row = racelab::suite::db_stress_row(&stem, &prog, &r);
    if json {
        println!("{}", serde_json::to_string_pretty(&row).unwrap_or_default());
    } else {
        println!(
            "{}/{} on {} ({}, isolation {}), {} actors on their own connections: {} runs in {:.1}s ({:.1} runs/s)",
            stem,
            prog.variant,
            r.info.backend,
            r.info.server_version,
            r.info.isolation_level,
            prog.actors.len(),
            r.runs,
            r.seconds,
            r.runs as f64 / r.seconds.max(1e-9)
        );
        for rate in &r.rates {
            println!(
                "  {:<20} {:>5} / {:<5} = {:>6.2}%  (95% CI {:.2}%..{:.2}%)",
                rate.invariant,
                rate.hits,
                rate.runs,
                100.0 * rate.hits as f64 / rate.runs.max(1) as f64,
                100.0 * rate.low,
                100.0 * rate.high
            );
        }
        if let Some(faults) = &row.faults {
            println!("  faults: {faults}");
        }
        if let Some((i, sched, trace)) = &r.first_failure {
            println!(
                "\nfirst failing run (#{}): schedule {}",
                i + 1,
                sched.encode()
            );
            print!("{}", render_trace(trace, out.style()));
        }
    }
    if row.met {
        0
    } else {
        1
    }
}

/// `racelab new NAME`: writes NAME.race, never over an existing file.
fn new_cmd(name: &str) -> u8 {
    let path = PathBuf::from(if name.ends_with(".race") {
        name.to_string()
    } else {
        format!("{name}.race")
    });
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    if let Err(e) = racelab::starter::check_name(&stem) {
        eprint_error(e);
        return BAD_INPUT;
    }
    // `create_new` refuses an existing file in the same call that creates it: no window in
    // which another file could appear and be overwritten.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path);
    let written = file.and_then(|mut f| {
        use std::io::Write as _;
        f.write_all(racelab::starter::scenario(&stem).as_bytes())
    });
    match written {
        Ok(()) => {
            let p = path.display();
            println!("wrote {p}: a lock taken by checking, then creating (variant `racy` breaks `exclusive`, `fixed` holds)");
            println!("next: racelab check {p} && racelab explore {p}");
            0
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            eprint_error(format_args!(
                "{} already exists; racelab new does not overwrite a file: pick another name or remove it",
                path.display()
            ));
            BAD_INPUT
        }
        Err(e) => {
            eprint_error(format_args!("cannot write {}: {e}", path.display()));
            BAD_INPUT
        }
    }
}

/// `racelab merge`: the shards' summaries, checked to be one complete split, as one summary.
fn merge_cmd(files: &[PathBuf], dir: &Path) -> u8 {
    let mut parts = Vec::new();
    for f in files {
        let text = match std::fs::read_to_string(f) {
            Ok(t) => t,
            Err(e) => {
                eprint_error(format_args!("cannot read {}: {e}", f.display()));
                return BAD_INPUT;
            }
        };
        match serde_json::from_str::<reports::Summary>(&text) {
            Ok(s) => parts.push((f.display().to_string(), s)),
            Err(e) => {
                eprint_error(format_args!(
                    "{} is not a racelab summary.json: {e}",
                    f.display()
                ));
                return BAD_INPUT;
            }
        }
    }
    let summary = match racelab::shard::merge(parts) {
        Ok(s) => s,
        Err(e) => {
            eprint_error(e);
            return BAD_INPUT;
        }
    };
    match reports::write_all(&summary, dir) {
        Ok(paths) => {
            println!(
                "merged {} shards: {}",
                files.len(),
                summary.tally().describe()
            );
            for p in paths {
                println!("wrote {}", p.display());
            }
            suite::exit_code(&summary.results) as u8
        }
        Err(e) => {
            eprint_error(format_args!(
                "cannot write reports to {}: {e}",
                dir.display()
            ));
            3
        }
    }
}

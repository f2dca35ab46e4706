//! `racelab suite`: every scenario × variant × engine on the model, then (when asked) forced
//! replays and stress runs on real filesystems and databases and gated runs of real programs,
//! written as summary.json, summary.md, summary.html and junit.xml.

use std::path::{Path, PathBuf};
use std::time::Duration;

use racelab_core::explore::EngineKind;
use racelab_core::lang::Scenario;
use racelab_real::backend::db::DbSpec;
use racelab_real::gate::explore::GateBudget;
use racelab_real::gate::report::GateTarget;
use racelab_real::suite::{self, RealConfig, RealDbTarget, RealFsTarget};
use reports::table::render_result_line;
use reports::RunResult;

use super::load::{load, parse_engines, stem};
use super::output::{eprint_error, interrupted_exit, Output, BAD_INPUT, INFRASTRUCTURE};

#[derive(clap::Args)]
pub(crate) struct SuiteArgs {
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
}

/// Everything the run needs, checked: no bad input is found after the first row starts.
struct Plan<'a> {
    args: &'a SuiteArgs,
    files: Vec<PathBuf>,
    scenarios: Vec<(String, Scenario)>,
    engines: Vec<EngineKind>,
    fs_targets: Vec<RealFsTarget>,
    db_targets: Vec<RealDbTarget>,
    gate_targets: Vec<GateTarget>,
    /// `--findings-from`: another run's model rows, instead of exploring.
    borrowed_rows: Option<Vec<RunResult>>,
}

/// Plans, runs every row, prints each row's result line and writes the reports.
pub(crate) fn run(args: &SuiteArgs, out: &Output) -> u8 {
    let plan = match plan(args, out) {
        Ok(p) => p,
        Err(c) => return c,
    };
    let results = run_rows(&plan, out);
    if let Some(sig) = racelab_real::backend::cancel::requested() {
        eprint_error(format_args!(
            "interrupted by signal {sig}; real runs and gated processes were cleaned up"
        ));
        return interrupted_exit(sig);
    }
    report(results, args)
}

/// Checks the arguments and reads every scenario.
fn plan<'a>(args: &'a SuiteArgs, out: &Output) -> Result<Plan<'a>, u8> {
    let gate_targets = args
        .gate
        .iter()
        .map(|g| parse_gate_target(g))
        .collect::<Result<Vec<_>, u8>>()?;
    let db_targets = args
        .db
        .iter()
        .map(|d| parse_db_target(d))
        .collect::<Result<Vec<_>, u8>>()?;
    if !db_targets.is_empty() {
        racelab_real::backend::cancel::install();
    }
    let engines = parse_engines(&args.engines).map_err(|msg| {
        eprint_error(msg);
        BAD_INPUT
    })?;
    let fs_targets = args
        .real
        .iter()
        .map(|r| parse_fs_target(r))
        .collect::<Result<Vec<_>, u8>>()?;
    if !fs_targets.is_empty() {
        racelab_real::backend::cancel::install();
    }
    let files = scenario_files(&args.paths);
    if files.is_empty() {
        eprint_error("no scenario files found; pass *.race files or directories holding them");
        return Err(BAD_INPUT);
    }
    let mut scenarios = load_scenarios(&files, out)?;
    if let Some(s) = args.shard {
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
    // Another run's model rows (`--findings-from`), read before anything starts: a bad file is
    // bad input.
    let borrowed_rows = match &args.findings_from {
        Some(from) => match suite::model_rows_from(from, &scenarios, &args.engines) {
            Ok(rows) => Some(rows),
            Err(e) => {
                eprint_error(format_args!("--findings-from {}: {e}", from.display()));
                return Err(e.exit_code());
            }
        },
        None => None,
    };
    Ok(Plan {
        args,
        files,
        scenarios,
        engines,
        fs_targets,
        db_targets,
        gate_targets,
        borrowed_rows,
    })
}

/// `--gate NAME=DIR[,DIR2]` or `--gate NAME=!reason`.
fn parse_gate_target(g: &str) -> Result<GateTarget, u8> {
    match g.split_once('=') {
        Some((name, reason)) if reason.starts_with('!') => Ok(GateTarget {
            name: name.to_string(),
            dir: Err(reason[1..].to_string()),
            clients: Vec::new(),
        }),
        Some((name, d)) if !name.is_empty() && d.split(',').all(|d| Path::new(d).is_dir()) => {
            let mut dirs = d.split(',').map(PathBuf::from);
            Ok(GateTarget {
                name: name.to_string(),
                dir: Ok(dirs.next().unwrap_or_default()),
                clients: dirs.collect(),
            })
        }
        _ => {
            eprint_error(format_args!(
                "--gate {g}: expected NAME=DIR (or NAME=DIR,DIR2: one directory through two clients) with existing directories, or NAME=!reason"
            ));
            Err(BAD_INPUT)
        }
    }
}

/// `--db sqlite|postgres=URL|mariadb=URL` or `--db NAME=!reason`.
fn parse_db_target(d: &str) -> Result<RealDbTarget, u8> {
    match d.split_once('=') {
        Some((name, reason)) if reason.starts_with('!') => Ok(RealDbTarget {
            name: name.to_string(),
            spec: Err(reason[1..].to_string()),
        }),
        _ => match DbSpec::parse(d) {
            Ok(spec) => Ok(RealDbTarget {
                name: spec.name().trim_start_matches("db:").to_string(),
                spec: Ok(spec),
            }),
            Err(e) => {
                eprint_error(format_args!("--db {d}: {e}"));
                Err(e.exit_code())
            }
        },
    }
}

/// `--real NAME=DIR[,DIR2]` or `--real NAME=!reason`.
fn parse_fs_target(r: &str) -> Result<RealFsTarget, u8> {
    match r.split_once('=') {
        Some((name, reason)) if reason.starts_with('!') => Ok(RealFsTarget {
            name: name.to_string(),
            dir: Err(reason[1..].to_string()),
        }),
        Some((name, d)) if !name.is_empty() && d.split(',').all(|p| Path::new(p).is_dir()) => {
            Ok(RealFsTarget {
                name: name.to_string(),
                dir: Ok(d.split(',').map(PathBuf::from).collect()),
            })
        }
        _ => {
            eprint_error(format_args!(
                "--real {r}: expected NAME=DIR with an existing directory (or NAME=!reason)"
            ));
            Err(BAD_INPUT)
        }
    }
}

/// The `.race` files named, and those directly inside the directories named, sorted per
/// directory; `./scenarios` when nothing is named.
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

/// Compiles every file; every variant must state its expectation. All problems are printed
/// before giving up.
fn load_scenarios(files: &[PathBuf], out: &Output) -> Result<Vec<(String, Scenario)>, u8> {
    let mut scenarios = Vec::new();
    let mut bad = false;
    for f in files {
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
        Err(BAD_INPUT)
    } else {
        Ok(scenarios)
    }
}

/// Every row: gated runs beside the model, then the filesystems beside the databases.
fn run_rows(plan: &Plan, out: &Output) -> Vec<RunResult> {
    let progress = indicatif::MultiProgress::new();
    if !out.tty {
        progress.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let spinner = progress.add(indicatif::ProgressBar::new_spinner());
    spinner.enable_steady_tick(Duration::from_millis(200));
    let say = |what: &str, r: &RunResult| {
        spinner.set_message(format!(
            "{what}: {}/{}/{} on {}",
            r.scenario, r.variant, r.engine, r.backend
        ))
    };
    let (mut results, fs_rows, db_rows, gate_rows) = std::thread::scope(|outer| {
        // Gated runs explore real programs on their own (they need no model finding), and spend
        // their time in ptrace stops and the programs' start-up: they start now, beside the
        // model engines and then the filesystem and database rows, instead of after the model
        // (the tracer is this thread throughout). In CI they took 6 of the main suite's 10
        // minutes in this one thread, after the model's 4.
        let gate = outer.spawn(|| gate_rows(plan, &|r| say("gate", r)));
        let results = match &plan.borrowed_rows {
            Some(rows) => rows.clone(),
            None => model_rows(plan, &progress),
        };
        // The real runs: the database servers at the same time as the filesystems. Database
        // rows spend their time waiting for a server (the blocked-statement polls), the others
        // on processes and disks, so the two overlap on two cores instead of queueing.
        let model_rows = &results;
        let (fs_rows, db_rows) = std::thread::scope(|s| {
            let db = s.spawn(|| db_rows(plan, model_rows, &|r| say("db", r)));
            let fs_rows = fs_rows(plan, model_rows, &|r| say("real", r));
            (fs_rows, db.join().unwrap_or_default())
        });
        (results, fs_rows, db_rows, gate.join().unwrap_or_default())
    });
    spinner.finish_and_clear();
    if plan.borrowed_rows.is_some() {
        // Another run's model rows: they chose the tokens, they are that run's to report.
        results.clear();
    }
    // Filesystem rows first, then databases, then the gate: the order the reports always had.
    results.extend(fs_rows);
    results.extend(db_rows);
    results.extend(gate_rows);
    results
}

/// The model engines on every variant, with a progress bar; their rows are also written on
/// their own for `--findings-from` runs elsewhere.
fn model_rows(plan: &Plan, progress: &indicatif::MultiProgress) -> Vec<RunResult> {
    let cfg = if plan.args.quick {
        suite::SuiteConfig::quick()
    } else {
        suite::SuiteConfig::full()
    };
    let jobs = suite::jobs(&plan.scenarios, &cfg, &plan.engines);
    let bar = progress.add(indicatif::ProgressBar::new(jobs.len() as u64));
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} exploring [{bar:30}] {pos}/{len} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    let rows = suite::run(&jobs, &|r| {
        bar.set_message(format!("{}/{}/{}", r.scenario, r.variant, r.engine));
        bar.inc(1);
    });
    bar.finish_and_clear();
    let dir = &plan.args.out;
    if let Err(e) = suite::write_model_rows(&rows, dir) {
        eprintln!(
            "warning: cannot write {}: {e}",
            dir.join(suite::MODEL_ROWS_FILE).display()
        );
    }
    rows
}

/// Every variant that names a real program, explored through each `--gate` target.
fn gate_rows(plan: &Plan, say: &(dyn Fn(&RunResult) + Sync)) -> Vec<RunResult> {
    if plan.gate_targets.is_empty() || racelab_real::backend::cancel::requested().is_some() {
        return Vec::new();
    }
    racelab_real::backend::cancel::install();
    // Each execution starts real processes (a fraction of a second): budgets in executions. A
    // variant expected to hold can only end "not refuted" however long it runs; quick mode
    // gives it fewer executions than one expected to break, which needs them to find its race
    // (flufl-lock's crash: 66 here).
    let (budget, holds_budget) = if plan.args.quick {
        (
            GateBudget {
                executions: 150,
                seconds: 75.0,
            },
            GateBudget {
                executions: 40,
                seconds: 30.0,
            },
        )
    } else {
        let full = GateBudget {
            executions: 600,
            seconds: 300.0,
        };
        (full, full)
    };
    let with_files: Vec<(String, PathBuf, Scenario)> = plan
        .scenarios
        .iter()
        .filter_map(|(stem, sc)| {
            plan.files
                .iter()
                .find(|f| self::stem(f) == *stem)
                .map(|f| (stem.clone(), f.clone(), sc.clone()))
        })
        .collect();
    racelab_real::gate::report::suite_rows(
        &with_files,
        &plan.gate_targets,
        (budget, holds_budget),
        0x5eed,
        say,
    )
}

/// Every model finding forced, and every variant stressed, on each `--db` target.
fn db_rows(
    plan: &Plan,
    model_rows: &[RunResult],
    say: &(dyn Fn(&RunResult) + Sync),
) -> Vec<RunResult> {
    if plan.db_targets.is_empty() {
        return Vec::new();
    }
    // A forced replay on a server costs a CREATE DATABASE (~0.1-0.3 s): 5 per schedule.
    let rc = if plan.args.quick {
        RealConfig {
            replays: 5,
            stress_runs: 100,
            jobs: 2,
        }
    } else {
        RealConfig {
            replays: 20,
            stress_runs: 500,
            jobs: 2,
        }
    };
    suite::db_rows(&plan.scenarios, model_rows, &plan.db_targets, &rc, say)
}

/// Every model finding forced, and every variant stressed, on each `--real` filesystem.
fn fs_rows(
    plan: &Plan,
    model_rows: &[RunResult],
    say: &(dyn Fn(&RunResult) + Sync),
) -> Vec<RunResult> {
    if plan.fs_targets.is_empty() {
        return Vec::new();
    }
    // Forced replays are cheap (tens of ms each): 20 even in quick mode, so "reproduces every
    // time" is measured (Wilson lower bound 0.84), not assumed; 100 in full runs. Quick mode's
    // 50 free runs per variant and filesystem keep CI's real part to a few minutes on six
    // filesystems (measured: 100 replays and 100 runs took 9 minutes).
    let mut rc = if plan.args.quick {
        RealConfig {
            replays: 20,
            stress_runs: 50,
            jobs: 2,
        }
    } else {
        RealConfig {
            replays: 100,
            stress_runs: 500,
            jobs: 2,
        }
    };
    rc.replays = plan.args.replays.unwrap_or(rc.replays).max(1);
    rc.stress_runs = plan.args.stress_runs.unwrap_or(rc.stress_runs).max(1);
    suite::real_rows(&plan.scenarios, model_rows, &plan.fs_targets, &rc, say)
}

/// Prints each row's result line, writes the reports and answers with the suite's exit code.
fn report(results: Vec<RunResult>, args: &SuiteArgs) -> u8 {
    let dir = &args.out;
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
        shard: args.shard,
    };
    let written = if args.json_only {
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
            return INFRASTRUCTURE;
        }
    }
    suite::exit_code(&summary.results) as u8
}

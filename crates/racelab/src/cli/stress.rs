//! `racelab stress FILE --variant V --backend fs:DIR|db:...`: a variant run many times with
//! free-running real actors, and how often each invariant broke (with 95% intervals).

use std::path::PathBuf;
use std::sync::Arc;

use racelab_core::error::Error;
use racelab_core::schedule::Schedule;
use racelab_lang::ir::Program;
use racelab_real::backend::db::DbSpec;
use racelab_real::backend::stress::InvariantRate;
use racelab_real::backend::{ActorMode, BackendSpec};
use reports::table::render_trace;

use super::load::{load_variant, stem};
use super::output::{eprint_error, interrupted_exit, progress_bar, Output, BAD_INPUT};
use super::world::RealWorld;

#[derive(clap::Args)]
pub(crate) struct StressArgs {
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
}

/// What a stress campaign measured, whichever world it ran in.
struct Stressed {
    /// The campaign in one line: where, how, how many runs how fast.
    headline: String,
    rates: Vec<InvariantRate>,
    first_failure: Option<(u64, Schedule, reports::Trace)>,
    /// The summary.json row (`--json` prints it; its `met` is the exit code).
    row: reports::RunResult,
}

/// Stresses the variant in the world `--backend` names and prints the rates.
pub(crate) fn run(args: &StressArgs, out: &Output) -> u8 {
    let world = match parse_world(args) {
        Ok(w) => w,
        Err(c) => return c,
    };
    if args.runs == 0 {
        eprint_error("--runs must be at least 1: a rate from zero runs says nothing");
        return BAD_INPUT;
    }
    let prog = match load_variant(&args.file, &args.variant, out) {
        Ok(p) => p,
        Err(c) => return c,
    };
    racelab_real::backend::cancel::install();
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let stressed = match &world {
        RealWorld::Fs { roots, mode } => stress_fs(args, &prog, roots, *mode, jobs, out),
        RealWorld::Db(db) => stress_db(args, &prog, db, jobs),
    };
    let s = match stressed {
        Ok(s) => s,
        Err(why) => {
            eprint_error(format_args!(
                "the real {} failed: {why}",
                world.failing_part()
            ));
            return racelab_real::backend::cancel::requested()
                .map_or(why.exit_code(), interrupted_exit);
        }
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&s.row).unwrap_or_default()
        );
    } else {
        print_rates(&s, out);
    }
    if s.row.met {
        0
    } else {
        1
    }
}

/// The world from `--backend` (and, for a filesystem, `--actors`); the model is refused.
fn parse_world(args: &StressArgs) -> Result<RealWorld, u8> {
    if let Some(db) = args.backend.strip_prefix("db:") {
        // One connection per actor: `--actors`, `--chaos` and the nemesis are filesystem ideas.
        return DbSpec::parse(db).map(RealWorld::Db).map_err(|e| {
            eprint_error(&e);
            e.exit_code()
        });
    }
    let roots = match BackendSpec::parse(&args.backend) {
        Ok(BackendSpec::Fs(roots)) => roots,
        Ok(BackendSpec::Model) => {
            eprint_error("stress runs real actors: pass `--backend fs:DIR` (the model is explored, not stressed: use `racelab explore`)");
            return Err(BAD_INPUT);
        }
        Err(e) => {
            eprint_error(&e);
            return Err(e.exit_code());
        }
    };
    match ActorMode::parse(&args.actors) {
        Ok(mode) => Ok(RealWorld::Fs { roots, mode }),
        Err(e) => {
            eprint_error(&e);
            Err(e.exit_code())
        }
    }
}

/// Stress on a real filesystem: actors as threads or processes, chaos and the nemesis.
fn stress_fs(
    args: &StressArgs,
    prog: &Arc<Program>,
    roots: &[PathBuf],
    mode: ActorMode,
    jobs: usize,
    out: &Output,
) -> Result<Stressed, Error> {
    let chaos = args.chaos;
    let nemesis = !args.no_nemesis
        && prog
            .faults
            .iter()
            .any(|f| racelab_real::backend::nemesis::injectable(&f.kind));
    let cfg = racelab_real::backend::stress::StressConfig {
        runs: args.runs,
        chaos,
        mode,
        jobs,
        seed: args.seed,
        nemesis,
    };
    let bar = progress_bar(
        args.runs,
        out,
        &format!(
            "stress {} {}",
            prog.variant,
            if chaos { "(chaos)" } else { "" }
        ),
    );
    let result = racelab_real::backend::stress::stress(prog, roots, &cfg, &|_| bar.inc(1));
    bar.finish_and_clear();
    let r = result?;
    let stem = stem(&args.file);
    let row = racelab_real::suite::stress_row(&stem, prog, &r, &r.env.fs.fs_type, &roots[0]);
    let headline = format!(
        "{}/{} on {} ({}, {}), {} actors{}: {} runs in {:.1}s ({:.1} runs/s)",
        stem,
        prog.variant,
        roots
            .iter()
            .map(|r| r.display().to_string())
            .collect::<Vec<_>>()
            .join(","),
        r.env.fs.fs_type,
        r.env.fs.options,
        mode.name(),
        if chaos { ", chaos" } else { "" },
        r.runs,
        r.seconds,
        r.runs_per_second()
    );
    Ok(Stressed {
        headline,
        rates: r.rates,
        first_failure: r.first_failure,
        row,
    })
}

/// Stress on a real database: free-running actors, each on its own connection.
fn stress_db(
    args: &StressArgs,
    prog: &Arc<Program>,
    db: &DbSpec,
    jobs: usize,
) -> Result<Stressed, Error> {
    let r = racelab_real::backend::db::stress::stress(prog, db, args.runs, jobs, args.seed)?;
    let stem = stem(&args.file);
    let row = racelab_real::suite::db_stress_row(&stem, prog, &r);
    let headline = format!(
        "{}/{} on {} ({}, isolation {}), {} actors on their own connections: {} runs in {:.1}s ({:.1} runs/s)",
        stem,
        prog.variant,
        r.env.backend,
        r.env.server_version,
        r.env.isolation_level,
        prog.actors.len(),
        r.runs,
        r.seconds,
        r.runs as f64 / r.seconds.max(1e-9)
    );
    Ok(Stressed {
        headline,
        rates: r.rates,
        first_failure: r.first_failure,
        row,
    })
}

/// The headline, each invariant's rate with its interval, the faults, and the first failure.
fn print_rates(s: &Stressed, out: &Output) {
    println!("{}", s.headline);
    for rate in &s.rates {
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
    if let Some(faults) = &s.row.faults {
        println!("  faults: {faults}");
    }
    if let Some((i, sched, trace)) = &s.first_failure {
        println!(
            "\nfirst failing run (#{}): schedule {}",
            i + 1,
            sched.encode()
        );
        print!("{}", render_trace(trace, out.style()));
    }
}

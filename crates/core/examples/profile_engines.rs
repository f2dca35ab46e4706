//! A native engine on a built-in variant, alone in a process, for `perf record` / `perf stat`.
//!
//! The benches time several sides and a sanity pass in one process, which a profile would mix
//! up; this runs exactly one thing:
//!
//! - `random [rounds]`: the explore bench's native-random side (mailman-lockfile/patched with
//!   `stat` as one step), 1,000 schedules a round;
//! - `dfs [rounds] [workers]`: the dfs bench's proof (racelab-linklock/no-fault), on one thread
//!   unless `workers` says more (CPU time over wall time then shows how busy they kept);
//! - `proofs [rounds] [workers]`: the two per-core targets, proved by native-dfs:
//!   mailman-lockfile/patched (`stat` as one step, as the explore bench takes it) and
//!   flufl-lock/no-fault, each timed on its own (`perf stat` gives the CPU time of the whole);
//! - `dump`: the patched mailman variant's lowered IR, to read beside a profile;
//! - `space FILE VARIANT [workers] [max-states]`: native-dfs on one built-in variant, with
//!   the default state budget unless given, for its size and (under `/usr/bin/time -v`) its
//!   peak memory;
//! - `states`: native-dfs (one thread, at most 300,000 states) on every variant of every
//!   built-in scenario: its states, schedules and findings with their schedules, one line
//!   each, to diff before and after a change to the machine (they must not change).
//!
//! `cargo build --profile bench -p racelab-core --example profile_engines`, then
//! `perf stat -e task-clock target/release/examples/profile_engines random 20` (CPU time, which
//! a loaded machine disturbs less than the wall-clock rate it prints).

use std::sync::Arc;
use std::time::{Duration, Instant};

use racelab_core::explore::{self, Budget, EngineConfig, EngineKind};
use racelab_lang::ir::Program;

fn variant(file: &str, name: &str) -> Program {
    let path = format!("{}/../../scenarios/{file}", env!("CARGO_MANIFEST_DIR"));
    let src = std::fs::read_to_string(&path).expect("the built-in scenario is readable");
    let sc = racelab_core::lang::compile(&path, &src).expect("the built-in scenario compiles");
    sc.variant(name)
        .expect("the scenario has this variant")
        .clone()
}

/// The explore bench's program: `stat` as one step, as its hand-written side takes it.
fn mailman_patched() -> Program {
    let mut prog = variant("mailman-lockfile.race", "patched");
    prog.split_calls = false;
    prog
}

fn random(rounds: u64) {
    let prog = Arc::new(mailman_patched());
    let start = Instant::now();
    for r in 0..rounds {
        let cfg = EngineConfig::new(
            EngineKind::NativeRandom,
            Budget::new(1000, Duration::from_secs(600)),
        )
        .seed(r);
        let ex = explore::explore(&prog, &cfg).expect("native-random explores any scenario");
        assert!(
            ex.findings.is_empty(),
            "the patched lock broke: {:?}",
            ex.findings
        );
    }
    let s = start.elapsed().as_secs_f64();
    let n = rounds * 1000;
    println!(
        "native-random: {n} schedules in {s:.2}s: {:.0} schedules/s",
        n as f64 / s
    );
}

fn dfs(rounds: u64, workers: usize) {
    let prog = Arc::new(variant("racelab-linklock.race", "no-fault"));
    let start = Instant::now();
    let mut states = 0;
    for _ in 0..rounds {
        let cfg = EngineConfig::new(
            EngineKind::NativeDfs,
            Budget::new(u64::MAX, Duration::from_secs(600)),
        )
        .workers(workers);
        let ex = explore::explore(&prog, &cfg).expect("native-dfs explores any scenario");
        assert!(ex.exhaustive, "the proof did not finish: {}", ex.bound);
        states += ex.states.unwrap_or(0);
    }
    let s = start.elapsed().as_secs_f64();
    println!(
        "native-dfs: {states} states in {s:.2}s: {:.0} states/s",
        states as f64 / s
    );
}

/// The CPU time this process has used, every thread's (ended ones too), from
/// `/proc/self/stat` (utime and stime, in the kernel's 100 Hz clock ticks): on a shared machine
/// states per CPU-second are steadier than states per wall second.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name, which is in parentheses and may hold spaces.
    let after = stat.rsplit(')').next().unwrap_or("");
    let ticks: u64 = after
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|t| t.parse::<u64>().ok())
        .sum();
    ticks as f64 / 100.0
}

/// Proves `prog` `rounds` times on `workers` threads; prints its states per wall second and
/// per CPU-second.
fn prove_rounds(name: &str, prog: Program, rounds: u64, workers: usize) {
    let prog = Arc::new(prog);
    let start = Instant::now();
    let cpu_start = cpu_seconds();
    let mut states = 0;
    for _ in 0..rounds {
        let cfg = EngineConfig::new(
            EngineKind::NativeDfs,
            Budget::new(u64::MAX, Duration::from_secs(600)),
        )
        .workers(workers);
        let ex = explore::explore(&prog, &cfg).expect("native-dfs explores any scenario");
        assert!(
            ex.exhaustive && ex.findings.is_empty(),
            "{name} is not proved: {}",
            ex.bound
        );
        states += ex.states.unwrap_or(0);
    }
    let s = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_start;
    println!(
        "{name}: {states} states in {s:.2}s ({cpu:.2} CPU-s) on {workers} worker(s): {:.0} states/s, {:.0} states/CPU-s",
        states as f64 / s,
        states as f64 / cpu
    );
}

fn proofs(rounds: u64, workers: usize) {
    prove_rounds(
        "mailman-lockfile/patched",
        mailman_patched(),
        rounds,
        workers,
    );
    let flufl = variant("flufl-lock.race", "no-fault");
    prove_rounds("flufl-lock/no-fault", flufl, rounds, workers);
}

fn space(file: &str, name: &str, workers: usize, max_states: Option<u64>) {
    let prog = Arc::new(variant(file, name));
    let mut cfg = EngineConfig::new(
        EngineKind::NativeDfs,
        Budget::new(u64::MAX, Duration::from_secs(600)),
    )
    .workers(workers);
    if let Some(max) = max_states {
        cfg = cfg.max_states(max);
    }
    let ex = explore::explore(&prog, &cfg).expect("native-dfs explores any scenario");
    println!(
        "{file}/{name}: {:?} states in {:.2}s on {workers} worker(s), exhaustive {}: {}",
        ex.states, ex.seconds, ex.exhaustive, ex.bound
    );
}

fn dump() {
    let prog = mailman_patched();
    for (i, p) in prog.procs.iter().enumerate() {
        println!("proc {i} {} ({} registers)", p.name, p.nregs);
        for (pc, ins) in p.code.iter().enumerate() {
            println!("  {pc:3} {ins:?}");
        }
    }
    for inv in &prog.invariants {
        println!("invariant {}: {:?}", inv.name, inv.cond);
    }
}

fn states() {
    let dir = format!("{}/../../scenarios", env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("the scenarios directory is readable")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "race"))
        .collect();
    files.sort();
    for path in files {
        let path = path.to_string_lossy().into_owned();
        let src = std::fs::read_to_string(&path).expect("the built-in scenario is readable");
        let sc = racelab_core::lang::compile(&path, &src).expect("the built-in scenario compiles");
        let file = path.rsplit('/').next().unwrap_or(&path);
        for prog in &sc.variants {
            let cfg = EngineConfig::new(
                EngineKind::NativeDfs,
                Budget::new(u64::MAX, Duration::from_secs(600)),
            )
            .workers(1)
            .max_states(300_000);
            let ex = explore::explore(&Arc::new(prog.clone()), &cfg)
                .expect("native-dfs explores any scenario");
            let found: Vec<String> = ex
                .findings
                .iter()
                .map(|f| format!("{} at {:?}", f.invariant, f.schedule.steps))
                .collect();
            println!(
                "{file}/{}: states {:?}, schedules {}, exhaustive {}, covered {:?}, findings {found:?}",
                prog.variant, ex.states, ex.schedules, ex.exhaustive, ex.covered
            );
        }
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let which = args.next().unwrap_or_else(|| "random".into());
    if which == "space" {
        let (Some(file), Some(name)) = (args.next(), args.next()) else {
            eprintln!("profile_engines: space FILE VARIANT [workers] [max-states]");
            std::process::exit(2);
        };
        let workers = args.next().and_then(|w| w.parse().ok()).unwrap_or(1);
        let max_states = args.next().and_then(|m| m.parse().ok());
        return space(&file, &name, workers, max_states);
    }
    let rounds = match args.next().map(|r| r.parse::<u64>()) {
        None => 20,
        Some(Ok(n)) => n,
        Some(Err(e)) => {
            eprintln!("profile_engines: rounds must be a number: {e}");
            std::process::exit(2);
        }
    };
    match which.as_str() {
        "random" => random(rounds),
        "dfs" | "proofs" => {
            let workers = args.next().map_or(Ok(1), |w| w.parse::<usize>());
            match workers {
                Ok(w) if w > 0 && which == "dfs" => dfs(rounds, w),
                Ok(w) if w > 0 => proofs(rounds, w),
                _ => {
                    eprintln!("profile_engines: workers must be a positive number");
                    std::process::exit(2);
                }
            }
        }
        "dump" => dump(),
        "states" => states(),
        other => {
            eprintln!(
                "profile_engines: unknown mode {other:?} (random, dfs, proofs, space, dump or states)"
            );
            std::process::exit(2);
        }
    }
}

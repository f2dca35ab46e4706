//! The stateful search's speed: distinct states per second of native-dfs proving a built-in
//! variant that holds, sequentially and on several threads (`explore/parallel.rs`).
//!
//! The variant is racelab-linklock/no-fault (55,918 states): big enough that thread start-up
//! does not count, small enough for criterion's samples. Both sides expand exactly the same
//! states (the test `parallel_proof_expands_the_same_states` checks it), so the ratio of their
//! times is the speed-up; it is printed at the end, measured back to back in this one run.
//!
//! Run with `cargo bench -p racelab-core --bench dfs`. Goals (#23): 1 M distinct states/s per
//! core and at least 1.8x on two cores.
//!
//! The wall-clock ratio only means something on idle cores. The kernel's autogroup scheduling
//! gives each session one fair share of the CPUs however many threads it runs, so on a machine
//! other sessions keep busy two workers get about the CPU time one does, and the ratio says
//! nothing about the search. The summary line therefore also gives the load average and the
//! CPU-seconds per million states of each side: their ratio is the parallel search's own
//! overhead, and with CPU time to spare the speed-up is about `workers` over it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use racelab_core::explore::{self, Budget, EngineConfig, EngineKind};
use racelab_lang::ir::Program;

const SCENARIO: &str = include_str!("../../../scenarios/racelab-linklock.race");

fn linklock() -> Arc<Program> {
    let sc = racelab_core::lang::compile(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../scenarios/racelab-linklock.race"
        ),
        SCENARIO,
    )
    .expect("the built-in scenario compiles");
    Arc::new(
        sc.variant("no-fault")
            .expect("the scenario has this variant")
            .clone(),
    )
}

/// Proves the variant on `workers` threads; returns the distinct states.
fn prove(prog: &Arc<Program>, workers: usize) -> u64 {
    let cfg = EngineConfig::new(
        EngineKind::NativeDfs,
        Budget::new(u64::MAX, Duration::from_secs(600)),
    )
    .workers(workers);
    let ex = explore::explore(prog, &cfg).expect("native-dfs explores any scenario");
    assert!(
        ex.exhaustive && ex.findings.is_empty(),
        "native-dfs did not prove racelab-linklock/no-fault: {}",
        ex.bound
    );
    ex.states.unwrap_or(0)
}

fn bench(c: &mut Criterion) {
    let prog = linklock();
    let states = prove(&prog, 1);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut group = c.benchmark_group("racelab-linklock/no-fault/native-dfs");
    group.throughput(Throughput::Elements(states));
    group.sample_size(10);
    for workers in [1, cores.max(2)] {
        group.bench_function(format!("{workers}-threads"), |b| {
            b.iter(|| prove(&prog, workers))
        });
    }
    group.finish();
    print_ratio(&prog, states, cores.max(2));
}

/// The CPU time this process has used, every thread's, from `/proc/self/stat` (utime and stime
/// in the kernel's 100 Hz ticks); 0 where there is no such file.
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

/// The one-minute load average, as `/proc/loadavg` gives it.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".to_string())
}

/// States per second on one thread and on `workers`, timed back to back, their ratio, and the
/// CPU-seconds each side spent per million states.
fn print_ratio(prog: &Arc<Program>, states: u64, workers: usize) {
    const ROUNDS: u64 = 3;
    let load = load_average();
    let measure = |w: usize| {
        let start = Instant::now();
        let cpu = cpu_seconds();
        for _ in 0..ROUNDS {
            prove(prog, w);
        }
        let total = (ROUNDS * states) as f64;
        let wall = start.elapsed().as_secs_f64();
        (total / wall, (cpu_seconds() - cpu) / total * 1e6)
    };
    let (one, one_cpu) = measure(1);
    let (many, many_cpu) = measure(workers);
    eprintln!(
        "native-dfs on racelab-linklock/no-fault ({states} states), load average {load}: \
         {one:.0} states/s on 1 thread, {many:.0} on {workers}: {:.2}x (goal 1.8x on 2 cores; \
         1 M states/s per core); CPU-seconds per million states: {one_cpu:.2} on 1 thread, \
         {many_cpu:.2} on {workers} ({:.2}x the CPU time)",
        many / one,
        many_cpu / one_cpu
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);

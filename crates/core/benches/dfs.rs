//! The stateful search's speed: distinct states per second of native-dfs proving a built-in
//! variant that holds, sequentially and on several threads (`explore/parallel.rs`).
//!
//! The variant is racelab-linklock/no-fault (55,918 states): big enough that thread start-up
//! does not count, small enough for criterion's samples. Both sides expand exactly the same
//! states (the test `parallel_proof_expands_the_same_states` checks it), so the ratio of their
//! times is the speed-up; it is printed at the end, measured back to back in this one run.
//!
//! Run with `cargo bench -p racelab --bench dfs`. Goals (#23): 1 M distinct states/s per core
//! and at least 1.8x on two cores.

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

/// States per second on one thread and on `workers`, timed back to back, and their ratio.
fn print_ratio(prog: &Arc<Program>, states: u64, workers: usize) {
    let rate = |w: usize| {
        let start = Instant::now();
        for _ in 0..3 {
            prove(prog, w);
        }
        (3 * states) as f64 / start.elapsed().as_secs_f64()
    };
    let one = rate(1);
    let many = rate(workers);
    eprintln!(
        "native-dfs on racelab-linklock/no-fault ({states} states): {one:.0} states/s on 1 thread, {many:.0} on {workers}: {:.2}x (goal 1.8x on 2 cores; 1 M states/s per core)",
        many / one
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);

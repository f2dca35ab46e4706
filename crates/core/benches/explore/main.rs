//! What the interpreter costs: schedules per second for `mailman-lockfile` under shuttle's random
//! scheduler, racelab's interpreter beside a shuttle test of the same race written by hand.
//!
//! Both sides run the patched Mailman 2.1 LockFile with three qrunners, take the same steps in the
//! same order (one scheduling point per filesystem call, per `now` and per log append: racelab's
//! step, the hand-written test's acquisition of its shuttle `Mutex`), keep time the same way (discrete-event: the clock jumps to the earliest wake-up
//! when no actor is runnable), and check the same invariants. The patched variant never stops an
//! exploration early, so every iteration explores exactly `SCHEDULES` schedules and criterion's
//! elements/s is schedules/s.
//!
//! A third side is racelab's own engine (`native-random`): the same machine and the same uniform
//! random choice, stepped directly with no threads; its goal is ten times the hand-written
//! shuttle test's schedules/s. The ratios are printed at the end of the run (measured in this
//! one run, so the machine's load affects all sides alike).
//!
//! Run with `cargo bench -p harness --bench explore`. The ratio to watch is the interpreter's time
//! per schedule over the hand-written test's; the goal is at most 1.5.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use racelab_core::explore::{self, Budget, EngineConfig, EngineKind};
use racelab_core::model::Machine;
use racelab_lang::ir::Program;

const SCENARIO: &str = include_str!("../../../../scenarios/mailman-lockfile.race");

/// Schedules per criterion iteration, on both sides.
const SCHEDULES: u64 = 200;

/// The variant as the hand-written test runs it: `stat` as one step. (The scenario's own
/// two-step stat lets the patched lock log "unexpected linkcount", which would stop every
/// exploration at its first finding.)
fn mailman(variant: &str) -> Arc<Program> {
    let sc = racelab_core::lang::compile(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../scenarios/mailman-lockfile.race"
        ),
        SCENARIO,
    )
    .expect("the built-in scenario compiles");
    let mut prog = sc
        .variant(variant)
        .expect("the scenario has this variant")
        .clone();
    prog.split_calls = false;
    Arc::new(prog)
}

/// racelab: explore `n` schedules of `prog` with shuttle random; returns the invariants broken.
fn racelab_explore(prog: &Arc<Program>, n: u64, seed: u64) -> Vec<String> {
    explore_on(EngineKind::ShuttleRandom, prog, n, seed)
}

/// racelab: explore `n` schedules of `prog` with `engine`; returns the invariants broken.
fn explore_on(engine: EngineKind, prog: &Arc<Program>, n: u64, seed: u64) -> Vec<String> {
    let cfg = EngineConfig::new(engine, Budget::new(n, Duration::from_secs(600))).seed(seed);
    let ex = explore::explore(prog, &cfg).expect("shuttle explores any scenario");
    assert_eq!(ex.schedules, n, "racelab stopped early: {:?}", ex.findings);
    ex.findings.into_iter().map(|f| f.invariant).collect()
}

mod handwritten;

/// The mean number of steps racelab's machine takes per execution, under a uniform random choice
/// of runnable actor (close to what shuttle random does), to compare granularity.
fn racelab_mean_steps(prog: &Arc<Program>, runs: u64) -> f64 {
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut total = 0u64;
    for _ in 0..runs {
        let mut m = Machine::new(Arc::clone(prog));
        while !m.is_finished() {
            let r: Vec<usize> = m.runnable().collect();
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            m.step(r[(rng % r.len() as u64) as usize]);
        }
        total += m.schedule().len() as u64;
    }
    total as f64 / runs as f64
}

/// Not timed: both sides agree that the patched lock holds, and the hand-written test is not
/// vacuous (it finds the race of the unpatched lock).
fn sanity() {
    let patched = mailman("patched");
    let found = racelab_explore(&patched, 50, 1);
    assert!(
        found.is_empty(),
        "racelab found {found:?} in the patched lock"
    );
    let hw = handwritten::explore(50, 1, true);
    assert_eq!(hw.schedules.load(Ordering::Relaxed), 50);
    assert_eq!(
        hw.mutual_exclusion.load(Ordering::Relaxed),
        0,
        "the hand-written test broke mutual exclusion in the patched lock"
    );
    assert_eq!(
        hw.spurious_log.load(Ordering::Relaxed),
        0,
        "the hand-written test logged noise in the patched lock"
    );
    assert_eq!(
        hw.errors.load(Ordering::Relaxed),
        0,
        "the hand-written test raised an error in the patched lock"
    );

    let hw_steps = hw.ops.load(Ordering::Relaxed) as f64 / 50.0;
    let rl_steps = racelab_mean_steps(&patched, 200);
    eprintln!("sanity: patched holds on both sides; mean world operations per schedule: racelab {rl_steps:.1} (+3 actor exits), hand-written {hw_steps:.1}");

    // The unpatched lock: the hand-written test is not vacuous, it finds the race. What racelab
    // finds within the same budget is shown beside it (how soon depends on the seed).
    let hw = handwritten::explore(20_000, 1, false);
    let me = hw.mutual_exclusion.load(Ordering::Relaxed);
    assert!(
        me > 0,
        "the hand-written test missed the race in mailman-2.1"
    );
    let cfg = EngineConfig::new(
        EngineKind::ShuttleRandom,
        Budget::new(20_000, Duration::from_secs(120)),
    )
    .seed(1);
    let ex =
        explore::explore(&mailman("mailman-2.1"), &cfg).expect("shuttle explores any scenario");
    let rl: Vec<(&str, u64)> = ex
        .findings
        .iter()
        .map(|f| (f.invariant.as_str(), f.after))
        .collect();
    eprintln!(
        "sanity: mailman-2.1, 20000 schedules at most: hand-written broke mutual exclusion in {me} schedules (log noise in {}, errors in {}); racelab broke (invariant, after schedules) {rl:?} in {} schedules",
        hw.spurious_log.load(Ordering::Relaxed),
        hw.errors.load(Ordering::Relaxed),
        ex.schedules,
    );
}

fn bench(c: &mut Criterion) {
    sanity();
    let prog = mailman("patched");
    let mut group = c.benchmark_group("mailman-lockfile/shuttle-random");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(3))
        .measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Elements(SCHEDULES));
    let seed = AtomicU64::new(0);
    group.bench_function("racelab-interpreter", |b| {
        b.iter(|| {
            black_box(racelab_explore(
                &prog,
                SCHEDULES,
                seed.fetch_add(1, Ordering::Relaxed),
            ))
        });
    });
    seed.store(0, Ordering::Relaxed);
    group.bench_function("handwritten-shuttle", |b| {
        b.iter(|| {
            black_box(handwritten::explore(
                SCHEDULES,
                seed.fetch_add(1, Ordering::Relaxed),
                true,
            ))
        });
    });
    seed.store(0, Ordering::Relaxed);
    group.bench_function("racelab-native-random", |b| {
        b.iter(|| {
            black_box(explore_on(
                EngineKind::NativeRandom,
                &prog,
                SCHEDULES,
                seed.fetch_add(1, Ordering::Relaxed),
            ))
        });
    });
    group.finish();
    print_ratios();
}

/// Schedules per second of each side, timed back to back in this run (criterion's own numbers
/// are in `target/criterion`), and the ratios the issue asks for.
fn print_ratios() {
    let prog = mailman("patched");
    let rounds = 5u64;
    let time = |f: &dyn Fn(u64)| {
        let start = std::time::Instant::now();
        for r in 0..rounds {
            f(r);
        }
        (rounds * SCHEDULES) as f64 / start.elapsed().as_secs_f64()
    };
    let shuttle_rl = time(&|r| {
        black_box(racelab_explore(&prog, SCHEDULES, r));
    });
    let handwritten = time(&|r| {
        black_box(handwritten::explore(SCHEDULES, r, true));
    });
    let native = time(&|r| {
        black_box(explore_on(EngineKind::NativeRandom, &prog, SCHEDULES, r));
    });
    eprintln!(
        "schedules/s on mailman-lockfile/patched: native-random {native:.0}, shuttle on racelab {shuttle_rl:.0}, hand-written shuttle {handwritten:.0}; native-random / hand-written = {:.2}x (goal 10x), native-random / shuttle-on-racelab = {:.2}x",
        native / handwritten,
        native / shuttle_rl
    );
    // The stateful search does not run schedules one by one: it expands each distinct state
    // once, and the schedules it covers are counted over its state graph.
    // One thread: the parallel proof search does not count the schedules it covers.
    let cfg = EngineConfig::new(
        EngineKind::NativeDfs,
        Budget::new(u64::MAX, Duration::from_secs(600)),
    )
    .workers(1);
    let ex = explore::explore(&prog, &cfg).expect("native-dfs explores any scenario");
    assert!(
        ex.exhaustive && ex.findings.is_empty(),
        "native-dfs did not prove the patched lock: {}",
        ex.bound
    );
    let covered = ex
        .covered
        .expect("the patched lock's state graph has no cycles") as f64;
    eprintln!(
        "native-dfs on mailman-lockfile/patched: {} distinct states in {:.2}s (exhaustive), covering {covered:.3e} complete schedules: {:.3e} schedules/s covered, {:.3e}x the hand-written shuttle test's schedules/s",
        ex.states.unwrap_or(0),
        ex.seconds,
        covered / ex.seconds,
        covered / ex.seconds / handwritten
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);

//! What the gate costs per call: one program making the same file-system calls (stat and utime
//! on one file, by turns) run plainly and under racelab's gate, where every call is a step that
//! waits for the schedule. Criterion reports calls per second for both; at the end the bench
//! prints the ratio and the time the gate adds to each call, both measured in this run.
//!
//! Both sides start a process (the racelab binary's `__gate-bench`); the gated side also
//! starts the launcher and installs the filter. CALLS is large enough that the per-call cost
//! dominates; `added per call` subtracts the plain run's time, start-up included.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use racelab::gate::run::{execute, Chooser, GateOptions};
use racelab::ir::Program;

const CALLS: u64 = 4_000;
const RACELAB: &str = env!("CARGO_BIN_EXE_racelab");

/// One actor, whose program is the benchmark's worker; the model side is never run.
fn program() -> Program {
    let src = format!(
        "scenario gate-bench {{\n  gate \"$RACELAB __gate-bench $ROOT/bench {CALLS}\"\n  actor worker {{\n    sleep 1s\n  }}\n  expect holds\n}}\n"
    );
    let sc =
        racelab::lang::compile("gate-bench.race", &src).expect("the benchmark's scenario compiles");
    sc.variants[0].clone()
}

/// Always the first enabled actor: the cost measured is the gate's, not a scheduler's.
struct First;

impl Chooser for First {
    fn choose(
        &mut self,
        _step: usize,
        enabled: &[u8],
        _last: Option<(usize, bool)>,
    ) -> Result<Option<u8>, String> {
        Ok(enabled.first().copied())
    }
}

fn plain(dir: &Path) -> Duration {
    let t = Instant::now();
    let status = Command::new(RACELAB)
        .arg("__gate-bench")
        .arg(dir.join("bench"))
        .arg(CALLS.to_string())
        .status()
        .expect("run the benchmark program");
    assert!(status.success(), "the benchmark program failed");
    t.elapsed()
}

fn gated(prog: &Program, opts: &GateOptions) -> Duration {
    let t = Instant::now();
    let exec = execute(prog, opts, &mut First).expect("the gated run");
    // Every call is one gated step: the CALLS, after the open and write that create the file.
    assert_eq!(
        exec.choices.len() as u64,
        CALLS + 2,
        "every call of the program is one gated step"
    );
    assert!(
        exec.broken.is_empty(),
        "the benchmark program ended badly: {:?}",
        exec.broken
    );
    t.elapsed()
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let prog = program();
    let mut opts =
        GateOptions::new(Path::new("gate-bench.race"), dir.path()).expect("gate options");
    opts.racelab = RACELAB.into();
    opts.max_steps = CALLS as usize + 10;

    let mut group = c.benchmark_group("gate");
    group.throughput(Throughput::Elements(CALLS));
    group.sample_size(10);
    group.bench_function("ungated", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| plain(dir.path())).sum())
    });
    group.bench_function("gated", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| gated(&prog, &opts)).sum())
    });
    group.finish();

    // The ratio, measured here and now: medians of interleaved runs.
    let mut p: Vec<Duration> = Vec::new();
    let mut g: Vec<Duration> = Vec::new();
    for _ in 0..7 {
        p.push(plain(dir.path()));
        g.push(gated(&prog, &opts));
    }
    p.sort();
    g.sort();
    let (p, g) = (p[3], g[3]);
    let rate = |d: Duration| CALLS as f64 / d.as_secs_f64();
    println!(
        "gate: {CALLS} calls ungated {:.0} calls/s, gated {:.0} calls/s ({:.1}x slower); the gate adds {:.1} us per call",
        rate(p),
        rate(g),
        g.as_secs_f64() / p.as_secs_f64(),
        (g.as_secs_f64() - p.as_secs_f64()) * 1e6 / CALLS as f64
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);

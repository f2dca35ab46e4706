//! Lock throughput: acquire+release cycles per second of every `racelab_locks` strategy, per
//! filesystem and contention (1, 2, 4, 8 threads, and as many `racelab __lockbench` processes),
//! beside the physical floor (`lockfile::floor`: the raw system calls of one uncontended
//! acquire/release, measured in the same run). Criterion times the cycles; the wait of every
//! acquire goes into a histogram written to `$RACELAB_BENCH_LOCKS_OUT/waits.json` (p50/p99/max).
//!
//! `cargo xtask bench-locks` runs this on every filesystem it can bring up and renders the report;
//! run alone (`cargo bench -p racelab-locks --bench locks`, after `cargo build --release -p racelab`) it uses one temp dir. Environment:
//! - `RACELAB_BENCH_LOCKS_DIRS=name=dir,name=dir`: the filesystems (default: a temp dir);
//! - `RACELAB_BENCH_LOCKS_QUICK=1`: contention 1 and 4 only, shorter measurements;
//! - `RACELAB_BENCH_LOCKS_OUT=dir`: where waits.json goes (default `target/bench-locks/raw`).
//!
//! Criterion's time per iteration is the time per cycle with all owners together, so its
//! throughput is the lock's aggregate cycles/s. Process start-up is not counted: owners start at a
//! common CLOCK_MONOTONIC instant and the time runs from there to the last release.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use racelab_locks::floor::Floor;
use racelab_locks::stats::Histogram;
use racelab_locks::{worker, Strategy};

/// The `racelab` binary whose `__lockbench` subcommand runs the process owners: `$RACELAB_BIN`,
/// else the one in this benchmark's profile directory (the `racelab` package is above this
/// crate, so cargo cannot build it for us: `cargo xtask bench-locks` builds it first).
fn racelab_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("RACELAB_BIN") {
        return PathBuf::from(p);
    }
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("racelab")));
    match beside {
        Some(p) if p.is_file() => p,
        _ => {
            eprintln!("error: no racelab binary beside this benchmark; build it first (cargo build --release -p racelab) or set RACELAB_BIN");
            std::process::exit(2);
        }
    }
}

/// Wait histograms per `fs/strategy/mode-N`, written out after every group.
static WAITS: Mutex<BTreeMap<String, Histogram>> = Mutex::new(BTreeMap::new());

fn out_dir() -> PathBuf {
    std::env::var_os("RACELAB_BENCH_LOCKS_OUT").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/bench-locks/raw"),
        PathBuf::from,
    )
}

fn save_waits() {
    let dir = out_dir();
    let waits = WAITS.lock().unwrap_or_else(|p| p.into_inner());
    // Percentiles, not the histograms: the reader (xtask) needs no racelab types.
    let summary: BTreeMap<&String, serde_json::Value> = waits
        .iter()
        .map(|(k, h)| (k, serde_json::json!({"count": h.count, "p50_ns": h.quantile(0.5), "p99_ns": h.quantile(0.99), "max_ns": h.max, "mean_ns": h.mean()})))
        .collect();
    let written = std::fs::create_dir_all(&dir).and_then(|()| {
        std::fs::write(
            dir.join("waits.json"),
            serde_json::to_vec_pretty(&summary).unwrap_or_default(),
        )
    });
    if let Err(e) = written {
        eprintln!(
            "warning: could not write {}: {e} (wait percentiles will be missing from the report)",
            dir.join("waits.json").display()
        );
    }
}

fn filesystems() -> Vec<(String, PathBuf, Option<tempfile::TempDir>)> {
    match std::env::var("RACELAB_BENCH_LOCKS_DIRS") {
        Ok(list) if !list.trim().is_empty() => list
            .split(',')
            .filter_map(|e| match e.split_once('=') {
                Some((name, dir)) => Some((name.to_string(), PathBuf::from(dir), None)),
                None => {
                    eprintln!(
                        "warning: ignoring `{e}` in RACELAB_BENCH_LOCKS_DIRS: expected name=dir"
                    );
                    None
                }
            })
            .collect(),
        _ => match tempfile::Builder::new()
            .prefix("racelab-bench-locks-")
            .tempdir()
        {
            Ok(t) => vec![("tempdir".into(), t.path().to_path_buf(), Some(t))],
            Err(e) => {
                eprintln!("error: cannot create a temp dir to benchmark locks in: {e}; set TMPDIR or RACELAB_BENCH_LOCKS_DIRS");
                vec![]
            }
        },
    }
}

fn locks(c: &mut Criterion) {
    let quick = std::env::var_os("RACELAB_BENCH_LOCKS_QUICK").is_some_and(|v| v == "1");
    let contention: &[usize] = if quick { &[1, 4] } else { &[1, 2, 4, 8] };
    for (fs, dir, _guard) in filesystems() {
        for s in Strategy::ALL {
            let lock = s.path_in(&dir, "bench");
            let mut g = c.benchmark_group(format!("locks-{fs}-{}", s.name()));
            g.throughput(Throughput::Elements(1));
            g.sample_size(10);
            g.warm_up_time(Duration::from_millis(if quick { 100 } else { 300 }));
            g.measurement_time(Duration::from_millis(if quick { 400 } else { 1000 }));
            match Floor::new(s, &dir.join(format!("floor.{}", s.name()))) {
                Ok(floor) => {
                    g.bench_function("floor", |b| {
                        b.iter(|| {
                            floor
                                .cycle()
                                .unwrap_or_else(|e| panic!("{fs}/{}: floor: {e}", s.name()))
                        })
                    });
                }
                Err(e) => eprintln!("warning: {fs}/{}: no floor: {e}", s.name()),
            }
            for &n in contention {
                for procs in [false, true] {
                    if (procs && !s.excludes_processes()) || (!procs && !s.excludes_threads()) {
                        continue;
                    }
                    let mode = if procs { "procs" } else { "threads" };
                    let key = format!("{fs}/{}/{mode}-{n}", s.name());
                    g.bench_function(format!("{mode}-{n}"), |b| {
                        b.iter_custom(|iters| {
                            let each = iters.div_ceil(n as u64).max(1);
                            let opts = worker::WorkerOpts {
                                strategy: s,
                                lock: lock.clone(),
                                iters: each,
                                counter: None,
                                lifetime: None,
                                timeout: Some(Duration::from_secs(60)),
                                // Criterion sizes a sample by wall time, which here includes
                                // starting the owners: left alone it would ask for a few
                                // cycles per fresh process and measure its cold start.
                                min_time: Some(Duration::from_millis(if quick { 40 } else { 100 })),
                            };
                            let r = if procs {
                                worker::run_processes(&racelab_bin(), &opts, n)
                            } else {
                                worker::run_threads(&opts, n)
                            };
                            let r = r.unwrap_or_else(|e| panic!("{key}: {e}"));
                            WAITS
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .entry(key.clone())
                                .or_default()
                                .merge(&r.waits);
                            // Time for `iters` cycles, from the cycles actually run.
                            Duration::from_nanos(
                                (r.elapsed_ns as u128 * iters as u128 / r.acquired.max(1) as u128)
                                    as u64,
                            )
                        })
                    });
                }
            }
            g.finish();
            save_waits();
        }
        for s in Strategy::ALL {
            // Kernel locks keep their lock file (see lockfile::simple); the floor's files too.
            let _ = std::fs::remove_file(s.path_in(&dir, "bench"));
            let _ = std::fs::remove_file(dir.join(format!("floor.{}", s.name())));
        }
    }
}

criterion_group!(benches, locks);
criterion_main!(benches);

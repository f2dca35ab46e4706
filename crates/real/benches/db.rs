//! Stress runs per second on real servers (#23 goal 4: at least 20 on PostgreSQL and on MariaDB
//! for every patchwork variant, also when statements block).
//!
//! Each iteration is `racelab stress`'s campaign of `RUNS` runs on two jobs: every run puts the
//! job's database back to the setup's state, connects the actors, runs them free and judges the
//! invariants. The servers come from `$RACELAB_POSTGRES_URL` / `$RACELAB_MARIADB_URL`
//! (`eval "$(cargo xtask db up --env)"`); a server that is not given is left out, saying so.
//! At the end each variant's runs/s on each server is printed from one back-to-back pass.
//!
//! Run with `cargo bench -p racelab --bench db`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use racelab_lang::ir::Program;
use racelab_real::backend::db::stress::stress;
use racelab_real::backend::db::DbSpec;

/// Runs per campaign: enough that a database's creation (once per job) does not count.
const RUNS: u64 = 40;
const JOBS: usize = 2;

/// Every patchwork scenario's variants, as (file, variant).
const VARIANTS: &[(&str, &str)] = &[
    ("patchwork-deadlock-1213", "save"),
    ("patchwork-deadlock-1213", "save-read-committed"),
    ("patchwork-deadlock-1213", "objects-create"),
    ("patchwork-person", "check-then-insert"),
    ("patchwork-person", "in-a-transaction"),
    ("patchwork-person", "get-or-create"),
    ("patchwork-person-innodb", "get-or-create-in-a-transaction"),
    ("patchwork-person-innodb", "read-committed"),
    ("patchwork-series", "find-or-create-2018"),
    ("patchwork-series", "unique-retry"),
    ("patchwork-series", "second-query"),
];

fn program(file: &str, variant: &str) -> Arc<Program> {
    let path = format!("{}/../../scenarios/{file}.race", env!("CARGO_MANIFEST_DIR"));
    let src = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let sc = racelab_core::lang::compile(&path, &src).unwrap_or_else(|e| panic!("{path}: {e:?}"));
    Arc::new(
        sc.variant(variant)
            .expect("the scenario has this variant")
            .clone(),
    )
}

/// The servers given in the environment.
fn servers() -> Vec<DbSpec> {
    ["postgres", "mariadb"]
        .into_iter()
        .filter_map(|name| match DbSpec::parse(name) {
            Ok(spec) => Some(spec),
            Err(why) => {
                eprintln!("db bench: leaving out db:{name}: {why}");
                None
            }
        })
        .collect()
}

fn campaign(prog: &Arc<Program>, spec: &DbSpec) -> f64 {
    let r = stress(prog, spec, RUNS, JOBS, 7)
        .unwrap_or_else(|e| panic!("{}/{} on {}: {e}", prog.scenario, prog.variant, spec.name()));
    r.runs as f64 / r.seconds
}

fn bench(c: &mut Criterion) {
    let servers = servers();
    let mut group = c.benchmark_group("db-stress");
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(3));
    group.throughput(Throughput::Elements(RUNS));
    for spec in &servers {
        for (file, variant) in VARIANTS {
            let prog = program(file, variant);
            group.bench_function(format!("{}/{file}/{variant}", spec.name()), |b| {
                b.iter(|| campaign(&prog, spec))
            });
        }
    }
    group.finish();
    for spec in &servers {
        let start = Instant::now();
        let rates: Vec<String> = VARIANTS
            .iter()
            .map(|(file, variant)| {
                let rate = campaign(&program(file, variant), spec);
                format!("  {file}/{variant}: {rate:.1} runs/s")
            })
            .collect();
        eprintln!(
            "{} ({RUNS} runs x {} variants in {:.1}s, goal 20 runs/s each):\n{}",
            spec.name(),
            VARIANTS.len(),
            start.elapsed().as_secs_f64(),
            rates.join("\n")
        );
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);

//! `racelab __lockbench`: one owner of a lock contention run (the benchmarks, the flufl.lock
//! interop test); its report on stdout as JSON.

use std::path::PathBuf;
use std::time::Duration;

use super::output::{BAD_INPUT, INFRASTRUCTURE};

#[derive(clap::Args)]
pub(crate) struct LockBenchArgs {
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
}

/// Runs the owner's cycles and prints its report; 1 if the lock failed it.
pub(crate) fn run(args: LockBenchArgs) -> u8 {
    use racelab_locks::{worker, MutexLock, Strategy};
    let strategy = match Strategy::parse(&args.strategy) {
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
        lock: args.lock,
        iters: args.iters,
        counter: args.counter,
        lifetime: args.lifetime_ms.map(Duration::from_millis),
        timeout: args.timeout_ms.map(Duration::from_millis),
        min_time: args.min_ms.map(Duration::from_millis),
    };
    match worker::run(&opts, &MutexLock::new(), args.start_ns) {
        Ok(report) => match serde_json::to_string(&report) {
            Ok(json) => {
                println!("{json}");
                0
            }
            Err(e) => {
                eprintln!("error: encoding the report: {e}");
                INFRASTRUCTURE
            }
        },
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

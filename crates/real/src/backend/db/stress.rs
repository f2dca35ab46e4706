//! Stress runs on a real database: the scenario's actors as free-running threads, each with its
//! own real connection, many runs, reproduction rates with Wilson intervals.
//!
//! No schedule is imposed: every actor has a driver thread that takes its next step whenever it
//! can, after a random pause (a yield or up to 200 µs), so which statement reaches the server
//! first is decided by thread timing. The interpreter keeps the rest of the world under a mutex,
//! and a statement is executed while that mutex is held (the machine's SQL step is synchronous:
//! `Machine::begin`/`complete` hand out only filesystem operations), so statements of different
//! actors do not overlap *inside* the server except where one waits for a lock: a waiting
//! statement is reported blocked and stays pending in the server while the others go on. Each
//! parallel job has its own database, emptied and set up again before every run.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use rayon::prelude::*;

use super::{Backend, DbInfo, DbSpec, RealDbWorld};
use crate::backend::stress::{tally, RunOutcome, Stress};
use racelab_core::error::Error;
use racelab_core::model::Machine;
use racelab_lang::ir::Program;

/// What a stress campaign on a real database measured: `env` is the server and its levels.
pub(crate) type DbStress = Stress<DbInfo>;

/// One parallel job: the database it used and its runs, by run number.
type JobOutcome = (DbInfo, Vec<(u64, RunOutcome)>);

/// Runs `runs` free-running executions of `prog` on `spec`, `jobs` at a time. Bad input when
/// the variant has no database; what the server or the run could not do is infrastructure.
pub fn stress(
    prog: &Arc<Program>,
    spec: &DbSpec,
    runs: u64,
    jobs: usize,
    seed: u64,
) -> Result<DbStress, Error> {
    if prog.database.is_none() {
        return Err(Error::bad_input(format!(
            "{}/{} declares no database; a database backend has nothing to run",
            prog.scenario, prog.variant
        )));
    }
    let jobs = jobs.clamp(1, runs.max(1) as usize);
    let start = Instant::now();
    let chunks: Vec<Vec<u64>> = (0..jobs)
        .map(|j| (0..runs).filter(|i| *i as usize % jobs == j).collect())
        .collect();
    let results: Vec<Result<JobOutcome, Error>> = chunks
        .into_par_iter()
        .map(|chunk| {
            let backend = spec.open(prog)?;
            let info = backend.info();
            let mut out = Vec::with_capacity(chunk.len());
            for i in chunk {
                if let Some(sig) = crate::backend::cancel::requested() {
                    return Err(Error::infrastructure(format!(
                        "interrupted by signal {sig}"
                    )));
                }
                out.push((i, one_run(prog, &backend, seed.wrapping_add(i))?));
            }
            Ok((info, out))
        })
        .collect();
    let seconds = start.elapsed().as_secs_f64();
    let mut info = None;
    let mut all = Vec::new();
    for r in results {
        let (i, o) = r?;
        info.get_or_insert(i);
        all.extend(o);
    }
    all.sort_by_key(|(i, _)| *i);
    let n = all.len() as u64;
    let numbered: Vec<(u64, &RunOutcome)> = all.iter().map(|(i, o)| (*i, o)).collect();
    let (rates, first_failure) = tally(prog, &numbered);
    let info = info.ok_or("no run took place")?.with_scenario_levels(prog);
    Ok(Stress {
        runs: n,
        seconds,
        rates,
        first_failure,
        env: info,
    })
}

fn one_run(
    prog: &Arc<Program>,
    backend: &Arc<dyn Backend>,
    seed: u64,
) -> Result<RunOutcome, String> {
    backend.reset()?;
    let world = RealDbWorld::new(prog, Arc::clone(backend))?;
    let mut machine = Machine::with_fs(Arc::clone(prog), world);
    machine.record_details();
    let shared = Arc::new((Mutex::new(machine), Condvar::new()));
    let handles: Vec<_> = (0..prog.actors.len())
        .map(|a| {
            let shared = Arc::clone(&shared);
            let mut chaos = Chaos(seed.wrapping_mul(31).wrapping_add(a as u64) | 1);
            std::thread::Builder::new()
                .name(format!("racelab-dbstress-{a}"))
                .spawn(move || drive(a, &shared, &mut chaos))
        })
        .collect::<Result<_, _>>()
        .map_err(|e| format!("cannot start actor threads: {e}"))?;
    for h in handles {
        h.join()
            .map_err(|_| "an actor thread panicked".to_string())?;
    }
    let m = shared.0.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(why) = m.infrastructure_error() {
        return Err(why.to_string());
    }
    let broken: Vec<String> = m.broken().iter().map(|b| b.invariant.clone()).collect();
    let trace = (!broken.is_empty()).then(|| racelab_core::replay::trace_of(&*m));
    Ok(RunOutcome {
        broken,
        landed: Vec::new(),
        schedule: m.schedule().to_vec(),
        trace,
    })
}

/// One actor's driver: whenever it is runnable, pause at random, then take its step.
fn drive(a: usize, shared: &(Mutex<Machine<RealDbWorld>>, Condvar), chaos: &mut Chaos) {
    let (lock, cv) = shared;
    loop {
        chaos.pause();
        let mut m = lock.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if m.is_finished() || m.status(a).is_over() {
                cv.notify_all();
                return;
            }
            if m.is_runnable(a) {
                break;
            }
            m = cv.wait(m).unwrap_or_else(|e| e.into_inner());
        }
        m.step(a);
        cv.notify_all();
    }
}

/// xorshift64* pauses: nothing half the time, a yield or a sleep of up to 200 µs otherwise.
struct Chaos(u64);

impl Chaos {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn pause(&mut self) {
        match self.next() % 4 {
            0 | 1 => {}
            2 => std::thread::yield_now(),
            _ => std::thread::sleep(Duration::from_micros(self.next() % 200)),
        }
    }
}

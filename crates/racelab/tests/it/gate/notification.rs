//! Seccomp user notification keeps the gate's semantics: the same schedule gives the same step
//! table (operations, results, virtual times, broken invariants) whether the stat, utime, link,
//! unlink and rename steps come as notifications that racelab makes itself or as ptrace stops.

use racelab_lang::ir::Program;
use racelab_real::gate::run::{execute, Chooser, Execution, GateOptions, Last};

use super::builtin;

/// A fixed pseudo-random schedule (splitmix64 from a seed): the same choices on both runs as
/// long as both offer the same choices, which is what is checked.
struct Seeded(u64);

impl Seeded {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

impl Chooser for Seeded {
    fn next_choice(&mut self, runnable: &[usize], _last: Option<Last>) -> Option<usize> {
        let i = (self.next() % runnable.len() as u64) as usize;
        runnable.get(i).copied()
    }
    fn next_thread(&mut self, _actor: usize, ready: usize) -> Option<usize> {
        Some((self.next() % ready as u64) as usize)
    }
}

/// `prog` run with schedule `seed` under each mechanism: (ptrace only, notification).
fn both(prog: &Program, opts: &GateOptions, seed: u64) -> (Execution, Execution) {
    let mut ptrace = opts.clone();
    ptrace.ptrace_only = true;
    let mut notify = opts.clone();
    notify.ptrace_only = false;
    let a = execute(prog, &ptrace, &mut Seeded(seed)).expect("the run through ptrace");
    let b = execute(prog, &notify, &mut Seeded(seed)).expect("the run through notification");
    (a, b)
}

/// The step table as text, one step a line, with the process ids that lock libraries put in
/// their claim files' names (`list.lock|host|PID|random`) masked: each run has new processes.
fn table(e: &Execution) -> Vec<String> {
    e.trace
        .iter()
        .map(|s| {
            format!(
                "{:?} {} {} -> {} {:?}",
                s.actor,
                s.time_ms,
                mask_pids(&s.operation),
                s.result,
                s.broke
            )
        })
        .collect()
}

/// `a|b|123|c` as `a|b|PID|c`: every all-digit field between two `|`.
fn mask_pids(operation: &str) -> String {
    let parts: Vec<&str> = operation.split('|').collect();
    let last = parts.len().saturating_sub(1);
    parts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let digits = !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
            if i > 0 && i < last && digits {
                "PID"
            } else {
                p
            }
        })
        .collect::<Vec<_>>()
        .join("|")
}

fn assert_same(stem: &str, variant: &str, seeds: std::ops::Range<u64>, python: bool) {
    let (prog, mut opts, _base) = builtin(stem, variant);
    if python {
        let python = crate::lockfile::python();
        opts.path_prefix = python.parent().map(std::path::Path::to_path_buf);
    }
    let mut notified = 0;
    for seed in seeds {
        let (a, b) = both(&prog, &opts, seed);
        assert_eq!(
            a.notified_steps, 0,
            "ptrace only: no step through notification"
        );
        assert_eq!(
            table(&a),
            table(&b),
            "{stem} {variant}, schedule {seed}: the same steps and results either way"
        );
        assert_eq!(a.choices, b.choices, "the same choices, so the same token");
        assert_eq!(a.broken, b.broken);
        assert_eq!(a.elapsed_ms, b.elapsed_ms);
        notified += b.notified_steps;
    }
    assert!(
        notified > 0,
        "{stem} {variant}: some steps came through notification (the kernel here has a listener)"
    );
}

#[test]
fn flufl_lock_takes_the_same_steps_through_notification_as_through_ptrace() {
    // flufl.lock's cycle: stat, utimensat, link, unlink, open/read/write; crash lands a fault.
    assert_same("flufl-lock", "crash", 0..4, true);
}

#[test]
fn linklock_takes_the_same_steps_through_notification_as_through_ptrace() {
    assert_same("racelab-linklock", "crash", 0..4, false);
}

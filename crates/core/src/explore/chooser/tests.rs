//! The choosers on toy executions and on the model's machine.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::*;
use crate::model::Machine;

/// Runs one execution of a toy program: `lengths[a]` steps per actor, any runnable actor may
/// go. Returns the schedule, or None when the chooser has no more executions.
fn toy_execution(chooser: &mut dyn Chooser, lengths: &[usize]) -> Option<Vec<usize>> {
    if !chooser.new_execution() {
        return None;
    }
    let mut left = lengths.to_vec();
    let mut schedule = Vec::new();
    loop {
        let runnable: Vec<usize> = (0..left.len()).filter(|&a| left[a] > 0).collect();
        if runnable.is_empty() {
            break;
        }
        let Some(c) = chooser.next_choice(&runnable, None) else {
            break;
        };
        assert!(runnable.contains(&c), "chose {c} among {runnable:?}");
        left[c] -= 1;
        schedule.push(c);
    }
    chooser.end_execution();
    Some(schedule)
}

#[test]
fn dfs_enumerates_every_interleaving_once_then_stops() {
    let mut dfs = Dfs::new(1);
    let mut seen = BTreeSet::new();
    while let Some(s) = toy_execution(&mut dfs, &[2, 2, 1]) {
        assert!(seen.insert(s.clone()), "{s:?} twice");
    }
    // 5! / (2! 2! 1!) interleavings of three actors' 2, 2 and 1 steps.
    assert_eq!(seen.len(), 30);
    assert!(dfs.exhausted());
    assert_eq!(dfs.divergences(), 0);
    assert!(!dfs.new_execution(), "an exhausted search stays exhausted");
}

#[test]
fn dfs_enumerates_thread_choices_as_choice_points() {
    // One actor whose one step has two threads to pick from, then one plain step: two
    // executions, thread 0 and thread 1.
    let mut dfs = Dfs::new(1);
    let mut threads = Vec::new();
    while dfs.new_execution() {
        assert_eq!(dfs.next_choice(&[0], None), Some(0));
        threads.push(dfs.next_thread(0, 2).expect("a thread"));
        assert_eq!(dfs.next_choice(&[0], None), Some(0));
        dfs.end_execution();
    }
    assert_eq!(threads, [0, 1]);
}

#[test]
fn dfs_cuts_an_execution_that_offers_other_choices_than_its_prefix_did() {
    let mut dfs = Dfs::new(1);
    assert!(dfs.new_execution());
    assert_eq!(dfs.next_choice(&[0, 1], None), Some(0));
    assert_eq!(dfs.next_choice(&[2, 3], None), Some(2));
    dfs.end_execution();
    assert!(dfs.new_execution());
    // The replayed prefix's second point now offers only 5: nothing below it can be trusted.
    assert_eq!(dfs.next_choice(&[0, 1], None), Some(0));
    assert_eq!(dfs.next_choice(&[5], None), None);
    dfs.end_execution();
    assert_eq!(dfs.divergences(), 1);
    // What is left to try is the first point's other choice.
    assert!(dfs.new_execution());
    assert_eq!(dfs.next_choice(&[0, 1], None), Some(1));
}

#[test]
fn dfs_repeats_its_random_words_in_every_execution() {
    let mut dfs = Dfs::new(7);
    let mut words = Vec::new();
    while dfs.new_execution() {
        words.push(dfs.next_u64());
        dfs.next_choice(&[0, 1], None);
        dfs.end_execution();
    }
    assert_eq!(words.len(), 2);
    assert_eq!(words[0], words[1]);
}

/// A variant that holds, with a fault and every interleaving finite.
const APPENDS: &str = r#"
scenario appends {
  log events
  actor alpha {
    append events "hello from alpha"
    append events "bye from alpha"
  }
  actor beta {
    append events "hello from beta"
    append events "bye from beta"
  }
  invariant logged: at end count(events) <= 4
  variant crash {
    fault die: crash alpha
    expect holds
  }
}
"#;

fn appends() -> Arc<racelab_lang::ir::Program> {
    let sc = crate::lang::compile("appends.race", APPENDS)
        .unwrap_or_else(|e| panic!("{}", crate::lang::render_plain(&e)));
    Arc::new(sc.variant("crash").expect("variant crash").clone())
}

/// Steps a fresh machine as `chooser` says; the schedule, or None when it has no more.
fn machine_execution(
    prog: &Arc<racelab_lang::ir::Program>,
    chooser: &mut dyn Chooser,
) -> Option<Vec<u8>> {
    if !chooser.new_execution() {
        return None;
    }
    let mut m = Machine::new(Arc::clone(prog));
    while !m.is_finished() {
        let runnable: Vec<usize> = m.runnable().collect();
        let Some(c) = chooser.next_choice(&runnable, None) else {
            break;
        };
        m.step(c);
    }
    chooser.end_execution();
    Some(m.schedule().to_vec())
}

#[test]
fn dfs_on_the_machine_covers_the_schedules_the_stateful_search_counts() {
    use crate::explore::{Budget, EngineConfig, EngineKind};
    let prog = appends();
    let mut dfs = Dfs::new(1);
    let mut schedules = BTreeSet::new();
    while let Some(s) = machine_execution(&prog, &mut dfs) {
        assert!(schedules.insert(s.clone()), "{s:?} twice");
    }
    let cfg = EngineConfig::new(
        EngineKind::NativeDfs,
        Budget::new(1_000_000, std::time::Duration::from_secs(60)),
    )
    .workers(1);
    let proof = crate::explore::native::explore(&prog, &cfg);
    assert!(proof.exhaustive, "{}", proof.bound);
    // native-dfs counts the complete schedules over its state graph; the stateless search
    // runs each one.
    assert_eq!(Some(schedules.len() as u128), proof.covered);
    assert!(
        schedules.len() > 6,
        "the fault adds schedules: {}",
        schedules.len()
    );
}

#[test]
fn replay_follows_a_schedule_then_reports_where_it_diverged() {
    let prog = appends();
    let mut random = Random::new(3);
    let recorded = machine_execution(&prog, &mut random).expect("random never runs out");
    let mut follow = Replay::new(&recorded);
    assert_eq!(
        machine_execution(&prog, &mut follow),
        Some(recorded.clone())
    );
    assert_eq!(follow.divergence(), None);
    assert_eq!(follow.followed(), recorded.len());
    assert_eq!(
        machine_execution(&prog, &mut follow),
        None,
        "a schedule is one execution"
    );

    // A schedule that has worker 1 step after it has finished.
    let mut wrong = vec![1u8; 3];
    wrong.insert(0, 0);
    let mut follow = Replay::new(&wrong);
    machine_execution(&prog, &mut follow).expect("one execution");
    match follow.divergence() {
        Some(Divergence::Choice {
            step,
            wanted,
            runnable,
        }) => {
            assert_eq!((*step, *wanted), (3, 1));
            assert!(!runnable.contains(&1), "{runnable:?}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn replay_refuses_a_thread_the_process_does_not_have() {
    let steps = [0u8, 2];
    let mut follow = Replay::new(&steps);
    assert!(follow.new_execution());
    assert_eq!(follow.next_choice(&[0, 1], None), Some(0));
    assert_eq!(follow.next_thread(0, 2), None);
    assert_eq!(
        follow.divergence(),
        Some(&Divergence::Thread {
            step: 1,
            wanted: 2,
            actor: 0,
            ready: 2
        })
    );
}

#[test]
fn random_and_pct_choose_only_runnable_choices_and_repeat_with_their_seed() {
    let run = |make: &dyn Fn() -> Box<dyn Chooser>| -> Vec<Vec<usize>> {
        let mut c = make();
        (0..20)
            .map(|_| toy_execution(&mut *c, &[3, 2, 4]).expect("never runs out"))
            .collect()
    };
    for make in [
        &(|| Box::new(Random::new(9)) as Box<dyn Chooser>) as &dyn Fn() -> Box<dyn Chooser>,
        &|| Box::new(Pct::new(9, 3, 3)),
        &|| Box::new(Walk::new(9, 3, 16)),
    ] {
        let first = run(make);
        assert_eq!(first, run(make), "same seed, same executions");
        let distinct: BTreeSet<_> = first.iter().collect();
        assert!(distinct.len() > 1, "twenty executions all alike: {first:?}");
    }
}

#[test]
fn pct_of_depth_one_runs_each_execution_in_one_priority_order() {
    // Without change points PCT never preempts: each actor runs to its end, in priority order.
    let mut pct = Pct::new(5, 1, 3);
    for _ in 0..10 {
        let s = toy_execution(&mut pct, &[2, 2, 2]).expect("never runs out");
        let switches = s.windows(2).filter(|w| w[0] != w[1]).count();
        assert_eq!(switches, 2, "{s:?}");
    }
}

#[test]
fn the_walk_keeps_the_last_actor_unless_it_preempts() {
    let mut walk = Walk::new(11, 2, 16);
    let mut stayed = 0;
    for _ in 0..1000 {
        let last = Some(Last {
            actor: 1,
            shared: false,
        });
        if walk.next_choice(&[0, 1], last) == Some(1) {
            stayed += 1;
        }
    }
    // Three times in four after a step nobody else sees.
    assert!((650..850).contains(&stayed), "{stayed}");
}

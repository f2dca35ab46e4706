//! Which interleavings of a spec's sessions to run: every merge of the sessions' steps when
//! they fit the budget, else a seeded random sample of them. A plan is whole permutations
//! drawn up front (isolationtester runs a listed order), not a choice per step, so it is no
//! `Chooser`; its draws use the core's splitmix generator.

use std::collections::BTreeSet;

use super::super::parse::{PermStep, Spec};
use racelab_core::rng::Rng;

/// The interleavings to run for a spec.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The spec's listed permutations, with their markers.
    pub listed: Vec<Vec<PermStep>>,
    /// The unlisted interleavings chosen to run.
    pub unlisted: Vec<Vec<PermStep>>,
    /// How many unlisted interleavings exist (saturating).
    pub unlisted_total: u64,
    /// Every unlisted interleaving is in `unlisted`.
    pub exhaustive: bool,
}

/// Each session's steps in a permutation, in order.
fn programs(spec: &Spec, perm: &[PermStep]) -> Vec<Vec<usize>> {
    let mut p = vec![Vec::new(); spec.sessions.len()];
    for s in perm {
        p[s.session].push(s.step);
    }
    p
}

fn key(perm: &[PermStep]) -> Vec<(usize, usize)> {
    perm.iter().map(|s| (s.session, s.step)).collect()
}

/// The number of merges of sequences of these lengths (a multinomial), saturating.
fn merges(lengths: &[usize]) -> u64 {
    let mut total: u64 = 0;
    let mut count: u64 = 1;
    for &n in lengths {
        for k in 1..=n as u64 {
            total += 1;
            count = count.saturating_mul(total) / k;
        }
    }
    count
}

/// The interleaving that takes sessions in the order `order` (each session's steps in turn).
fn interleave(program: &[Vec<usize>], order: &[usize]) -> Vec<PermStep> {
    let mut next = vec![0; program.len()];
    order
        .iter()
        .map(|&s| {
            let step = program[s][next[s]];
            next[s] += 1;
            PermStep {
                session: s,
                step,
                blockers: vec![],
            }
        })
        .collect()
}

/// Every merge of the sessions' programs, lowest session first (as isolationtester orders them).
fn every_merge(program: &[Vec<usize>]) -> Vec<Vec<PermStep>> {
    let mut out = Vec::new();
    let mut left: Vec<usize> = program.iter().map(Vec::len).collect();
    let mut order = Vec::new();
    fn walk(
        program: &[Vec<usize>],
        left: &mut [usize],
        order: &mut Vec<usize>,
        out: &mut Vec<Vec<PermStep>>,
    ) {
        if left.iter().all(|&n| n == 0) {
            out.push(interleave(program, order));
            return;
        }
        for s in 0..left.len() {
            if left[s] > 0 {
                left[s] -= 1;
                order.push(s);
                walk(program, left, order, out);
                order.pop();
                left[s] += 1;
            }
        }
    }
    walk(program, &mut left, &mut order, &mut out);
    out
}

/// A merge drawn uniformly: each position goes to a session with probability proportional to
/// the steps it has left.
fn random_merge(program: &[Vec<usize>], rng: &mut Rng) -> Vec<PermStep> {
    let mut left: Vec<usize> = program.iter().map(Vec::len).collect();
    let mut order = Vec::new();
    loop {
        let total: usize = left.iter().sum();
        if total == 0 {
            return interleave(program, &order);
        }
        let mut pick = rng.below(total);
        let s = left
            .iter()
            .position(|&n| {
                if pick < n {
                    true
                } else {
                    pick -= n;
                    false
                }
            })
            .expect("a pick below the total lands in some session");
        left[s] -= 1;
        order.push(s);
    }
}

/// The unlisted interleavings to run: every one when there are at most `budget`, otherwise
/// `budget` of them drawn with `seed`.
pub fn plan(spec: &Spec, budget: usize, seed: u64) -> Plan {
    let listed: Vec<Vec<PermStep>> = spec.permutations.iter().map(|p| p.steps.clone()).collect();
    let listed_keys: BTreeSet<Vec<(usize, usize)>> = listed.iter().map(|p| key(p)).collect();
    let mut program_sets: Vec<Vec<Vec<usize>>> = Vec::new();
    for p in &listed {
        let prog = programs(spec, p);
        if !program_sets.contains(&prog) {
            program_sets.push(prog);
        }
    }
    // Listed permutations of each program set (a permutation listed twice counts once).
    let mut listed_in = vec![0u64; program_sets.len()];
    for k in &listed_keys {
        let perm: Vec<PermStep> = k
            .iter()
            .map(|&(session, step)| PermStep {
                session,
                step,
                blockers: vec![],
            })
            .collect();
        let prog = programs(spec, &perm);
        if let Some(i) = program_sets.iter().position(|p| *p == prog) {
            listed_in[i] += 1;
        }
    }
    let unlisted_total = program_sets
        .iter()
        .zip(&listed_in)
        .map(|(p, l)| merges(&p.iter().map(Vec::len).collect::<Vec<_>>()).saturating_sub(*l))
        .fold(0u64, u64::saturating_add);
    let mut unlisted = Vec::new();
    let exhaustive = unlisted_total <= budget as u64;
    if exhaustive {
        for p in &program_sets {
            unlisted.extend(
                every_merge(p)
                    .into_iter()
                    .filter(|m| !listed_keys.contains(&key(m))),
            );
        }
    } else if budget > 0 {
        let mut rng =
            Rng(seed ^ u64::from(racelab_core::lang::fnv32(0x811c_9dc5, b"pg-isolation")));
        let mut seen = listed_keys.clone();
        let mut tries = 0;
        // Program sets with unlisted interleavings left, in turn.
        let open: Vec<usize> = (0..program_sets.len())
            .filter(|&i| {
                merges(&program_sets[i].iter().map(Vec::len).collect::<Vec<_>>()) > listed_in[i]
            })
            .collect();
        while unlisted.len() < budget && tries < budget * 50 && !open.is_empty() {
            let set = open[tries % open.len()];
            tries += 1;
            let m = random_merge(&program_sets[set], &mut rng);
            if seen.insert(key(&m)) {
                unlisted.push(m);
            }
        }
    }
    Plan {
        listed,
        unlisted,
        unlisted_total,
        exhaustive,
    }
}

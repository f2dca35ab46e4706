//! Collecting findings across executions, and deciding when an exploration can stop.

use std::sync::Arc;

use crate::model::Machine;
use crate::schedule::Schedule;
use racelab_lang::ir::{Expected, Program};

/// An invariant broken by some execution, with the shortest schedule prefix that breaks it.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub invariant: String,
    pub message: String,
    pub schedule: Schedule,
    /// Executions explored up to and including the one that broke it.
    pub after: u64,
}

/// The result of one engine run.
#[derive(Debug, Clone)]
pub struct Exploration {
    pub engine: &'static str,
    pub schedules: u64,
    pub seconds: f64,
    /// True when the engine covered its whole search space within its bound.
    pub exhaustive: bool,
    pub findings: Vec<Found>,
    pub bound: String,
    /// Distinct states expanded, for the stateful search (`native-dfs`).
    pub states: Option<u64>,
    /// The complete schedules a finished stateful search covered (counted over its state
    /// graph); None for the other engines, or where the graph has cycles.
    pub covered: Option<u128>,
}

/// Shared between the executions of one exploration.
#[derive(Debug)]
pub struct Collector {
    prog: Arc<Program>,
    pub executions: u64,
    pub findings: Vec<Found>,
    /// Set when exploring further cannot change the verdict.
    pub stop: bool,
}

impl Collector {
    pub fn new(prog: Arc<Program>) -> Collector {
        Collector {
            prog,
            executions: 0,
            findings: Vec::new(),
            stop: false,
        }
    }

    /// Takes in one finished execution.
    pub fn absorb(&mut self, m: &Machine) {
        self.executions += 1;
        for b in m.broken() {
            if self.findings.iter().any(|f| f.invariant == b.invariant) {
                continue;
            }
            let schedule = Schedule::of(
                &self.prog,
                Some(b.invariant.clone()),
                m.schedule()[..b.at_step].to_vec(),
            );
            self.findings.push(Found {
                invariant: b.invariant.clone(),
                message: b.message.clone(),
                schedule,
                after: self.executions,
            });
        }
        self.stop = self.stop || self.verdict_settled();
    }

    /// Stop once every expected violation is found, or once anything unexpected is: more
    /// exploring would not change whether the expectation is met.
    fn verdict_settled(&self) -> bool {
        if self.findings.is_empty() {
            return false;
        }
        let wanted: Vec<&str> = match &self.prog.expected {
            Some(Expected::Violates(names)) => names.iter().map(String::as_str).collect(),
            Some(Expected::Deadlock) => vec![racelab_lang::ir::oracle::DEADLOCK],
            Some(Expected::Holds) => return true,
            // Without an expectation, find every invariant that can break.
            None => {
                let n = self.prog.invariants.len();
                return self.findings.len() >= n.max(1);
            }
        };
        let unexpected = self.findings.iter().any(|f| {
            !wanted.contains(&f.invariant.as_str()) && !tolerated(&self.prog.expected, &f.invariant)
        });
        let all_found = wanted
            .iter()
            .all(|w| self.findings.iter().any(|f| f.invariant == *w));
        unexpected || all_found
    }
}

/// Findings that do not contradict an expectation: a lock-order cycle is what a deadlock looks
/// like in a run that did not hang, so a variant expected to deadlock may show both.
pub fn tolerated(expected: &Option<Expected>, invariant: &str) -> bool {
    matches!(expected, Some(Expected::Deadlock))
        && invariant == racelab_lang::ir::oracle::LOCK_ORDER
}

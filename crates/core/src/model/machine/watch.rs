//! Which `always` invariants a step may have changed the answer of, so that the others are not
//! evaluated again after it.
//!
//! An invariant is a pure function of what it reads. Most read a few counters of the machine's
//! own state (`holders(list) <= 1`, `count(locks) == 0`), which most steps do not write; yet
//! evaluating every invariant after every step was a seventh of native-random's time on
//! mailman-lockfile. Each invariant's reads are classified once per machine into [`Part`]s;
//! the machine notes the parts each step writes, and [`Machine::check`] skips an invariant none
//! of whose parts was written since the last check: its answer would be the one it gave then
//! (true, or it would have been recorded as broken and skipped anyway). An invariant that reads
//! anything else (files, SQL, connections: the world, which may be real) is evaluated after
//! every step, as before.

use racelab_lang::ir::{PExpr, Program, Query};

/// A part of the machine's own state that invariants read and steps write.
#[derive(Debug, Clone, Copy)]
pub(super) enum Part {
    /// Who is inside each critical section (`holders(s)`).
    Holders,
    /// The logs (`count(log)`, `count(log, text)`).
    Logs,
    /// The cells (`cell`).
    Cells,
    /// The virtual clock (`now`).
    Clock,
    /// The actors' thread-locals (`count(local, value)`).
    Locals,
}

const PARTS: usize = 5;

impl Part {
    fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// Every part: what a fresh machine has "written" before its first check.
pub(super) const ALL_PARTS: u8 = (1 << PARTS) - 1;

/// Which invariants read which part, one bit per invariant (the first 64; any later one is
/// evaluated after every step). `Copy`, so a machine's clone shares no reference count for it.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Watch {
    readers: [u64; PARTS],
    /// Invariants that read the world: evaluated after every step.
    every_step: u64,
    /// More than 64 invariants: those past the 64th are evaluated after every step.
    beyond_bits: bool,
}

/// The bit of invariant `i`, or none for one past the 64th (always evaluated).
fn bit_of(i: usize) -> Option<u64> {
    (i < 64).then(|| 1u64 << i)
}

impl Watch {
    /// Classifies `prog`'s invariants by what they read.
    pub(super) fn of(prog: &Program) -> Watch {
        let mut watch = Watch {
            beyond_bits: prog.invariants.len() > 64,
            ..Watch::default()
        };
        for (i, inv) in prog.invariants.iter().enumerate() {
            let Some(bit) = bit_of(i) else { break };
            let mut parts = 0u8;
            if reads_only_parts(&inv.cond, &mut parts) {
                for (p, readers) in watch.readers.iter_mut().enumerate() {
                    if parts & (1 << p) != 0 {
                        *readers |= bit;
                    }
                }
            } else {
                watch.every_step |= bit;
            }
        }
        watch
    }

    /// The invariants to evaluate again after writes to the parts in `written`.
    pub(super) fn due(&self, written: u8) -> Due {
        let mut due = self.every_step;
        for (p, readers) in self.readers.iter().enumerate() {
            if written & (1 << p) != 0 {
                due |= readers;
            }
        }
        Due(due, self.beyond_bits)
    }

    /// Whether invariant `i` must be evaluated again after writes to the parts in `written`.
    #[cfg(test)]
    fn is_due(&self, i: usize, written: u8) -> bool {
        self.due(written).includes(i)
    }
}

/// The invariants to evaluate after a step: a bit each for the first 64, computed once per
/// check, and whether there are more (always due).
#[derive(Debug, Clone, Copy)]
pub(super) struct Due(u64, bool);

impl Due {
    /// True when no invariant is due.
    pub(super) fn is_empty(self) -> bool {
        self.0 == 0 && !self.1
    }

    pub(super) fn includes(self, i: usize) -> bool {
        bit_of(i).is_none_or(|bit| self.0 & bit != 0)
    }
}

/// Adds the parts `e` reads to `parts`; false if it reads anything else (the world).
fn reads_only_parts(e: &PExpr, parts: &mut u8) -> bool {
    let all = |xs: &[PExpr], parts: &mut u8| xs.iter().all(|x| reads_only_parts(x, parts));
    match e {
        // In an invariant, registers and thread-locals are none and `self` an error: constants.
        PExpr::Const(_)
        | PExpr::Reg(_)
        | PExpr::Local(_)
        | PExpr::SelfName
        | PExpr::IsOk(_)
        | PExpr::IsErrno(..)
        | PExpr::ErrName(_) => true,
        PExpr::Neg(x) | PExpr::Not(x) | PExpr::Field(x, _) => reads_only_parts(x, parts),
        PExpr::Bin(_, a, b) => reads_only_parts(a, parts) && reads_only_parts(b, parts),
        PExpr::Index { coll, key, .. } => {
            reads_only_parts(coll, parts) && reads_only_parts(key, parts)
        }
        // Builtins are pure.
        PExpr::Concat(xs) | PExpr::Call(_, xs) | PExpr::List(xs) => all(xs, parts),
        PExpr::Map(entries) => entries
            .iter()
            .all(|(k, v)| reads_only_parts(k, parts) && reads_only_parts(v, parts)),
        PExpr::Query(q, args) => {
            let part = match q {
                Query::Holders(_) => Part::Holders,
                Query::LogCount(_) | Query::LogCountMatching(_) => Part::Logs,
                Query::Cell(_) => Part::Cells,
                Query::Now => Part::Clock,
                Query::LocalCount(_) => Part::Locals,
                Query::Exists | Query::Contents | Query::Sql(_) | Query::Connections => {
                    return false
                }
            };
            *parts |= part.bit();
            all(args, parts)
        }
    }
}

impl<F: super::World> super::Machine<F> {
    /// Notes that this step wrote `part`, so the invariants that read it are evaluated again.
    #[inline]
    pub(super) fn wrote(&mut self, part: Part) {
        self.written |= part.bit();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::model::Machine;

    /// One invariant per part and one on a file, each of which some step breaks.
    const SCENARIO: &str = r#"
scenario watched {
  cell counter = 0
  log events
  local phase = 0
  fs { dir "/d" }
  actor worker x 2 {
    phase = 1
    let seen = counter
    set counter = seen + 1
    critical room { append events "in {self}" }
    sleep 1s
    write("/d/{self}", "x")
  }
  invariant cells: always counter < 2
  invariant logs: always count(events) < 2
  invariant holders: always holders(room) < 2
  invariant clock: always now < 1098604801000
  invariant locals: always count(phase, 1) < 2
  invariant files: always not exists("/d/worker2")
  invariant constant: always 1 + 1 == 2
}
"#;

    fn program() -> Arc<Program> {
        let sc = crate::lang::compile("watched.race", SCENARIO).expect("the scenario compiles");
        Arc::new(sc.variants[0].clone())
    }

    #[test]
    fn invariants_are_classified_by_the_parts_they_read() {
        let prog = program();
        let watch = Watch::of(&prog);
        let due = |name: &str, part: Option<Part>| {
            let i = prog.invariants.iter().position(|v| v.name == name);
            watch.is_due(i.expect("declared"), part.map_or(0, Part::bit))
        };
        for (name, part) in [
            ("cells", Part::Cells),
            ("logs", Part::Logs),
            ("holders", Part::Holders),
            ("clock", Part::Clock),
            ("locals", Part::Locals),
        ] {
            assert!(due(name, Some(part)), "{name} after a write to its part");
            assert!(!due(name, None), "{name} after a step that wrote nothing");
            let other = if matches!(part, Part::Cells) {
                Part::Logs
            } else {
                Part::Cells
            };
            assert!(!due(name, Some(other)), "{name} after a write elsewhere");
        }
        assert!(
            due("files", None),
            "an invariant on the world is checked after every step"
        );
        assert!(!due("constant", Some(Part::Cells)));
    }

    /// Every schedule of the scenario, stepped in random order: after each step, every
    /// `always` invariant that is not recorded as broken must evaluate true, so skipping
    /// invariants whose inputs no step wrote never hides a break, and each breaks.
    #[test]
    fn skipped_invariants_never_hide_a_break() {
        let prog = program();
        let mut broke = std::collections::BTreeSet::new();
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..200 {
            let mut m = Machine::new(Arc::clone(&prog));
            while !m.is_finished() {
                let runnable: Vec<usize> = m.runnable().collect();
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                m.step(runnable[(rng % runnable.len() as u64) as usize]);
                for inv in &prog.invariants {
                    if m.broken().iter().any(|b| b.invariant == inv.name) {
                        broke.insert(inv.name.clone());
                        continue;
                    }
                    let env = super::super::interp::ActorEnv { m: &m, actor: None };
                    let holds = racelab_lang::eval::eval_bool(&inv.cond, &env);
                    assert_eq!(holds, Ok(true), "{} after {:?}", inv.name, m.schedule());
                }
            }
        }
        let expected = ["cells", "clock", "files", "holders", "locals", "logs"];
        assert_eq!(broke.into_iter().collect::<Vec<_>>(), expected);
    }
}

//! One step of the machine: what an actor's next operation is and touches, performing it (in
//! one call, or handed out and completed by a real backend), and what follows it.

use super::*;

impl<F: World> Machine<F> {
    /// Takes one step of actor `a`: performs its pending world operation, then runs its local
    /// computation up to the next one. Checks `always` invariants, and lets time advance if no
    /// actor is runnable afterwards.
    ///
    /// Panics if `a` is not runnable: engines must only choose runnable actors.
    pub fn step(&mut self, a: usize) {
        assert!(self.is_runnable(a), "choice {a} is not runnable");
        if self.deciding.is_some() {
            return self.decide(a);
        }
        self.schedule.push(a as u8);
        let broken_before = self.broken.len();
        if let Some(f) = a.checked_sub(self.actors.len()) {
            let time_ms = self.clock;
            let result = self.land_fault(f);
            if self.details.is_some() {
                self.last = Some(StepOutcome::Fault);
            }
            self.after_step(
                broken_before,
                self.prog.faults[f].target,
                time_ms,
                StepWhat::Fault(f),
                result,
            );
            return;
        }
        // One Arc clone per step lets the instruction be borrowed while the machine changes.
        let prog = Arc::clone(&self.prog);
        let (op, args) = match Self::pending_in(&prog, &self.actors[a]) {
            Instr::Op { op, args, .. } => (*op, args),
            other => unreachable!("a ready actor is parked at an operation, not {other:?}"),
        };
        let mut vals = std::mem::take(&mut self.arg_buf.0);
        let result = self
            .eval_args_into(a, args, &mut vals)
            .and_then(|()| self.perform(a, op, &vals));
        vals.clear();
        self.arg_buf.0 = vals;
        self.conclude(a, broken_before, result);
    }

    /// The instruction actor `a` is parked at.
    pub(super) fn pending_in<'p>(prog: &'p Program, actor: &Actor) -> &'p Instr {
        let frame = actor.frames.last().expect("a ready actor has a frame");
        &prog.procs[frame.proc as usize].code[frame.pc as usize]
    }

    /// The operation actor `a` is parked at, with its arguments.
    pub(super) fn pending(&self, a: usize) -> (Op, Vec<PExpr>, Option<Reg>, bool, u32) {
        match Self::pending_in(&self.prog, &self.actors[a]) {
            Instr::Op {
                op,
                args,
                dst,
                catch,
                label,
            } => (*op, args.clone(), *dst, *catch, *label),
            other => unreachable!("a ready actor is parked at an operation, not {other:?}"),
        }
    }

    /// What the next step of choice `c` touches, for partial-order reduction: two steps whose
    /// footprints are disjoint commute (either order reaches the same state, and neither step
    /// enables or disables the other). Conservative: faults, time (sleep, work, now), SQL and
    /// connections, directories, anything on NFS clients' caches, and every step that may
    /// allocate or free an inode (numbers are handed out in order) are `None`: dependent on
    /// everything.
    pub fn footprint(&self, c: usize) -> Option<Vec<Resource>> {
        if c >= self.actors.len() || !self.is_runnable(c) || self.deciding.is_some() {
            return None;
        }
        let Instr::Op { op, args, .. } = Self::pending_in(&self.prog, &self.actors[c]) else {
            return None;
        };
        let path = |i: usize| match args.get(i).map(|e| self.eval_in(c, e)) {
            Some(Ok(Value::Str(p))) => Some(Resource::Path(crate::model::fs::normalize(&p))),
            _ => None,
        };
        let nfs = self.prog.nfs_cache_ms.is_some();
        Some(match *op {
            Op::CellGet(id) | Op::CellSet(id) | Op::CellPut(id) => vec![Resource::Cell(id)],
            Op::Append(id) => vec![Resource::Log(id)],
            Op::Acquire { lock, .. } | Op::Release { lock } => vec![Resource::Lock(lock)],
            // A second half acts on a pinned inode, whatever names it has now.
            Op::Write | Op::Stat if self.actors[c].half_done => return None,
            Op::Read | Op::Stat | Op::Utime | Op::Touch if !nfs => vec![path(0)?],
            Op::Link if !nfs => vec![path(0)?, path(1)?],
            Op::Rename if !nfs => vec![path(0)?, path(1)?, Resource::Inodes],
            Op::Create { .. } | Op::Write | Op::Unlink if !nfs => vec![path(0)?, Resource::Inodes],
            _ => return None,
        })
    }

    /// Starts actor `a`'s step *outside* the machine, for free-running real actors: when its
    /// next operation is a filesystem call, returns it with its arguments and marks the actor
    /// in flight (not runnable, and time cannot jump) until [`Machine::complete`]. Returns
    /// `None` for operations the machine performs itself (cells, locks, sleeps): take those
    /// with [`Machine::step`].
    pub fn begin(&mut self, a: usize) -> Option<Result<Intent, String>> {
        if !self.is_runnable(a) || a >= self.actors.len() || self.deciding.is_some() {
            return None;
        }
        let (op, args, _, _, _) = self.pending(a);
        if !op.is_filesystem() {
            return None;
        }
        let op = self.half_of(a, op);
        let vals: Result<Vec<Value>, String> = args.iter().map(|e| self.eval_in(a, e)).collect();
        self.actors[a].status = Status::InFlight;
        Some(vals.map(|v| (op, v, self.clock)))
    }

    /// Finishes a step begun with [`Machine::begin`], with the real system's result.
    pub fn complete(&mut self, a: usize, result: Result<Result<Value, Errno>, String>) {
        assert_eq!(
            self.actors[a].status,
            Status::InFlight,
            "actor {a} has no step in flight"
        );
        self.actors[a].status = Status::Ready;
        self.schedule.push(a as u8);
        let broken_before = self.broken.len();
        let (op, ..) = self.pending(a);
        let half = self.half_of(a, op);
        let done = result.map(|r| self.halves(a, half, r));
        self.conclude(a, broken_before, done);
    }

    /// Everything a step does after its operation: the result into the actor's register (or
    /// its failure), local computation up to the next operation, and [`Machine::after_step`].
    pub(super) fn conclude(
        &mut self,
        a: usize,
        broken_before: usize,
        result: Result<Done, String>,
    ) {
        let (dst, catch, label) = match Self::pending_in(&self.prog, &self.actors[a]) {
            Instr::Op {
                dst, catch, label, ..
            } => (*dst, *catch, *label),
            other => unreachable!("a stepping actor is parked at an operation, not {other:?}"),
        };
        let time_ms = self.clock;
        // Rendering the result costs an allocation per step; only traces need it.
        let mut shown = self.details.is_some().then(|| match &result {
            Ok(Done::Value(Value::None)) => "ok".to_string(),
            Ok(Done::Value(v)) => v.to_string(),
            Ok(Done::Error(e, msg)) if msg.is_empty() => e.name().to_string(),
            Ok(Done::Error(e, msg)) => format!("{} {msg}", e.name()),
            Ok(Done::Blocked(why)) => format!("blocked: {why}"),
            Ok(Done::Half(what)) => what.to_string(),
            Ok(Done::Choosing(what)) => what.clone(),
            Err(msg) => format!("error: {msg}"),
        });
        if self.details.is_some() {
            self.last = Some(match &result {
                Ok(Done::Value(v)) => StepOutcome::Value(v.clone()),
                Ok(Done::Error(e, _)) => StepOutcome::Error(*e),
                Ok(Done::Blocked(_)) => StepOutcome::Blocked,
                Ok(Done::Half(_) | Done::Choosing(_)) => StepOutcome::Value(Value::None),
                Err(msg) => StepOutcome::Value(Value::str(msg)),
            });
        }
        match result {
            Err(msg) => {
                if !self.raise(a, Unwinding::Failure(oracle::UNHANDLED_ERROR, msg)) {
                    self.advance(a);
                }
            }
            // The actor stays parked at the operation for its second half.
            Ok(Done::Blocked(_) | Done::Half(_) | Done::Choosing(_)) => {}
            Ok(Done::Error(errno, msg)) if !catch => {
                let text = self.prog.labels[label as usize].text.clone();
                let why = if msg.is_empty() {
                    String::new()
                } else {
                    format!(" {msg}")
                };
                let msg = format!(
                    "{text} failed with {}{why} and nothing handles it",
                    errno.name()
                );
                // A `finally` block on the way out runs first (false: the actor goes on there).
                if !self.raise(a, Unwinding::Failure(oracle::UNHANDLED_ERROR, msg)) {
                    self.advance(a);
                }
            }
            Ok(r) => {
                let v = match r {
                    Done::Value(v) => v,
                    Done::Error(e, _) => Value::Err(e),
                    Done::Blocked(_) | Done::Half(_) | Done::Choosing(_) => {
                        unreachable!("handled above")
                    }
                };
                let frame = self.actors[a].frames.last_mut().expect("frame");
                if let Some(d) = dst {
                    frame.regs[d as usize] = v;
                }
                frame.pc += 1;
                if self.actors[a].status == Status::Ready {
                    self.advance(a);
                }
            }
        }
        self.after_step(
            broken_before,
            a,
            time_ms,
            StepWhat::Op(label),
            shown.take().unwrap_or_default(),
        );
    }

    /// What every step ends with: waking actors a release unblocked, the invariants, the trace
    /// row, the step bound, and letting time advance when nobody can move.
    pub(super) fn after_step(
        &mut self,
        broken_before: usize,
        column: usize,
        time_ms: i64,
        what: StepWhat,
        result: String,
    ) {
        self.check(When::Always);
        if self.details.is_some() {
            let broke = self.broken[broken_before..]
                .iter()
                .map(|b| b.invariant.clone())
                .collect();
            if let Some(d) = self.details.as_mut() {
                d.push(StepDetail {
                    actor: column,
                    time_ms,
                    what,
                    result,
                    broke,
                });
            }
        }
        if self.schedule.len() >= self.max_steps && self.end.is_none() {
            self.record(
                oracle::LIVELOCK,
                format!("no end after {} steps", self.max_steps),
            );
            self.end = Some(End::Livelock);
            return;
        }
        self.settle();
    }
}

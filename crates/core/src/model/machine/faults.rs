//! Faults and actor ends: landing a crash, a signal or a stall, running a signal handler, and
//! releasing what a dead or finished actor held.

use super::*;

impl<F: World> Machine<F> {
    /// Lets fault `f` land now. Returns the trace row's text.
    pub(super) fn land_fault(&mut self, f: usize) -> String {
        self.fired[f] = true;
        let fault = self.prog.faults[f].clone();
        let t = fault.target;
        let handled = match &fault.kind {
            FaultKind::Signal { signal, .. } => {
                self.actors[t].handlers.iter().any(|(s, _, _)| s == signal)
            }
            _ => false,
        };
        if let Err(why) = self.fs.fault(t, &fault.kind, handled) {
            self.abort(format!(
                "fault `{}` could not be made real: {why}",
                fault.name
            ));
            return format!("infrastructure error: {why}");
        }
        match fault.kind {
            FaultKind::Retransmit => {
                self.actors[t].lose_next_link = true;
                "the reply to its next link will be lost, and the client will retransmit"
                    .to_string()
            }
            FaultKind::Crash => {
                self.kill(t);
                "crashed (SIGKILL): stops for good; its files stay".to_string()
            }
            FaultKind::Stall { for_ms } => {
                let actor = &mut self.actors[t];
                let until = match actor.status {
                    // Busy work is delayed by the whole pause; a sleep ends no earlier than it.
                    Status::Sleeping(w) if actor.busy => w + for_ms,
                    Status::Sleeping(w) => w.max(self.clock + for_ms),
                    _ => self.clock + for_ms,
                };
                actor.status = Status::Sleeping(until);
                actor.waiting = None;
                format!("stalled for {}", format_duration(for_ms))
            }
            FaultKind::Signal { signal, kill_after } => {
                if let Some(d) = kill_after {
                    self.timers.push(KillTimer {
                        at: self.clock + d,
                        actor: t,
                        fault: f,
                    });
                }
                let handler = self.actors[t]
                    .handlers
                    .iter()
                    .find(|(s, _, _)| *s == signal)
                    .cloned();
                match handler {
                    None => {
                        self.kill(t);
                        format!("SIG{}: no handler, so the process dies", signal.name())
                    }
                    Some((_, proc, args)) => {
                        self.run_handler(t, proc, args);
                        format!(
                            "SIG{}: the handler runs at the next step boundary",
                            signal.name()
                        )
                    }
                }
            }
        }
    }

    /// Pushes a signal handler's frame on top of whatever actor `t` was doing.
    pub(super) fn run_handler(&mut self, t: usize, proc: ProcId, args: Vec<Value>) {
        let actor = &mut self.actors[t];
        let resume_work_until = match actor.status {
            Status::Sleeping(w) if actor.busy && w > self.clock => Some(w),
            _ => None,
        };
        let mut regs = vec![Value::None; self.prog.procs[proc as usize].nregs as usize];
        for (slot, v) in regs.iter_mut().zip(args) {
            *slot = v;
        }
        actor.frames.push(Frame {
            proc,
            pc: 0,
            regs,
            ret: None,
            resume_work_until,
            finally: vec![],
        });
        // Interrupted between the halves of a call, the actor makes the whole call again later.
        actor.half_done = false;
        actor.status = Status::Ready;
        actor.busy = false;
        actor.waiting = None;
        self.advance(t);
    }

    /// Ends actor `a` by a fault. Files stay; locks, sections and the connection are released.
    pub(super) fn kill(&mut self, a: usize) {
        self.actors[a].status = Status::Killed;
        self.release_everything(a);
    }

    /// An actor that ends normally leaves its sections and closes its database connection
    /// (rolling back what it did not commit, as Django closes it at the end of a request); a
    /// lock it acquired and never released stays held, as a `threading.Lock` does.
    pub(super) fn finish(&mut self, a: usize) {
        self.leave_sections(a);
        if let Some(db) = self.db.as_mut() {
            db.disconnect(a);
            self.wake_row_waiters(a);
        }
        self.fs.actor_ended(a);
    }

    /// Takes actor `a` out of every critical section, writing (so copying) the holders only if
    /// it is in one.
    fn leave_sections(&mut self, a: usize) {
        if self.holders.iter().any(|h| h.contains(&a)) {
            for h in self.holders.iter_mut() {
                h.retain(|x| *x != a);
            }
            self.wrote(watch::Part::Holders);
        }
    }

    /// What the kernel and the database server do for a process that is gone.
    pub(super) fn release_everything(&mut self, a: usize) {
        self.actors[a].frames.clear();
        self.actors[a].waiting = None;
        self.leave_sections(a);
        for l in std::mem::take(&mut self.actors[a].held) {
            if self.locks[l as usize].release_all(a) {
                self.wake_lock_waiters(l);
            }
        }
        if let Some(db) = self.db.as_mut() {
            db.disconnect(a);
            self.wake_row_waiters(a);
        }
        self.fs.actor_ended(a);
    }
}

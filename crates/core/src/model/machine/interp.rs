//! The interpreter: runs an actor's local computation up to its next world operation, unwinds
//! failures to the innermost `try`, and evaluates expressions in the actor's frame.

use super::*;

impl<F: World> Machine<F> {
    /// Runs actor `a`'s local computation until it is parked at a world operation, finishes, or fails.
    pub(super) fn advance(&mut self, a: usize) {
        // A bound on local computation between two steps: an infinite loop without a step is a
        // scenario bug that would otherwise hang every engine.
        let mut budget = 1_000_000u32;
        // Borrow instructions from our own handle on the program, not from `self`, so that
        // executing them needs no clones.
        let prog = Arc::clone(&self.prog);
        loop {
            // The plain instructions run on one borrow of the actor (`local.rs`); this loop
            // takes the others, one at a time.
            match self.run_local(a, &mut budget) {
                local::Local::Parked | local::Local::Working => return,
                local::Local::General => {}
            }
            budget -= 1;
            if budget == 0 {
                self.fail(a, oracle::LIVELOCK, "an actor computed for a million instructions without taking a step (a loop without an operation?)".into());
                return;
            }
            let Some(frame) = self.actors[a].frames.last() else {
                self.actors[a].status = Status::Done;
                self.finish(a);
                return;
            };
            let instr = &prog.procs[frame.proc as usize].code[frame.pc as usize];
            match instr {
                Instr::Op { .. } => {
                    self.actors[a].status = Status::Ready;
                    return;
                }
                Instr::Eval { dst, e } => {
                    let dst = *dst;
                    match self.eval_in(a, e) {
                        Ok(v) => {
                            let f = self.frame(a);
                            f.regs[dst as usize] = v;
                            f.pc += 1;
                        }
                        Err(msg) => {
                            if self.raise(a, Unwinding::Failure(oracle::UNHANDLED_ERROR, msg)) {
                                return;
                            }
                            continue;
                        }
                    }
                }
                Instr::Jump(t) => {
                    let t = *t;
                    self.frame(a).pc = t;
                }
                Instr::JumpIfNot(c, t) => {
                    let t = *t;
                    match self.eval_bool_in(a, c) {
                        Ok(true) => self.frame(a).pc += 1,
                        Ok(false) => self.frame(a).pc = t,
                        Err(msg) => {
                            if self.raise(a, Unwinding::Failure(oracle::UNHANDLED_ERROR, msg)) {
                                return;
                            }
                            continue;
                        }
                    }
                }
                Instr::Call { proc, args, dst } => {
                    let (proc, dst) = (*proc, *dst);
                    // The arguments go straight into the callee's registers, a vector a returned
                    // frame left behind when there is one: no allocation.
                    let nregs = prog.procs[proc as usize].nregs as usize;
                    let mut regs = self.spare_regs.0.pop().unwrap_or_default();
                    let vals = self.eval_args_into(a, args, &mut regs);
                    match vals {
                        Ok(()) => {}
                        Err(msg) => {
                            if self.raise(a, Unwinding::Failure(oracle::UNHANDLED_ERROR, msg)) {
                                return;
                            }
                            continue;
                        }
                    };
                    if self.actors[a].frames.len() >= 256 {
                        return self.fail(
                            a,
                            oracle::UNHANDLED_ERROR,
                            "procedure calls nested 256 deep (unbounded recursion?)".into(),
                        );
                    }
                    self.frame(a).pc += 1;
                    // Not `resize`: cloning its fill value cost a hundred instructions a call.
                    regs.resize_with(nregs, || Value::None);
                    self.actors[a].frames.push(Frame {
                        proc,
                        pc: 0,
                        regs,
                        ret: dst,
                        resume_work_until: None,
                        finally: vec![],
                    });
                }
                Instr::Return(e) => {
                    let v = match e.as_ref().map(|e| self.eval_in(a, e)).transpose() {
                        Ok(v) => v.unwrap_or(Value::None),
                        Err(msg) => {
                            if self.raise(a, Unwinding::Failure(oracle::UNHANDLED_ERROR, msg)) {
                                return;
                            }
                            continue;
                        }
                    };
                    let mut done = self.actors[a].frames.pop().expect("frame");
                    if let (Some(r), Some(caller)) = (done.ret, self.actors[a].frames.last_mut()) {
                        caller.regs[r as usize] = v;
                    }
                    if self.spare_regs.0.len() < SPARE_REGS {
                        let mut regs = std::mem::take(&mut done.regs);
                        regs.clear();
                        self.spare_regs.0.push(regs);
                    }
                    if let Some(until) = done.resume_work_until.filter(|&w| w > self.clock) {
                        // A handler interrupted `work`; the computation goes on where it was.
                        self.actors[a].status = Status::Sleeping(until);
                        self.actors[a].busy = true;
                        return;
                    }
                }
                Instr::SetLocal { local, e } => {
                    let local = *local as usize;
                    match self.eval_in(a, e) {
                        Ok(v) => {
                            self.actors[a].locals[local] = v;
                            self.wrote(watch::Part::Locals);
                            self.frame(a).pc += 1;
                        }
                        Err(msg) => {
                            if self.raise(a, Unwinding::Failure(oracle::UNHANDLED_ERROR, msg)) {
                                return;
                            }
                            continue;
                        }
                    }
                }
                Instr::Handle { signal, proc, args } => {
                    let (signal, proc) = (*signal, *proc);
                    let vals: Result<Vec<Value>, String> =
                        args.iter().map(|e| self.eval_in(a, e)).collect();
                    let vals = match vals {
                        Ok(v) => v,
                        Err(msg) => {
                            if self.raise(a, Unwinding::Failure(oracle::UNHANDLED_ERROR, msg)) {
                                return;
                            }
                            continue;
                        }
                    };
                    if let Err(why) = self.fs.handler(a, signal, proc.is_some()) {
                        self.abort(format!(
                            "the SIG{} handler could not be installed in the real actor: {why}",
                            signal.name()
                        ));
                        return;
                    }
                    let handlers = &mut self.actors[a].handlers;
                    handlers.retain(|(s, _, _)| *s != signal);
                    if let Some(p) = proc {
                        handlers.push((signal, p, vals));
                    }
                    self.frame(a).pc += 1;
                }
                Instr::Exit => {
                    // Ends the actor (the loop sees no frame), after its `finally` blocks.
                    self.raise(a, Unwinding::Exit);
                }
                Instr::TryEnter(handler) => {
                    let handler = *handler;
                    let f = self.frame(a);
                    f.finally.push(handler);
                    f.pc += 1;
                }
                Instr::TryLeave => {
                    let f = self.frame(a);
                    f.finally.pop();
                    f.pc += 1;
                }
                Instr::EndFinally => match self.actors[a].unwinding.take() {
                    Some(why) => {
                        if self.raise(a, why) {
                            return;
                        }
                    }
                    None => self.frame(a).pc += 1,
                },
                Instr::Enter(s) => {
                    let s = *s as usize;
                    self.holders[s].push(a);
                    self.wrote(watch::Part::Holders);
                    self.frame(a).pc += 1;
                }
                Instr::Leave(s) => {
                    let s = *s as usize;
                    if let Some(i) = self.holders[s].iter().position(|h| *h == a) {
                        self.holders[s].remove(i);
                        self.wrote(watch::Part::Holders);
                    }
                    self.frame(a).pc += 1;
                }
                Instr::Fail { kind, msg, label } => {
                    let (kind, label) = (*kind, *label);
                    let text = self
                        .eval_in(a, msg)
                        .map(|v| v.to_string())
                        .unwrap_or_else(|e| e);
                    let at = &self.prog.labels[label as usize];
                    let line = match &at.file {
                        Some(file) => format!("{} of {file}", at.line),
                        None => at.line.to_string(),
                    };
                    let oracle = match kind {
                        FailKind::Assertion => oracle::ASSERTION,
                        FailKind::Raised => oracle::UNHANDLED_ERROR,
                    };
                    if self.raise(
                        a,
                        Unwinding::Failure(oracle, format!("{text} (line {line})")),
                    ) {
                        return;
                    }
                }
                Instr::Unhandled { reg, label } => {
                    let (reg, label) = (*reg, *label);
                    if let Value::Err(e) = &self.frame(a).regs[reg as usize] {
                        let e = e.name();
                        let text = self.prog.labels[label as usize].text.clone();
                        let msg =
                            format!("{text} failed with {e} and no arm of the match handles it");
                        if self.raise(a, Unwinding::Failure(oracle::UNHANDLED_ERROR, msg)) {
                            return;
                        }
                        continue;
                    }
                    self.frame(a).pc += 1;
                }
            }
        }
    }

    /// A failure or `exit` in actor `a`: unwinds to the innermost open `try` and runs its
    /// `finally` block (false: the actor goes on there), or, when none is open, stops the
    /// actor with the failure (true) or ends it for `exit` (false: no frame is left).
    pub(super) fn raise(&mut self, a: usize, why: Unwinding) -> bool {
        let actor = &mut self.actors[a];
        while let Some(frame) = actor.frames.last_mut() {
            if let Some(handler) = frame.finally.pop() {
                frame.pc = handler;
                actor.unwinding = Some(why);
                return false;
            }
            actor.frames.pop();
        }
        actor.unwinding = None;
        match why {
            Unwinding::Failure(oracle, msg) => {
                self.fail(a, oracle, msg);
                true
            }
            Unwinding::Exit => false,
        }
    }

    pub(super) fn frame(&mut self, a: usize) -> &mut Frame {
        self.actors[a]
            .frames
            .last_mut()
            .expect("a running actor has a frame")
    }

    pub(super) fn eval_in(&self, a: usize, e: &PExpr) -> Result<Value, String> {
        eval::eval(
            e,
            &ActorEnv {
                m: self,
                actor: Some(a),
            },
        )
    }

    /// A condition in actor `a`'s frame, evaluated without building its value.
    pub(super) fn eval_bool_in(&self, a: usize, e: &PExpr) -> Result<bool, String> {
        eval::eval_bool(
            e,
            &ActorEnv {
                m: self,
                actor: Some(a),
            },
        )
    }

    /// Evaluates an operation's arguments into `out` (cleared first): the machine's reusable
    /// buffer, so that a step allocates no argument vector.
    pub(super) fn eval_args_into(
        &self,
        a: usize,
        args: &[PExpr],
        out: &mut Vec<Value>,
    ) -> Result<(), String> {
        out.clear();
        // Most arguments are a constant or a register: copied without the evaluator's walk.
        let regs = self.actors[a]
            .frames
            .last()
            .map_or(&[][..], |f| &f.regs[..]);
        for e in args {
            out.push(match e {
                PExpr::Const(v) => v.clone(),
                PExpr::Reg(r) => regs.get(*r as usize).cloned().unwrap_or(Value::None),
                e => self.eval_in(a, e)?,
            });
        }
        Ok(())
    }
}

/// The environment expressions evaluate in: an actor's registers and thread-locals (none for
/// an invariant), and the world's queries.
pub(super) struct ActorEnv<'m, F: World> {
    pub(super) m: &'m Machine<F>,
    pub(super) actor: Option<usize>,
}

impl<F: World> Env for ActorEnv<'_, F> {
    fn reg(&self, r: Reg) -> Value {
        self.actor
            .and_then(|a| self.m.actors[a].frames.last())
            .and_then(|f| f.regs.get(r as usize).cloned())
            .unwrap_or(Value::None)
    }
    fn reg_ref(&self, r: Reg) -> Option<&Value> {
        // An invariant has no registers: `reg` answers none for it.
        let frame = self.m.actors[self.actor?].frames.last()?;
        frame.regs.get(r as usize)
    }
    fn self_name(&self) -> Option<&str> {
        self.actor.map(|a| &*self.m.prog.actors[a].name)
    }
    fn local_ref(&self, l: u32) -> Option<&Value> {
        self.m.actors[self.actor?].locals.get(l as usize)
    }
    fn local(&self, l: u32) -> Value {
        self.actor
            .and_then(|a| self.m.actors[a].locals.get(l as usize).cloned())
            .unwrap_or(Value::None)
    }
    fn query(&self, q: Query, args: &[Value]) -> Result<Value, String> {
        self.m.query(q, args)
    }
}

//! The interpreter's fast path: an actor's plain local instructions (evaluations, jumps, calls,
//! returns, `try` bookkeeping, parking at its next operation) run on one mutable borrow of the
//! actor, taken once.
//!
//! The actor is copy-on-write (`model/cow.rs`), so every `self.actors[a]` written through is an
//! `Arc::make_mut`: its atomic compare-and-swap on the reference count, per instruction, was a
//! tenth of native-random's instructions (about 450 per mailman-lockfile execution). Anything
//! that touches the rest of the machine (sections, thread-locals, handlers, failures, an error
//! from an expression, the end of the actor) is left to [`Machine::advance`]'s general loop,
//! which takes one instruction and comes back here.

use std::cell::Cell;

use super::*;

/// How far [`Machine::run_local`] took the actor.
pub(super) enum Local {
    /// Parked at its next world operation, ready.
    Parked,
    /// A signal handler that interrupted `work` returned: the actor works on until its time.
    Working,
    /// At an instruction the general loop must take (it has not been started).
    General,
}

/// An actor's frame and thread-locals as an expression environment, without the machine.
/// Actors' expressions never query the world (the lowering allows queries only in invariants
/// and constants); one that did is noted here, and its instruction is taken by the general
/// loop, which evaluates it again against the machine (expressions are pure).
struct FrameEnv<'a> {
    regs: &'a [Value],
    locals: &'a [Value],
    name: &'a str,
    queried: &'a Cell<bool>,
}

impl Env for FrameEnv<'_> {
    fn reg(&self, r: Reg) -> Value {
        self.regs.get(r as usize).cloned().unwrap_or(Value::None)
    }
    fn reg_ref(&self, r: Reg) -> Option<&Value> {
        self.regs.get(r as usize)
    }
    fn self_name(&self) -> Option<&str> {
        Some(self.name)
    }
    fn local_ref(&self, l: u32) -> Option<&Value> {
        self.locals.get(l as usize)
    }
    fn local(&self, l: u32) -> Value {
        self.locals.get(l as usize).cloned().unwrap_or(Value::None)
    }
    fn query(&self, _q: Query, _args: &[Value]) -> Result<Value, String> {
        self.queried.set(true);
        Err(String::new())
    }
}

/// The conditions lowered `match` arms and most `if`s test, answered straight from the
/// registers as the evaluator would; None for any other form (or a register out of range),
/// which the evaluator takes.
#[inline]
fn quick_condition(c: &PExpr, regs: &[Value]) -> Option<bool> {
    fn leaf<'a>(e: &'a PExpr, regs: &'a [Value]) -> Option<&'a Value> {
        match e {
            PExpr::Const(v) => Some(v),
            PExpr::Reg(r) => regs.get(*r as usize),
            _ => None,
        }
    }
    let leaf = |e| leaf(e, regs);
    match c {
        PExpr::IsOk(r) => Some(!matches!(regs.get(*r as usize)?, Value::Err(_))),
        PExpr::IsErrno(r, x) => Some(matches!(regs.get(*r as usize)?, Value::Err(y) if y == x)),
        // The evaluator's `==` and `!=` are the values' equality, whatever their types.
        PExpr::Bin(BinOp::Eq, a, b) => Some(leaf(a)? == leaf(b)?),
        PExpr::Bin(BinOp::Ne, a, b) => Some(leaf(a)? != leaf(b)?),
        _ => None,
    }
}

/// A register or a constant, copied without the evaluator's walk; None for anything else.
#[inline]
fn quick_value(e: &PExpr, regs: &[Value]) -> Option<Value> {
    match e {
        PExpr::Const(v) => Some(v.clone()),
        PExpr::Reg(r) => regs.get(*r as usize).cloned(),
        _ => None,
    }
}

impl<F: World> Machine<F> {
    /// Runs actor `a`'s plain local instructions, counting each against `budget` as the general
    /// loop does, until it parks at an operation or reaches one the general loop must take
    /// (also when the budget is about to run out, so that the general loop reports it).
    pub(super) fn run_local(&mut self, a: usize, budget: &mut u32) -> Local {
        let prog = &*self.prog;
        let name = &*prog.actors[a].name;
        let clock = self.clock;
        let spare = &mut self.spare_regs.0;
        let actor = &mut *self.actors[a];
        let queried = Cell::new(false);
        loop {
            if *budget <= 1 {
                return Local::General;
            }
            let Some(frame) = actor.frames.last() else {
                return Local::General;
            };
            // Built only where the evaluator is needed: most instructions never ask.
            let env = || FrameEnv {
                regs: &frame.regs,
                locals: &actor.locals,
                name,
                queried: &queried,
            };
            match &prog.procs[frame.proc as usize].code[frame.pc as usize] {
                Instr::Op { .. } => {
                    *budget -= 1;
                    actor.status = Status::Ready;
                    return Local::Parked;
                }
                Instr::Eval { dst, e } => {
                    let v = match quick_value(e, &frame.regs) {
                        Some(v) => v,
                        None => match eval::eval(e, &env()) {
                            Ok(v) if !queried.get() => v,
                            _ => return Local::General,
                        },
                    };
                    let frame = actor.frames.last_mut().expect("the frame just read");
                    frame.regs[*dst as usize] = v;
                    frame.pc += 1;
                }
                Instr::Jump(t) => {
                    let t = *t;
                    actor.frames.last_mut().expect("the frame just read").pc = t;
                }
                Instr::JumpIfNot(c, t) => {
                    let t = *t;
                    let holds = match quick_condition(c, &frame.regs) {
                        Some(holds) => holds,
                        None => match eval::eval_bool(c, &env()) {
                            Ok(holds) if !queried.get() => holds,
                            _ => return Local::General,
                        },
                    };
                    let frame = actor.frames.last_mut().expect("the frame just read");
                    frame.pc = if holds { frame.pc + 1 } else { t };
                }
                Instr::Call { proc, args, dst } => {
                    if actor.frames.len() >= 256 {
                        return Local::General;
                    }
                    // The arguments go straight into the callee's registers, a vector a
                    // returned frame left behind when there is one: no allocation.
                    let mut regs = spare.pop().unwrap_or_default();
                    for e in args {
                        let v = match quick_value(e, &frame.regs) {
                            Some(v) => Ok(v),
                            None => eval::eval(e, &env()).map_err(drop),
                        };
                        match v {
                            Ok(v) if !queried.get() => regs.push(v),
                            _ => {
                                regs.clear();
                                spare.push(regs);
                                return Local::General;
                            }
                        }
                    }
                    let (proc, ret) = (*proc, *dst);
                    // Not `resize`: cloning its fill value cost a hundred instructions a call.
                    regs.resize_with(prog.procs[proc as usize].nregs as usize, || Value::None);
                    actor.frames.last_mut().expect("the frame just read").pc += 1;
                    actor.frames.push(Frame {
                        proc,
                        pc: 0,
                        regs,
                        ret,
                        resume_work_until: None,
                        finally: vec![],
                    });
                }
                Instr::Return(e) => {
                    let v = match e {
                        None => Value::None,
                        Some(e) => match quick_value(e, &frame.regs) {
                            Some(v) => v,
                            None => match eval::eval(e, &env()) {
                                Ok(v) if !queried.get() => v,
                                _ => return Local::General,
                            },
                        },
                    };
                    let mut done = actor.frames.pop().expect("the frame just read");
                    if let (Some(r), Some(caller)) = (done.ret, actor.frames.last_mut()) {
                        caller.regs[r as usize] = v;
                    }
                    if spare.len() < SPARE_REGS {
                        let mut regs = std::mem::take(&mut done.regs);
                        regs.clear();
                        spare.push(regs);
                    }
                    if let Some(until) = done.resume_work_until.filter(|&w| w > clock) {
                        // A handler interrupted `work`; the computation goes on where it was.
                        *budget -= 1;
                        actor.status = Status::Sleeping(until);
                        actor.busy = true;
                        return Local::Working;
                    }
                }
                Instr::TryEnter(handler) => {
                    let frame = actor.frames.last_mut().expect("the frame just read");
                    frame.finally.push(*handler);
                    frame.pc += 1;
                }
                Instr::TryLeave => {
                    let frame = actor.frames.last_mut().expect("the frame just read");
                    frame.finally.pop();
                    frame.pc += 1;
                }
                _ => return Local::General,
            }
            *budget -= 1;
        }
    }
}

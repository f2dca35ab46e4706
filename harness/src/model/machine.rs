//! The interpreter as a step function: explicit actor state, one world operation per step.
//!
//! A [`Machine`] holds the world (filesystem, cells, logs, critical sections, the virtual clock)
//! and every actor's frames. An engine asks which actors are runnable, picks one, and calls
//! [`Machine::step`]. Between steps each actor is parked *at* its next world operation, so the
//! runnable set is always known before the choice is made.
//!
//! Time is discrete-event: it advances only when no actor is runnable, and then jumps to the
//! earliest wake-up (see DESIGN.md). Computation is free.

use std::sync::Arc;

use super::fs::{Filesystem, ModelFs, OpCtx};
use crate::eval::{self, Env};
use crate::ir::*;

/// Virtual time at the start of every run: 2004-10-24 08:00:00 UTC, the day of the Mailman
/// LockFile discussion. Realistic, so that `-1` ("no such file") reads as the distant past.
pub const EPOCH_MS: i64 = 1_098_604_800_000;

/// The default bound on steps in one execution; beyond it the run is reported as a livelock.
pub const DEFAULT_MAX_STEPS: usize = 20_000;

#[derive(Debug, Clone)]
struct Frame {
    proc: ProcId,
    pc: Pc,
    regs: Vec<Value>,
    ret: Option<Reg>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Parked at a world operation, ready to take it.
    Ready,
    /// In `sleep` or `work` until the given time.
    Sleeping(i64),
    Done,
    /// Stopped by an unhandled error, a failed assertion or `fail`.
    Failed,
}

#[derive(Debug, Clone)]
struct Actor {
    frames: Vec<Frame>,
    status: Status,
}

/// An invariant (or implicit oracle) that broke, and when.
#[derive(Debug, Clone, PartialEq)]
pub struct Broken {
    pub invariant: String,
    /// The number of steps taken when it broke: the schedule prefix that reproduces it.
    pub at_step: usize,
    pub message: String,
}

/// How an execution ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Every actor finished or failed.
    Finished,
    /// Every live actor is blocked and nothing can wake one.
    Deadlock,
    /// The step bound was reached.
    Livelock,
}

/// One step as it happened, for trace tables.
#[derive(Debug, Clone)]
pub struct StepDetail {
    pub actor: usize,
    pub time_ms: i64,
    pub label: u32,
    pub result: String,
    pub broke: Vec<String>,
}

/// The whole state of one execution of one scenario variant.
#[derive(Clone)]
pub struct Machine<F: Filesystem = ModelFs> {
    prog: Arc<Program>,
    pub fs: F,
    cells: Vec<Value>,
    logs: Vec<Vec<Arc<str>>>,
    /// Per section, the actors inside it (ghost state: entering is not a step).
    holders: Vec<Vec<usize>>,
    clock: i64,
    actors: Vec<Actor>,
    /// The schedule so far: the actor of each step.
    schedule: Vec<u8>,
    broken: Vec<Broken>,
    end: Option<End>,
    max_steps: usize,
    details: Option<Vec<StepDetail>>,
}

impl Machine<ModelFs> {
    /// A fresh execution on the model filesystem.
    pub fn new(prog: Arc<Program>) -> Machine<ModelFs> {
        let mut fs = ModelFs::new();
        for entry in &prog.fs {
            match entry {
                FsInit::Dir(p) => fs.mkdir_all(p, EPOCH_MS),
                FsInit::File(p, c) => fs.put_file(p, c, EPOCH_MS),
            }
        }
        Machine::with_fs(prog, fs)
    }
}

impl<F: Filesystem> Machine<F> {
    /// A fresh execution on a given filesystem, already holding the scenario's initial files.
    pub fn with_fs(prog: Arc<Program>, fs: F) -> Machine<F> {
        let actors = prog
            .actors
            .iter()
            .map(|a| Actor {
                frames: vec![Frame { proc: a.proc, pc: 0, regs: vec![Value::None; prog.procs[a.proc as usize].nregs as usize], ret: None }],
                status: Status::Ready,
            })
            .collect();
        let mut m = Machine {
            cells: prog.cells.iter().map(|(_, v)| v.clone()).collect(),
            logs: vec![Vec::new(); prog.logs.len()],
            holders: vec![Vec::new(); prog.sections.len()],
            clock: EPOCH_MS,
            actors,
            schedule: Vec::new(),
            broken: Vec::new(),
            end: None,
            max_steps: DEFAULT_MAX_STEPS,
            details: None,
            fs,
            prog,
        };
        for a in 0..m.actors.len() {
            m.advance(a);
        }
        m.check(When::Always);
        m.settle();
        m
    }

    /// Records a [`StepDetail`] for every step from now on (replay does this; exploration does not).
    pub fn record_details(&mut self) {
        self.details = Some(Vec::new());
    }

    pub fn set_max_steps(&mut self, n: usize) {
        self.max_steps = n;
    }

    pub fn program(&self) -> &Arc<Program> {
        &self.prog
    }
    pub fn schedule(&self) -> &[u8] {
        &self.schedule
    }
    pub fn broken(&self) -> &[Broken] {
        &self.broken
    }
    pub fn end(&self) -> Option<End> {
        self.end
    }
    pub fn is_finished(&self) -> bool {
        self.end.is_some()
    }
    pub fn details(&self) -> &[StepDetail] {
        self.details.as_deref().unwrap_or(&[])
    }
    pub fn now(&self) -> i64 {
        self.clock
    }
    pub fn actor_count(&self) -> usize {
        self.actors.len()
    }
    pub fn status(&self, a: usize) -> Status {
        self.actors[a].status
    }

    /// Whether actor `a` can take a step now.
    pub fn is_runnable(&self, a: usize) -> bool {
        self.end.is_none() && self.actors[a].status == Status::Ready
    }

    pub fn runnable(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.actors.len()).filter(|&a| self.is_runnable(a))
    }

    /// Takes one step of actor `a`: performs its pending world operation, then runs its local
    /// computation up to the next one. Checks `always` invariants, and lets time advance if no
    /// actor is runnable afterwards.
    ///
    /// Panics if `a` is not runnable: engines must only choose runnable actors.
    pub fn step(&mut self, a: usize) {
        assert!(self.is_runnable(a), "actor {a} is not runnable");
        self.schedule.push(a as u8);
        let broken_before = self.broken.len();
        // One Arc clone per step lets the instruction be borrowed while the machine changes.
        let prog = Arc::clone(&self.prog);
        let (op, args, dst, catch, label) = {
            let frame = self.actors[a].frames.last().expect("a ready actor has a frame");
            match &prog.procs[frame.proc as usize].code[frame.pc as usize] {
                Instr::Op { op, args, dst, catch, label } => (*op, args, *dst, *catch, *label),
                other => unreachable!("a ready actor is parked at an operation, not {other:?}"),
            }
        };
        let vals: Result<Vec<Value>, String> = args.iter().map(|e| self.eval_in(a, e)).collect();
        let result = vals.and_then(|vals| self.perform(a, op, &vals));
        // Rendering the result costs an allocation per step; only traces need it.
        let shown = self.details.is_some().then(|| match &result {
            Ok(Ok(Value::None)) => "ok".to_string(),
            Ok(Ok(v)) => v.to_string(),
            Ok(Err(e)) => e.name().to_string(),
            Err(msg) => format!("error: {msg}"),
        });
        let time_ms = self.clock;
        match result {
            Err(msg) => self.fail(a, oracle::UNHANDLED_ERROR, msg),
            Ok(Err(errno)) if !catch => {
                let text = self.prog.labels[label as usize].text.clone();
                self.fail(a, oracle::UNHANDLED_ERROR, format!("{text} failed with {} and nothing handles it", errno.name()));
            }
            Ok(r) => {
                let v = r.unwrap_or_else(Value::Err);
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
        self.check(When::Always);
        if self.details.is_some() {
            let broke = self.broken[broken_before..].iter().map(|b| b.invariant.clone()).collect();
            if let Some(d) = self.details.as_mut() {
                d.push(StepDetail { actor: a, time_ms, label, result: shown.unwrap_or_default(), broke });
            }
        }
        if self.schedule.len() >= self.max_steps && self.end.is_none() {
            self.record(oracle::LIVELOCK, format!("no end after {} steps", self.max_steps));
            self.end = Some(End::Livelock);
            return;
        }
        self.settle();
    }

    fn perform(&mut self, a: usize, op: Op, args: &[Value]) -> Result<Result<Value, Errno>, String> {
        let int_arg = |i: usize| match args.get(i) {
            Some(Value::Int(n)) => Ok(*n),
            other => Err(format!("{} expects a duration, got {}", op.name(), other.map_or("nothing", Value::type_name))),
        };
        Ok(Ok(match op {
            Op::Now => Value::Int(self.clock),
            Op::Sleep | Op::Work => {
                let d = int_arg(0)?.max(0);
                self.actors[a].status = Status::Sleeping(self.clock + d);
                Value::None
            }
            Op::CellGet(id) => self.cells[id as usize].clone(),
            Op::CellSet(id) => {
                self.cells[id as usize] = args[0].clone();
                Value::None
            }
            Op::Append(id) => {
                self.logs[id as usize].push(Arc::from(args[0].to_string().as_str()));
                Value::None
            }
            fs_op => return self.fs.perform(fs_op, args, &OpCtx { now: self.clock }),
        }))
    }

    /// Runs actor `a`'s local computation until it is parked at a world operation, finishes, or fails.
    fn advance(&mut self, a: usize) {
        // A bound on local computation between two steps: an infinite loop without a step is a
        // scenario bug that would otherwise hang every engine.
        let mut budget = 1_000_000u32;
        // Borrow instructions from our own handle on the program, not from `self`, so that
        // executing them needs no clones.
        let prog = Arc::clone(&self.prog);
        loop {
            budget -= 1;
            if budget == 0 {
                self.fail(a, oracle::LIVELOCK, "an actor computed for a million instructions without taking a step (a loop without an operation?)".into());
                return;
            }
            let Some(frame) = self.actors[a].frames.last() else {
                self.actors[a].status = Status::Done;
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
                        Err(msg) => return self.fail(a, oracle::UNHANDLED_ERROR, msg),
                    }
                }
                Instr::Jump(t) => {
                    let t = *t;
                    self.frame(a).pc = t;
                }
                Instr::JumpIfNot(c, t) => {
                    let t = *t;
                    match self.eval_in(a, c).and_then(|v| eval::truthy(&v)) {
                        Ok(true) => self.frame(a).pc += 1,
                        Ok(false) => self.frame(a).pc = t,
                        Err(msg) => return self.fail(a, oracle::UNHANDLED_ERROR, msg),
                    }
                }
                Instr::Call { proc, args, dst } => {
                    let (proc, dst) = (*proc, *dst);
                    let vals: Result<Vec<Value>, String> = args.iter().map(|e| self.eval_in(a, e)).collect();
                    let vals = match vals {
                        Ok(v) => v,
                        Err(msg) => return self.fail(a, oracle::UNHANDLED_ERROR, msg),
                    };
                    if self.actors[a].frames.len() >= 256 {
                        return self.fail(a, oracle::UNHANDLED_ERROR, "procedure calls nested 256 deep (unbounded recursion?)".into());
                    }
                    self.frame(a).pc += 1;
                    let mut regs = vec![Value::None; self.prog.procs[proc as usize].nregs as usize];
                    for (slot, v) in regs.iter_mut().zip(vals) {
                        *slot = v;
                    }
                    self.actors[a].frames.push(Frame { proc, pc: 0, regs, ret: dst });
                }
                Instr::Return(e) => {
                    let v = match e.as_ref().map(|e| self.eval_in(a, e)).transpose() {
                        Ok(v) => v.unwrap_or(Value::None),
                        Err(msg) => return self.fail(a, oracle::UNHANDLED_ERROR, msg),
                    };
                    let done = self.actors[a].frames.pop().expect("frame");
                    if let (Some(r), Some(caller)) = (done.ret, self.actors[a].frames.last_mut()) {
                        caller.regs[r as usize] = v;
                    }
                }
                Instr::Enter(s) => {
                    let s = *s as usize;
                    self.holders[s].push(a);
                    self.frame(a).pc += 1;
                }
                Instr::Leave(s) => {
                    let s = *s as usize;
                    if let Some(i) = self.holders[s].iter().position(|h| *h == a) {
                        self.holders[s].remove(i);
                    }
                    self.frame(a).pc += 1;
                }
                Instr::Fail { kind, msg, label } => {
                    let (kind, label) = (*kind, *label);
                    let text = self.eval_in(a, msg).map(|v| v.to_string()).unwrap_or_else(|e| e);
                    let line = self.prog.labels[label as usize].line;
                    let oracle = match kind {
                        FailKind::Assertion => oracle::ASSERTION,
                        FailKind::Raised => oracle::UNHANDLED_ERROR,
                    };
                    return self.fail(a, oracle, format!("{text} (line {line})"));
                }
                Instr::Unhandled { reg, label } => {
                    let (reg, label) = (*reg, *label);
                    if let Value::Err(e) = &self.frame(a).regs[reg as usize] {
                        let e = e.name();
                        let text = self.prog.labels[label as usize].text.clone();
                        return self.fail(a, oracle::UNHANDLED_ERROR, format!("{text} failed with {e} and no arm of the match handles it"));
                    }
                    self.frame(a).pc += 1;
                }
            }
        }
    }

    fn frame(&mut self, a: usize) -> &mut Frame {
        self.actors[a].frames.last_mut().expect("a running actor has a frame")
    }

    fn eval_in(&self, a: usize, e: &PExpr) -> Result<Value, String> {
        eval::eval(e, &ActorEnv { m: self, actor: Some(a) })
    }

    fn fail(&mut self, a: usize, oracle: &str, msg: String) {
        let name = self.prog.actors[a].name.clone();
        self.actors[a].status = Status::Failed;
        self.actors[a].frames.clear();
        for h in &mut self.holders {
            h.retain(|x| *x != a);
        }
        self.record(oracle, format!("{name}: {msg}"));
    }

    fn record(&mut self, invariant: &str, message: String) {
        if self.broken.iter().any(|b| b.invariant == invariant) {
            return;
        }
        self.broken.push(Broken { invariant: invariant.to_string(), at_step: self.schedule.len(), message });
    }

    /// Checks the invariants that apply at this point and records the first break of each.
    fn check(&mut self, when: When) {
        if self.prog.invariants.is_empty() {
            return;
        }
        let prog = Arc::clone(&self.prog);
        for inv in &prog.invariants {
            let applies = inv.when == When::Always || when == When::AtEnd;
            if !applies || (!self.broken.is_empty() && self.broken.iter().any(|b| b.invariant == inv.name)) {
                continue;
            }
            let res = eval::eval(&inv.cond, &ActorEnv { m: self, actor: None }).and_then(|v| eval::truthy(&v));
            match res {
                Ok(true) => {}
                Ok(false) => self.record(&inv.name, format!("{} is false", inv.text)),
                Err(msg) => self.record(&inv.name, format!("{} could not be evaluated: {msg}", inv.text)),
            }
        }
    }

    /// When no actor is runnable: wakes the earliest sleepers (advancing the clock), or ends the
    /// execution as finished or deadlocked.
    fn settle(&mut self) {
        while self.end.is_none() && self.runnable().next().is_none() {
            let next_wake = self.actors.iter().filter_map(|a| match a.status {
                Status::Sleeping(t) => Some(t),
                _ => None,
            });
            match next_wake.min() {
                Some(t) => {
                    self.clock = self.clock.max(t);
                    for a in 0..self.actors.len() {
                        if matches!(self.actors[a].status, Status::Sleeping(w) if w <= self.clock) {
                            self.actors[a].status = Status::Ready;
                            self.advance(a);
                        }
                    }
                    self.check(When::Always);
                }
                None => {
                    let all_done = self.actors.iter().all(|a| matches!(a.status, Status::Done | Status::Failed));
                    if all_done {
                        self.check(When::AtEnd);
                        self.end = Some(End::Finished);
                    } else {
                        self.record(oracle::DEADLOCK, "every live actor is blocked".into());
                        self.end = Some(End::Deadlock);
                    }
                }
            }
        }
    }

    /// The world's answer to an invariant's query.
    fn query(&self, q: Query, args: &[Value]) -> Result<Value, String> {
        let path = || match args.first() {
            Some(Value::Str(s)) => Ok(s.clone()),
            other => Err(format!("expected a path, got {}", other.map_or("nothing", Value::type_name))),
        };
        Ok(match q {
            Query::Holders(s) => Value::Int(self.holders.get(s as usize).map_or(0, Vec::len) as i64),
            Query::LogCount(l) => Value::Int(self.logs[l as usize].len() as i64),
            Query::LogCountMatching(l) => {
                let needle = args.first().map(|v| v.to_string()).unwrap_or_default();
                Value::Int(self.logs[l as usize].iter().filter(|e| e.contains(&needle)).count() as i64)
            }
            Query::Cell(c) => self.cells[c as usize].clone(),
            Query::Now => Value::Int(self.clock),
            Query::Exists => Value::Bool(self.fs.observe_exists(&path()?)),
            Query::Contents => self.fs.observe_contents(&path()?).map_or(Value::None, |c| Value::str(&c)),
        })
    }
}

impl Machine<ModelFs> {
    /// The contents of a log, for tests and reports.
    pub fn log(&self, name: &str) -> Option<&[Arc<str>]> {
        let i = self.prog.logs.iter().position(|l| l == name)?;
        Some(&self.logs[i])
    }
}

struct ActorEnv<'m, F: Filesystem> {
    m: &'m Machine<F>,
    actor: Option<usize>,
}

impl<F: Filesystem> Env for ActorEnv<'_, F> {
    fn reg(&self, r: Reg) -> Value {
        self.actor
            .and_then(|a| self.m.actors[a].frames.last())
            .and_then(|f| f.regs.get(r as usize).cloned())
            .unwrap_or(Value::None)
    }
    fn self_name(&self) -> Option<&str> {
        self.actor.map(|a| &*self.m.prog.actors[a].name)
    }
    fn query(&self, q: Query, args: &[Value]) -> Result<Value, String> {
        self.m.query(q, args)
    }
}

//! The interpreter as a step function: explicit actor state, one world operation per step.
//!
//! A [`Machine`] holds the world (filesystem, cells, logs, critical sections, the virtual clock)
//! and every actor's frames. An engine asks which actors are runnable, picks one, and calls
//! [`Machine::step`]. Between steps each actor is parked *at* its next world operation, so the
//! runnable set is always known before the choice is made.
//!
//! Time is discrete-event: it advances only when no actor is runnable, and then jumps to the
//! earliest wake-up (see DESIGN.md). Computation is free.
//!
//! The engine's choices are *choices*, not only actors: choice `c < actor_count()` is a step of
//! actor `c`; choice `actor_count() + f` lands fault `f` (a crash, a signal, a stall) right now.
//! So where a fault lands is part of the schedule, explored and replayed like an interleaving.

use std::sync::Arc;

use super::db::{self, Db};
use super::fs::{Filesystem, ModelFs, OpCtx};
use super::locks::{LockOrder, LockState};
use crate::eval::{self, Env};
use crate::ir::*;

/// Virtual time at the start of every run: 2004-10-24 08:00:00 UTC, the day of the Mailman
/// LockFile discussion. Realistic, so that `-1` ("no such file") reads as the distant past.
pub const EPOCH_MS: i64 = 1_098_604_800_000;

/// The default bound on steps in one execution; beyond it the run is reported as a livelock.
pub const DEFAULT_MAX_STEPS: usize = 20_000;

#[derive(Debug, Clone, Hash)]
struct Frame {
    proc: ProcId,
    pc: Pc,
    regs: Vec<Value>,
    ret: Option<Reg>,
    /// Set on a signal handler's frame that interrupted `work`: when the handler returns, the
    /// actor goes back to its work until this time.
    resume_work_until: Option<i64>,
    /// The `finally` blocks of this frame's open `try`s, innermost last.
    finally: Vec<Pc>,
}

/// Why an actor is running `finally` blocks: what happens once they have all run.
#[derive(Debug, Clone, Hash)]
enum Unwinding {
    /// A failure (`fail`, an assertion, an unhandled error): the actor then stops with it.
    Failure(&'static str, String),
    /// `exit`: the actor then ends normally.
    Exit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Parked at a world operation, ready to take it.
    Ready,
    /// In `sleep`, `work` or a stall until the given time.
    Sleeping(i64),
    /// Parked at an `acquire` or SQL statement that waits for a lock another actor holds; it
    /// becomes ready (and retries) when that actor releases something.
    Blocked,
    Done,
    /// Stopped by an unhandled error, a failed assertion or `fail`.
    Failed,
    /// Stopped by a fault: a crash, or a signal without a handler.
    Killed,
    /// Performing a real operation outside the machine (free-running real actors).
    InFlight,
}

impl Status {
    /// True for an actor that will never take another step.
    pub fn is_over(self) -> bool {
        matches!(self, Status::Done | Status::Failed | Status::Killed)
    }
}

/// What a blocked actor waits for.
#[derive(Debug, Clone, PartialEq, Hash)]
enum Wait {
    Lock(u32),
    /// Database locks held by these actors' transactions, described for the trace.
    Rows {
        on: Vec<usize>,
        what: String,
    },
}

#[derive(Debug, Clone, Hash)]
struct Actor {
    frames: Vec<Frame>,
    status: Status,
    /// True while sleeping in `work` (busy), false in `sleep` or a stall: a signal handler
    /// interrupts a sleep for good, but work resumes after the handler.
    busy: bool,
    waiting: Option<Wait>,
    locals: Vec<Value>,
    /// Installed signal handlers: the procedure and its bound arguments.
    handlers: Vec<(Signal, ProcId, Vec<Value>)>,
    /// Locks held, in acquisition order (a reentrant lock appears once).
    held: Vec<u32>,
    /// A `retransmit` fault landed: the reply to this actor's next `link` is lost.
    lose_next_link: bool,
    /// The first half of the two-step call this actor is parked at (`stat`, `write`) is done:
    /// its next step is the second half.
    half_done: bool,
    /// Set while a `finally` block runs because of a failure or `exit`.
    unwinding: Option<Unwinding>,
}

/// A `sleep between(lo, hi)` whose wake-up the engine is choosing, one binary digit per step:
/// digit 0 is the sleeper's own choice index, digit 1 the decision choice.
#[derive(Debug, Clone, Hash)]
struct Decision {
    actor: usize,
    /// The representative wake-up times, latest first (see `Machine::representative_wake_ups`).
    wake: Vec<i64>,
    /// The digits chosen so far, most significant first, as a number.
    prefix: usize,
    digits_left: u32,
    busy: bool,
    label: u32,
}

impl Decision {
    /// Whether digit `bit` keeps the choice within `wake`: the smallest number it can still
    /// become must index a wake-up.
    fn allows(&self, bit: usize) -> bool {
        ((self.prefix << 1 | bit) << (self.digits_left - 1)) < self.wake.len()
    }
}

/// A follow-up SIGKILL scheduled by a signal fault (`then kill after 3s`).
#[derive(Debug, Clone, Copy, Hash)]
struct KillTimer {
    at: i64,
    actor: usize,
    fault: usize,
}

/// An invariant (or implicit oracle) that broke, and when.
#[derive(Debug, Clone, PartialEq)]
pub struct Broken {
    pub invariant: String,
    /// The number of steps taken when it broke: the schedule prefix that reproduces it.
    pub at_step: usize,
    pub message: String,
}

/// Something a step reads or writes, for partial-order reduction (see [`Machine::footprint`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    Path(String),
    Cell(u32),
    Log(u32),
    Lock(u32),
    /// The inode numbering: creating or freeing a file is ordered against every other.
    Inodes,
}

/// What one step came to, for comparing a real run with the model step by step.
#[derive(Debug, Clone, PartialEq)]
pub enum StepOutcome {
    Value(Value),
    Error(Errno),
    Blocked,
    /// A fault landed.
    Fault,
}

/// How an execution ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum End {
    /// A real backend failed (a signal could not be delivered, a worker died unasked): the run
    /// says nothing about the scenario.
    Aborted,
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
    /// The actor whose column shows the step: for a fault, its target.
    pub actor: usize,
    pub time_ms: i64,
    /// What ran: an operation of the program, or a fault.
    pub what: StepWhat,
    pub result: String,
    pub broke: Vec<String>,
}

/// The source of a [`StepDetail`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepWhat {
    /// An operation; indexes [`Program::labels`].
    Op(u32),
    /// Fault `f` of [`Program::faults`] landed (or its follow-up kill, which is not a choice).
    Fault(usize),
}

/// A filesystem operation handed out by [`Machine::begin`]: the operation, its arguments, and
/// the virtual time it runs at.
pub type Intent = (Op, Vec<Value>, i64);

/// What a world operation came to.
enum Done {
    Value(Value),
    /// It failed with an errno (or a database error and its message).
    Error(Errno, String),
    /// It must wait for a lock another actor holds; the actor is now blocked.
    Blocked(String),
    /// The first half of a two-step call: the actor stays at the operation for the second.
    Half(&'static str),
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
    locks: Vec<LockState>,
    lock_order: LockOrder,
    db: Option<Db>,
    clock: i64,
    actors: Vec<Actor>,
    /// Per fault: whether it has landed.
    fired: Vec<bool>,
    timers: Vec<KillTimer>,
    /// The schedule so far: the actor of each step.
    schedule: Vec<u8>,
    broken: Vec<Broken>,
    end: Option<End>,
    max_steps: usize,
    details: Option<Vec<StepDetail>>,
    /// The last step's outcome, kept only while details are recorded (replays).
    last: Option<StepOutcome>,
    infrastructure: Option<String>,
    /// A duration being chosen: until it is, only its digits are choices.
    deciding: Option<Decision>,
}

/// Each actor's NFS client under `nfs cache`. A scenario that names clients (`actor a on B`)
/// places its actors itself; one that names none (a lock scenario's `nfs` variants: `actor
/// qrunner x 3` on two clients) has them spread over two clients in turn, A, B, A, …, as the
/// real two-client targets (`fs:DIR_A,DIR_B`, `backend::actor_roots`) spread them over their
/// two mounts, so that a schedule forced there puts every actor on the client the model did.
fn nfs_clients_of(prog: &Program) -> Vec<u32> {
    if prog.clients.len() > 1 {
        return prog.actors.iter().map(|a| a.client).collect();
    }
    (0..prog.actors.len()).map(|i| (i % 2) as u32).collect()
}

impl Machine<ModelFs> {
    /// A fresh execution on the model filesystem.
    pub fn new(prog: Arc<Program>) -> Machine<ModelFs> {
        let mut fs = ModelFs::new();
        if let Some(ms) = prog.nfs_cache_ms {
            fs.set_nfs(ms, nfs_clients_of(&prog));
        }
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
                frames: vec![Frame {
                    proc: a.proc,
                    pc: 0,
                    regs: vec![Value::None; prog.procs[a.proc as usize].nregs as usize],
                    ret: None,
                    resume_work_until: None,
                    finally: vec![],
                }],
                status: Status::Ready,
                busy: false,
                waiting: None,
                locals: prog.locals.iter().map(|(_, v)| v.clone()).collect(),
                handlers: Vec::new(),
                held: Vec::new(),
                lose_next_link: false,
                half_done: false,
                unwinding: None,
            })
            .collect();
        let mut m = Machine {
            cells: prog.cells.iter().map(|(_, v)| v.clone()).collect(),
            logs: vec![Vec::new(); prog.logs.len()],
            holders: vec![Vec::new(); prog.sections.len()],
            locks: vec![LockState::default(); prog.locks.len()],
            lock_order: LockOrder::default(),
            db: prog.database.as_ref().map(Db::initial),
            clock: EPOCH_MS,
            fired: vec![false; prog.faults.len()],
            timers: Vec::new(),
            actors,
            schedule: Vec::new(),
            broken: Vec::new(),
            end: None,
            max_steps: DEFAULT_MAX_STEPS,
            details: None,
            last: None,
            infrastructure: None,
            deciding: None,
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
    /// The outcome of the last step (recorded only after [`Machine::record_details`]).
    pub fn last_outcome(&self) -> Option<&StepOutcome> {
        self.last.as_ref()
    }
    /// Why a real backend aborted the run, if it did.
    pub fn infrastructure_error(&self) -> Option<&str> {
        self.infrastructure.as_deref()
    }
    fn abort(&mut self, why: String) {
        self.infrastructure.get_or_insert(why);
        self.end = Some(End::Aborted);
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
    /// Actors, faults, and the decision choice: the number of distinct choices an engine can make.
    pub fn choice_count(&self) -> usize {
        self.actors.len() + self.fired.len() + usize::from(self.prog.explores_durations)
    }

    /// The choice that is digit 1 of a duration being chosen (digit 0 is the sleeper itself),
    /// when the program has `between` durations: the last choice index, after the faults.
    pub fn decision_choice(&self) -> Option<usize> {
        self.prog
            .explores_durations
            .then(|| self.actors.len() + self.fired.len())
    }

    /// The actor whose duration is being chosen, if one is.
    pub fn deciding_actor(&self) -> Option<usize> {
        self.deciding.as_ref().map(|d| d.actor)
    }

    /// The digit choice `c` stands for while a duration is being chosen.
    fn digit_of(&self, c: usize) -> Option<usize> {
        let d = self.deciding.as_ref()?;
        if c == d.actor {
            Some(0)
        } else if Some(c) == self.decision_choice() {
            Some(1)
        } else {
            None
        }
    }
    pub fn status(&self, a: usize) -> Status {
        self.actors[a].status
    }
    /// The value of thread-local `name` in actor `a`, for tests and reports.
    pub fn local(&self, a: usize, name: &str) -> Option<&Value> {
        let i = self.prog.locals.iter().position(|(n, _)| n == name)?;
        self.actors.get(a)?.locals.get(i)
    }

    /// Whether choice `c` can be taken now: actor `c` is ready, or fault `c - actor_count()`
    /// may land. A fault may land at any step boundary while its target lives, within the
    /// budget; never while every actor waits for time, which it would otherwise stop.
    pub fn is_runnable(&self, c: usize) -> bool {
        if self.end.is_some() {
            return false;
        }
        if let Some(d) = &self.deciding {
            return self.digit_of(c).is_some_and(|bit| d.allows(bit));
        }
        if Some(c) == self.decision_choice() {
            return false;
        }
        match c.checked_sub(self.actors.len()) {
            None => self.actors[c].status == Status::Ready,
            Some(f) => self.fault_enabled(f),
        }
    }

    fn fault_enabled(&self, f: usize) -> bool {
        let Some(fault) = self.prog.faults.get(f) else {
            return false;
        };
        !self.fired[f]
            && self.fired.iter().filter(|x| **x).count() < self.prog.fault_budget
            && !self.actors[fault.target].status.is_over()
            && self.actors.iter().any(|a| a.status == Status::Ready)
    }

    /// True for a choice that can never be taken again in this execution (an actor that ended,
    /// a fault that landed or cannot land any more): its engine thread may exit.
    pub fn is_spent(&self, c: usize) -> bool {
        if self.end.is_some() {
            return true;
        }
        if Some(c) == self.decision_choice() {
            return self.actors.iter().all(|a| a.status.is_over());
        }
        match c.checked_sub(self.actors.len()) {
            None => self.actors[c].status.is_over(),
            Some(f) => {
                self.fired[f]
                    || self.fired.iter().filter(|x| **x).count() >= self.prog.fault_budget
                    || self.actors[self.prog.faults[f].target].status.is_over()
            }
        }
    }

    pub fn runnable(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.choice_count()).filter(|&c| self.is_runnable(c))
    }

    fn any_actor_ready(&self) -> bool {
        self.actors.iter().any(|a| a.status == Status::Ready)
    }

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
        let vals: Result<Vec<Value>, String> = args.iter().map(|e| self.eval_in(a, e)).collect();
        let result = vals.and_then(|vals| self.perform(a, op, &vals));
        self.conclude(a, broken_before, result);
    }

    /// The instruction actor `a` is parked at.
    fn pending_in<'p>(prog: &'p Program, actor: &Actor) -> &'p Instr {
        let frame = actor.frames.last().expect("a ready actor has a frame");
        &prog.procs[frame.proc as usize].code[frame.pc as usize]
    }

    /// The operation actor `a` is parked at, with its arguments.
    fn pending(&self, a: usize) -> (Op, Vec<PExpr>, Option<Reg>, bool, u32) {
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
    fn conclude(&mut self, a: usize, broken_before: usize, result: Result<Done, String>) {
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
            Err(msg) => format!("error: {msg}"),
        });
        if self.details.is_some() {
            self.last = Some(match &result {
                Ok(Done::Value(v)) => StepOutcome::Value(v.clone()),
                Ok(Done::Error(e, _)) => StepOutcome::Error(*e),
                Ok(Done::Blocked(_)) => StepOutcome::Blocked,
                Ok(Done::Half(_)) => StepOutcome::Value(Value::None),
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
            Ok(Done::Blocked(_) | Done::Half(_)) => {}
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
                    Done::Blocked(_) | Done::Half(_) => unreachable!("handled above"),
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
    fn after_step(
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

    fn perform(&mut self, a: usize, op: Op, args: &[Value]) -> Result<Done, String> {
        // `close(x)` in a scenario with databases: an int is a file descriptor, not a connection.
        let op = if op == Op::Close && matches!(args.first(), Some(Value::Int(_))) {
            Op::CloseFd
        } else {
            op
        };
        let int_arg = |i: usize| match args.get(i) {
            Some(Value::Int(n)) => Ok(*n),
            other => Err(format!(
                "{} expects a duration, got {}",
                op.name(),
                other.map_or("nothing", Value::type_name)
            )),
        };
        Ok(Done::Value(match op {
            Op::Now => Value::Int(self.clock),
            Op::Sleep | Op::Work if args.len() == 2 => {
                return self.begin_decision(a, op == Op::Work, int_arg(0)?, int_arg(1)?)
            }
            Op::Sleep | Op::Work => {
                let d = int_arg(0)?.max(0);
                self.actors[a].status = Status::Sleeping(self.clock + d);
                self.actors[a].busy = op == Op::Work;
                Value::None
            }
            Op::Acquire { lock, mode } => return Ok(self.acquire(a, lock, mode)),
            Op::Release { lock } => {
                let freed = self.locks[lock as usize]
                    .release(a)
                    .map_err(|e| format!("{e}: `{}`", self.prog.locks[lock as usize].0))?;
                if let Some(i) = self.actors[a].held.iter().position(|l| *l == lock) {
                    if !self.locks[lock as usize].is_held_by(a) {
                        self.actors[a].held.remove(i);
                    }
                }
                if freed {
                    self.wake_lock_waiters(lock);
                }
                Value::None
            }
            Op::Sql(id) => return Ok(self.sql(a, id, args)),
            Op::Connect => return self.connect(a, args.first()),
            Op::Close => return self.close(args.first()),
            Op::CellGet(id) => self.cells[id as usize].clone(),
            Op::CellSet(id) => {
                self.cells[id as usize] = args[0].clone();
                Value::None
            }
            Op::CellPut(id) => {
                let name = &self.prog.cells[id as usize].0;
                let cell = &mut self.cells[id as usize];
                *cell = crate::collections::put(cell, &args[0], &args[1])
                    .map_err(|msg| format!("set {name}[{}]: {msg}", args[0]))?;
                Value::None
            }
            Op::Append(id) => {
                self.logs[id as usize].push(Arc::from(args[0].to_string().as_str()));
                Value::None
            }
            fs_op => {
                let fs_op = self.half_of(a, fs_op);
                let result = self.fs.perform(
                    fs_op,
                    args,
                    &OpCtx {
                        now: self.clock,
                        actor: a,
                    },
                )?;
                if matches!(
                    fs_op,
                    Op::StatLookup | Op::StatAttrs | Op::WriteOpen | Op::WriteData
                ) {
                    return Ok(self.halves(a, fs_op, result));
                }
                if fs_op == Op::Link
                    && std::mem::take(&mut self.actors[a].lose_next_link)
                    && result.is_ok()
                {
                    // The server made the link; its reply was lost; the retransmitted LINK finds
                    // the name taken.
                    return Ok(Done::Error(
                        Errno::EEXIST,
                        "(the first reply was lost: the link was made)".into(),
                    ));
                }
                return Ok(match result {
                    Ok(v) => Done::Value(v),
                    Err(e) => Done::Error(e, String::new()),
                });
            }
        }))
    }

    /// Whether actor `a` has taken the first half of a two-step call (`stat`, `write`) and not
    /// the second.
    pub fn mid_call(&self, a: usize) -> bool {
        self.actors.get(a).is_some_and(|x| x.half_done)
    }

    /// The half of a two-step call (`stat`, `write`) actor `a` takes next; other operations as they are.
    fn half_of(&self, a: usize, op: Op) -> Op {
        if !self.prog.split_calls {
            return op;
        }
        match (op, self.actors[a].half_done) {
            (Op::Stat, false) => Op::StatLookup,
            (Op::Stat, true) => Op::StatAttrs,
            (Op::Write, false) => Op::WriteOpen,
            (Op::Write, true) => Op::WriteData,
            (op, _) => op,
        }
    }

    /// What a half of a two-step call came to: a first half that succeeded keeps the actor at
    /// the operation; a failed first half (ENOENT from the lookup) ends the call, as in the kernel.
    fn halves(&mut self, a: usize, half: Op, result: Result<Value, Errno>) -> Done {
        let first = matches!(half, Op::StatLookup | Op::WriteOpen);
        self.actors[a].half_done = first && result.is_ok();
        match result {
            Ok(_) if half == Op::StatLookup => {
                Done::Half("looked up: the inode is pinned, its attributes not read yet")
            }
            Ok(_) if half == Op::WriteOpen => {
                Done::Half("opened with O_TRUNC: the file is empty until the write")
            }
            Ok(v) => Done::Value(v),
            Err(e) => Done::Error(e, String::new()),
        }
    }

    /// `sleep between(lo, hi)` (or `work`): the wake-up becomes the engine's choice among the
    /// representative times; with one, the actor just sleeps.
    fn begin_decision(&mut self, a: usize, busy: bool, lo: i64, hi: i64) -> Result<Done, String> {
        if lo < 0 || lo > hi {
            return Err(format!(
                "between({}, {}) is not a range of durations (the low end first, neither negative)",
                format_duration(lo),
                format_duration(hi)
            ));
        }
        let wake = self.representative_wake_ups(a, self.clock + lo, self.clock + hi);
        self.actors[a].busy = busy;
        // Until the choice is made no other choice exists, so no time passes: the status only
        // keeps the actor from being stepped as an actor.
        self.actors[a].status = Status::Sleeping(wake[wake.len() - 1]);
        if wake.len() == 1 {
            return Ok(Done::Value(Value::None));
        }
        let label = match Self::pending_in(&self.prog, &self.actors[a]) {
            Instr::Op { label, .. } => *label,
            _ => 0,
        };
        let digits = usize::BITS - (wake.len() - 1).leading_zeros();
        let text = format!("chooses among {} wake-ups", wake.len());
        self.deciding = Some(Decision {
            actor: a,
            wake,
            prefix: 0,
            digits_left: digits,
            busy,
            label,
        });
        Ok(Done::Value(Value::str(&text)))
    }

    /// The wake-ups that stand for every time in `[from, to]`. Under discrete-event time what a
    /// wake-up changes is its order against the other pending deadlines (sleepers, stalls,
    /// follow-up kills): for each deadline `d` in the window, the times just before (`d - 1 ms`),
    /// at, and just after (`d + 1 ms`) it, and the window's end, which is after every deadline
    /// it holds. Both the last instant before a deadline and the first after it are kept: the
    /// first lets this actor's next steps come as early as they can, the last lets the others'
    /// come before it. The window's start is not a choice of its own: waking at `from` orders
    /// this actor against the others exactly as `d - 1` for the first deadline does (or as
    /// `to`, when the window holds none), and would let a waiter poll every `from` for as long
    /// as it waits (Mailman's 10 ms: 2,500 polls for a 25 s lease), which the step bound
    /// reports as a livelock.
    fn representative_wake_ups(&self, a: usize, from: i64, to: i64) -> Vec<i64> {
        let mut points = std::collections::BTreeSet::from([to]);
        let sleepers = self
            .actors
            .iter()
            .enumerate()
            .filter(|(b, _)| *b != a)
            .filter_map(|(_, x)| match x.status {
                Status::Sleeping(t) => Some(t),
                _ => None,
            });
        let timers = self
            .timers
            .iter()
            .filter(|k| !self.actors[k.actor].status.is_over())
            .map(|k| k.at);
        for d in sleepers.chain(timers) {
            points.extend(
                [d - 1, d, d + 1]
                    .into_iter()
                    .filter(|p| (from..=to).contains(p)),
            );
        }
        // Latest first: a depth-first search tries long naps before short ones, so its first
        // executions are short (few polls) and it backtracks into the orders near deadlines early.
        points.into_iter().rev().collect()
    }

    /// One digit of the duration being chosen; the last one puts the sleeper to sleep.
    fn decide(&mut self, c: usize) {
        self.schedule.push(c as u8);
        let broken_before = self.broken.len();
        let bit = self
            .digit_of(c)
            .expect("a runnable choice is a digit while deciding");
        let d = self.deciding.as_mut().expect("deciding");
        d.prefix = d.prefix << 1 | bit;
        d.digits_left -= 1;
        if d.digits_left > 0 {
            if self.details.is_some() {
                self.last = Some(StepOutcome::Value(Value::Int(bit as i64)));
            }
            if self.schedule.len() >= self.max_steps {
                self.record(
                    oracle::LIVELOCK,
                    format!("no end after {} steps", self.max_steps),
                );
                self.end = Some(End::Livelock);
            }
            return;
        }
        let d = self.deciding.take().expect("deciding");
        let wake = d.wake[d.prefix];
        self.actors[d.actor].status = Status::Sleeping(wake);
        self.actors[d.actor].busy = d.busy;
        if self.details.is_some() {
            self.last = Some(StepOutcome::Value(Value::Int(wake - self.clock)));
        }
        let verb = if d.busy { "works" } else { "sleeps" };
        let result = format!(
            "{verb} {} (chosen among {} wake-ups)",
            format_duration(wake - self.clock),
            d.wake.len()
        );
        self.after_step(
            broken_before,
            d.actor,
            self.clock,
            StepWhat::Op(d.label),
            result,
        );
    }

    fn acquire(&mut self, a: usize, lock: u32, mode: LockMode) -> Done {
        let kind = self.prog.locks[lock as usize].1;
        match self.locks[lock as usize].try_acquire(kind, mode, a) {
            Ok(first) => {
                if first {
                    let held = self.actors[a].held.clone();
                    self.lock_order.acquired(a, lock, &held);
                    self.actors[a].held.push(lock);
                }
                Done::Value(Value::None)
            }
            Err(holders) => {
                self.actors[a].status = Status::Blocked;
                self.actors[a].waiting = Some(Wait::Lock(lock));
                let names: Vec<&str> = holders
                    .iter()
                    .map(|h| &*self.prog.actors[*h].name)
                    .collect();
                Done::Blocked(format!(
                    "{} is held by {}",
                    self.prog.locks[lock as usize].0,
                    names.join(", ")
                ))
            }
        }
    }

    /// `connect(name)`: the model's server records the connection; a real server opens it.
    fn connect(&mut self, a: usize, name: Option<&Value>) -> Result<Done, String> {
        let prog = Arc::clone(&self.prog);
        let names = prog.database.as_ref().map_or(&[][..], |d| &d.names[..]);
        let found = match name {
            Some(Value::Str(s)) => names.iter().position(|n| **n == **s),
            _ => None,
        };
        let Some(db) = found else {
            let given = name.map_or("nothing".to_string(), Value::to_string);
            return Err(format!(
                "connect({given}): no such database; the server has {}",
                names.join(", ")
            ));
        };
        let handle = self
            .db
            .as_mut()
            .expect("named databases come with the scenario's database")
            .open_named(db as u32);
        if let Some(Err(why)) = self.fs.connect(a, handle, &names[db]) {
            self.abort(format!(
                "could not connect to database {}: {why}",
                names[db]
            ));
        }
        Ok(Done::Value(Value::str(&format!("{}#{handle}", names[db]))))
    }

    /// `close(handle)`: a handle from `connect`; closing twice does nothing.
    fn close(&mut self, handle: Option<&Value>) -> Result<Done, String> {
        let number = match handle {
            Some(Value::Str(s)) => s
                .rsplit_once('#')
                .and_then(|(_, n)| n.parse::<usize>().ok()),
            _ => None,
        };
        let known = number.is_some_and(|n| self.db.as_mut().is_some_and(|db| db.close_named(n)));
        let (Some(n), true) = (number, known) else {
            let given = handle.map_or("nothing".to_string(), Value::to_string);
            return Err(format!(
                "close({given}): not a connection; close() takes what connect() returned"
            ));
        };
        if let Some(Err(why)) = self.fs.close(n) {
            self.abort(format!("could not close connection {n}: {why}"));
        }
        Ok(Done::Value(Value::None))
    }

    fn sql(&mut self, a: usize, id: u32, args: &[Value]) -> Done {
        let stmt = Arc::clone(&self.prog.sql[id as usize]);
        // A real database backend answers first; the model database otherwise.
        let outcome = match self.fs.sql(a, &stmt, args) {
            Some(o) => o,
            None => match self.db.as_mut() {
                Some(db) => db.execute(a, &stmt, args),
                None => {
                    return Done::Error(
                        Errno::ProgrammingError,
                        "the scenario declares no database".into(),
                    )
                }
            },
        };
        // Another transaction may have ended with this statement: its waiters retry.
        self.wake_row_waiters(a);
        match outcome {
            db::Outcome::Done(v) => Done::Value(v),
            db::Outcome::Failed { error, message } => Done::Error(error, message),
            db::Outcome::Blocked { on, lock } => {
                self.actors[a].status = Status::Blocked;
                let names: Vec<&str> = on
                    .iter()
                    .filter_map(|h| self.prog.actors.get(*h))
                    .map(|x| &*x.name)
                    .collect();
                let what = format!("{lock} is locked by {}", names.join(", "));
                self.actors[a].waiting = Some(Wait::Rows {
                    on,
                    what: what.clone(),
                });
                Done::Blocked(what)
            }
        }
    }

    /// After `lock` became free, every actor blocked on it retries.
    fn wake_lock_waiters(&mut self, lock: u32) {
        for w in &mut self.actors {
            if w.status == Status::Blocked && w.waiting == Some(Wait::Lock(lock)) {
                w.status = Status::Ready;
                w.waiting = None;
            }
        }
    }

    /// After actor `a` ran a statement (or died), actors waiting for its rows retry.
    fn wake_row_waiters(&mut self, a: usize) {
        for w in &mut self.actors {
            if w.status == Status::Blocked
                && matches!(&w.waiting, Some(Wait::Rows { on, .. }) if on.contains(&a))
            {
                w.status = Status::Ready;
                w.waiting = None;
            }
        }
    }

    /// Lets fault `f` land now. Returns the trace row's text.
    fn land_fault(&mut self, f: usize) -> String {
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
    fn run_handler(&mut self, t: usize, proc: ProcId, args: Vec<Value>) {
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
    fn kill(&mut self, a: usize) {
        self.actors[a].status = Status::Killed;
        self.release_everything(a);
    }

    /// An actor that ends normally leaves its sections and closes its database connection
    /// (rolling back what it did not commit, as Django closes it at the end of a request); a
    /// lock it acquired and never released stays held, as a `threading.Lock` does.
    fn finish(&mut self, a: usize) {
        for h in &mut self.holders {
            h.retain(|x| *x != a);
        }
        if let Some(db) = self.db.as_mut() {
            db.disconnect(a);
            self.wake_row_waiters(a);
        }
        self.fs.disconnect(a);
    }

    /// What the kernel and the database server do for a process that is gone.
    fn release_everything(&mut self, a: usize) {
        self.actors[a].frames.clear();
        self.actors[a].waiting = None;
        for h in &mut self.holders {
            h.retain(|x| *x != a);
        }
        for l in std::mem::take(&mut self.actors[a].held) {
            if self.locks[l as usize].release_all(a) {
                self.wake_lock_waiters(l);
            }
        }
        if let Some(db) = self.db.as_mut() {
            db.disconnect(a);
            self.wake_row_waiters(a);
        }
        self.fs.disconnect(a);
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
                    match self.eval_in(a, c).and_then(|v| eval::truthy(&v)) {
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
                    if self.actors[a].frames.len() >= 256 {
                        return self.fail(
                            a,
                            oracle::UNHANDLED_ERROR,
                            "procedure calls nested 256 deep (unbounded recursion?)".into(),
                        );
                    }
                    self.frame(a).pc += 1;
                    let mut regs = vec![Value::None; self.prog.procs[proc as usize].nregs as usize];
                    for (slot, v) in regs.iter_mut().zip(vals) {
                        *slot = v;
                    }
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
                    let done = self.actors[a].frames.pop().expect("frame");
                    if let (Some(r), Some(caller)) = (done.ret, self.actors[a].frames.last_mut()) {
                        caller.regs[r as usize] = v;
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
    fn raise(&mut self, a: usize, why: Unwinding) -> bool {
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

    fn frame(&mut self, a: usize) -> &mut Frame {
        self.actors[a]
            .frames
            .last_mut()
            .expect("a running actor has a frame")
    }

    fn eval_in(&self, a: usize, e: &PExpr) -> Result<Value, String> {
        eval::eval(
            e,
            &ActorEnv {
                m: self,
                actor: Some(a),
            },
        )
    }

    fn fail(&mut self, a: usize, oracle: &str, msg: String) {
        let name = self.prog.actors[a].name.clone();
        self.actors[a].status = Status::Failed;
        // The exception unwinds through `with` blocks (releasing their locks) and the thread
        // or process ends, closing its database connection.
        self.release_everything(a);
        self.record(oracle, format!("{name}: {msg}"));
    }

    fn record(&mut self, invariant: &str, message: String) {
        if self.broken.iter().any(|b| b.invariant == invariant) {
            return;
        }
        self.broken.push(Broken {
            invariant: invariant.to_string(),
            at_step: self.schedule.len(),
            message,
        });
    }

    /// Checks the invariants that apply at this point and records the first break of each.
    fn check(&mut self, when: When) {
        if self.prog.invariants.is_empty() {
            return;
        }
        let prog = Arc::clone(&self.prog);
        for inv in &prog.invariants {
            let applies = inv.when == When::Always || when == When::AtEnd;
            if !applies
                || (!self.broken.is_empty() && self.broken.iter().any(|b| b.invariant == inv.name))
            {
                continue;
            }
            let res = eval::eval(
                &inv.cond,
                &ActorEnv {
                    m: self,
                    actor: None,
                },
            )
            .and_then(|v| eval::truthy(&v));
            match res {
                Ok(true) => {}
                Ok(false) => {
                    let seen = self.witness(&inv.cond);
                    let seen = if seen.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", seen.join(", "))
                    };
                    self.record(&inv.name, format!("{} is false{seen}", inv.text));
                }
                Err(msg) => self.record(
                    &inv.name,
                    format!("{} could not be evaluated: {msg}", inv.text),
                ),
            }
        }
    }

    /// When no actor is runnable: wakes the earliest sleepers (advancing the clock), or ends the
    /// execution as finished or deadlocked.
    fn settle(&mut self) {
        // An actor in flight will come back with a result: nothing to decide until it does.
        while self.end.is_none()
            && self.deciding.is_none()
            && !self.any_actor_ready()
            && !self.actors.iter().any(|a| a.status == Status::InFlight)
        {
            let sleepers = self.actors.iter().filter_map(|a| match a.status {
                Status::Sleeping(t) => Some(t),
                _ => None,
            });
            let live = |m: &Self, k: &KillTimer| !m.actors[k.actor].status.is_over();
            let timers = self.timers.iter().filter(|k| live(self, k)).map(|k| k.at);
            match sleepers.chain(timers).min() {
                Some(t) => {
                    self.clock = self.clock.max(t);
                    self.fire_timers();
                    for a in 0..self.actors.len() {
                        if matches!(self.actors[a].status, Status::Sleeping(w) if w <= self.clock) {
                            self.actors[a].status = Status::Ready;
                            self.actors[a].busy = false;
                            self.advance(a);
                        }
                    }
                    self.check(When::Always);
                }
                None => {
                    if self.actors.iter().all(|a| a.status.is_over()) {
                        self.check(When::AtEnd);
                        if let Some(cycle) = self.lock_order.potential_deadlock() {
                            let msg = self.describe_order_cycle(&cycle);
                            self.record(oracle::LOCK_ORDER, msg);
                        }
                        self.end = Some(End::Finished);
                    } else {
                        let msg = self.describe_wait_cycle();
                        self.record(oracle::DEADLOCK, msg);
                        self.end = Some(End::Deadlock);
                    }
                }
            }
        }
    }

    /// Follow-up kills whose time has come land before sleepers at the same instant wake.
    fn fire_timers(&mut self) {
        let due: Vec<KillTimer> = self
            .timers
            .iter()
            .copied()
            .filter(|k| k.at <= self.clock)
            .collect();
        self.timers.retain(|k| k.at > self.clock);
        for k in due {
            if self.actors[k.actor].status.is_over() {
                continue;
            }
            if let Err(why) = self.fs.fault(k.actor, &FaultKind::Crash, false) {
                self.abort(format!(
                    "the follow-up SIGKILL could not be made real: {why}"
                ));
                return;
            }
            self.kill(k.actor);
            if let Some(d) = self.details.as_mut() {
                d.push(StepDetail {
                    actor: k.actor,
                    time_ms: self.clock,
                    what: StepWhat::Fault(k.fault),
                    result: "SIGKILL: still alive, so it is killed".into(),
                    broke: Vec::new(),
                });
            }
        }
    }

    /// The wait-for cycle of a deadlock, in words: `a waits for L held by b; b waits for …`.
    fn describe_wait_cycle(&self) -> String {
        let waits_for = |a: usize| -> Vec<usize> {
            match &self.actors[a].waiting {
                Some(Wait::Lock(l)) => self.locks[*l as usize].holders(),
                Some(Wait::Rows { on, .. }) => on.clone(),
                None => Vec::new(),
            }
        };
        let what = |a: usize| -> String {
            match &self.actors[a].waiting {
                Some(Wait::Lock(l)) => format!(
                    "{} `{}`",
                    self.prog.locks[*l as usize].1.keyword(),
                    self.prog.locks[*l as usize].0
                ),
                Some(Wait::Rows { what, .. }) => what.clone(),
                None => "nothing".into(),
            }
        };
        let name = |a: usize| self.prog.actors[a].name.to_string();
        let start = (0..self.actors.len()).find(|&a| self.actors[a].status == Status::Blocked);
        let Some(start) = start else {
            return "every live actor is blocked".into();
        };
        // Walk the wait-for graph from a blocked actor until an actor repeats.
        let mut path = vec![start];
        loop {
            let cur = *path.last().unwrap_or(&start);
            let next = waits_for(cur)
                .into_iter()
                .find(|h| *h != cur)
                .or_else(|| waits_for(cur).first().copied());
            match next {
                Some(n) if path.contains(&n) || n == cur => {
                    let from = path.iter().position(|p| *p == n).unwrap_or(0);
                    let cycle: Vec<usize> = path[from..].to_vec();
                    let parts: Vec<String> = cycle
                        .iter()
                        .enumerate()
                        .map(|(i, &a)| {
                            format!(
                                "{} waits for {} held by {}",
                                name(a),
                                what(a),
                                name(cycle[(i + 1) % cycle.len()])
                            )
                        })
                        .collect();
                    return format!("deadlock: {}", parts.join("; "));
                }
                Some(n) if self.actors[n].status == Status::Blocked => path.push(n),
                Some(n) => {
                    return format!(
                        "{} waits for {} held by {}, which {} without releasing it",
                        name(cur),
                        what(cur),
                        name(n),
                        if self.actors[n].status.is_over() {
                            "has ended"
                        } else {
                            "is stuck"
                        }
                    )
                }
                None => {
                    return format!(
                        "{} waits for {} and nobody can release it",
                        name(cur),
                        what(cur)
                    )
                }
            }
        }
    }

    fn describe_order_cycle(&self, cycle: &[super::locks::OrderEdge]) -> String {
        let lock = |l: u32| self.prog.locks[l as usize].0.as_str();
        let parts: Vec<String> = cycle
            .iter()
            .map(|e| {
                format!(
                    "{} took {} while holding {}",
                    self.prog.actors[e.actor].name,
                    lock(e.to),
                    lock(e.from)
                )
            })
            .collect();
        format!(
            "potential deadlock (lock-order cycle; this run did not hang): {}",
            parts.join("; ")
        )
    }

    /// What the world answered to the counting queries in a broken invariant, for its message:
    /// `connections("rw_main_master") = 2` says more than "is false".
    fn witness(&self, e: &PExpr) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![e];
        while let Some(e) = stack.pop() {
            match e {
                PExpr::Query(q, args) => {
                    let env = ActorEnv {
                        m: self,
                        actor: None,
                    };
                    let vals: Vec<Value> = args
                        .iter()
                        .filter_map(|a| eval::eval(a, &env).ok())
                        .collect();
                    let shown = |v: &Value| match v {
                        Value::Str(s) => format!("{s:?}"),
                        v => v.to_string(),
                    };
                    let name = match q {
                        Query::Connections => format!(
                            "connections({})",
                            vals.iter().map(shown).collect::<Vec<_>>().join(", ")
                        ),
                        Query::Holders(s) => {
                            format!("holders({})", self.prog.sections[*s as usize])
                        }
                        Query::LogCount(l) => format!("count({})", self.prog.logs[*l as usize]),
                        Query::LogCountMatching(l) => format!(
                            "count({}, {})",
                            self.prog.logs[*l as usize],
                            vals.first().map(shown).unwrap_or_default()
                        ),
                        Query::LocalCount(l) => format!(
                            "count({}, {})",
                            self.prog.locals[*l as usize].0,
                            vals.first().map(shown).unwrap_or_default()
                        ),
                        _ => continue,
                    };
                    if let Ok(v) = self.query(*q, &vals) {
                        out.push(format!("{name} = {v}"));
                    }
                }
                PExpr::Neg(x) | PExpr::Not(x) | PExpr::Field(x, _) => stack.push(x),
                PExpr::Bin(_, a, b) => {
                    stack.push(b);
                    stack.push(a);
                }
                PExpr::Concat(xs) | PExpr::Call(_, xs) | PExpr::List(xs) => {
                    stack.extend(xs.iter().rev())
                }
                PExpr::Index { coll, key, .. } => {
                    stack.push(key);
                    stack.push(coll);
                }
                _ => {}
            }
        }
        out.dedup();
        out
    }

    /// The world's answer to an invariant's query.
    fn query(&self, q: Query, args: &[Value]) -> Result<Value, String> {
        let path = || match args.first() {
            Some(Value::Str(s)) => Ok(s.clone()),
            other => Err(format!(
                "expected a path, got {}",
                other.map_or("nothing", Value::type_name)
            )),
        };
        Ok(match q {
            Query::Holders(s) => {
                Value::Int(self.holders.get(s as usize).map_or(0, Vec::len) as i64)
            }
            Query::LogCount(l) => Value::Int(self.logs[l as usize].len() as i64),
            Query::LogCountMatching(l) => {
                let needle = args.first().map(|v| v.to_string()).unwrap_or_default();
                Value::Int(
                    self.logs[l as usize]
                        .iter()
                        .filter(|e| e.contains(&needle))
                        .count() as i64,
                )
            }
            Query::Cell(c) => self.cells[c as usize].clone(),
            Query::Now => Value::Int(self.clock),
            Query::Exists => Value::Bool(self.fs.observe_exists(&path()?)),
            Query::Contents => self
                .fs
                .observe_contents(&path()?)
                .map_or(Value::None, |c| Value::str(&c)),
            Query::LocalCount(l) => {
                let want = args.first().cloned().unwrap_or(Value::None);
                Value::Int(
                    self.actors
                        .iter()
                        .filter(|a| a.locals[l as usize] == want)
                        .count() as i64,
                )
            }
            Query::Connections => {
                let name = match args.first() {
                    Some(Value::Str(s)) => s.clone(),
                    other => {
                        return Err(format!(
                            "connections() takes a database name, got {}",
                            other.map_or("nothing", Value::type_name)
                        ))
                    }
                };
                let names = self
                    .prog
                    .database
                    .as_ref()
                    .map_or(&[][..], |d| &d.names[..]);
                let Some(db) = names.iter().position(|n| **n == *name) else {
                    return Err(format!(
                        "connections({name}): no such database; the server has {}",
                        names.join(", ")
                    ));
                };
                match self.fs.observe_connections(&name) {
                    Some(n) => Value::Int(n?),
                    None => Value::Int(
                        self.db
                            .as_ref()
                            .map_or(0, |d| d.named_connections(db as u32))
                            as i64,
                    ),
                }
            }
            Query::Sql(id) => match self.fs.observe_sql(&self.prog.sql[id as usize], args) {
                Some(r) => r?,
                None => match &self.db {
                    Some(db) => db.query(&self.prog.sql[id as usize], args)?,
                    None => return Err("the scenario declares no database".into()),
                },
            },
        })
    }
}

impl Machine<ModelFs> {
    /// A 128-bit fingerprint of everything that decides this execution's future: every actor's
    /// frames, status and thread-locals, the world (files, cells, logs, sections, locks, the
    /// lock-order graph, the database), the clock, the faults landed and pending, and which
    /// invariants have broken. Not the schedule that led here: two schedules that reach the
    /// same state have the same futures, which is what lets a stateful search expand it once.
    pub fn state_fingerprint(&self) -> u128 {
        use std::hash::Hash;
        // One pass of a fast two-lane hash (see `fingerprint.rs` for its collision bound): the
        // search hashes every successor, and two salted SipHash passes were half its time.
        let mut h = super::fingerprint::Fingerprinter::default();
        self.fs.hash(&mut h);
        self.cells.hash(&mut h);
        self.logs.hash(&mut h);
        self.holders.hash(&mut h);
        self.locks.hash(&mut h);
        self.lock_order.hash(&mut h);
        self.db.hash(&mut h);
        self.clock.hash(&mut h);
        self.actors.hash(&mut h);
        self.fired.hash(&mut h);
        self.timers.hash(&mut h);
        self.deciding.hash(&mut h);
        for b in &self.broken {
            b.invariant.hash(&mut h);
        }
        self.end.hash(&mut h);
        h.finish128()
    }

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
    fn local(&self, l: u32) -> Value {
        self.actor
            .and_then(|a| self.m.actors[a].locals.get(l as usize).cloned())
            .unwrap_or(Value::None)
    }
    fn query(&self, q: Query, args: &[Value]) -> Result<Value, String> {
        self.m.query(q, args)
    }
}

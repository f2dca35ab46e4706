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

mod answers;
mod faults;
mod interp;
mod local;
mod oracles;
mod query;
mod step;
mod time;
mod watch;
mod world;

use std::sync::Arc;

use super::cow::Cow;
use super::db::{self, Db};
use super::fs::ModelFs;
use super::locks::{LockOrder, LockState};
use super::world::{OpCtx, World};
use racelab_lang::eval::{self, Env};
use racelab_lang::ir::*;

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

/// A choice the engine is making, one binary digit per step: digit 0 is the actor's own choice
/// index, digit 1 the decision choice.
#[derive(Debug, Clone, Hash)]
struct Decision {
    actor: usize,
    /// What is being chosen among.
    among: Among,
    /// The digits chosen so far, most significant first, as a number.
    prefix: usize,
    digits_left: u32,
    label: u32,
}

/// The alternatives of a [`Decision`].
#[derive(Debug, Clone, Hash)]
enum Among {
    /// A `sleep between(lo, hi)` (or `work`): the representative wake-up times, latest first
    /// (see `Machine::representative_wake_ups`).
    Wake { wake: Vec<i64>, busy: bool },
    /// A world operation with more than one allowed answer (see `World::other_answers`): the
    /// world's own first, then the others. The actor stays parked at the operation until one is
    /// chosen; no time passes meanwhile.
    Answer(Vec<Result<Value, Errno>>),
}

impl Among {
    fn len(&self) -> usize {
        match self {
            Among::Wake { wake, .. } => wake.len(),
            Among::Answer(answers) => answers.len(),
        }
    }
}

impl Decision {
    /// Whether digit `bit` keeps the choice within `wake`: the smallest number it can still
    /// become must index a wake-up.
    fn allows(&self, bit: usize) -> bool {
        ((self.prefix << 1 | bit) << (self.digits_left - 1)) < self.among.len()
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
    /// The operation has more than one allowed answer: the actor stays at it while the engine
    /// chooses one (a [`Decision`] among [`Among::Answer`]).
    Choosing(String),
}

/// The whole state of one execution of one scenario variant.
#[derive(Clone)]
pub struct Machine<F: World = ModelFs> {
    prog: Arc<Program>,
    pub fs: F,
    // The world's parts are copy-on-write (`Cow`), as the actors are: most steps change one
    // of them at most, and a successor shares the rest with its parent.
    cells: Cow<Vec<Value>>,
    logs: Cow<Vec<Vec<Arc<str>>>>,
    /// Per section, the actors inside it (ghost state: entering is not a step).
    holders: Cow<Vec<Vec<usize>>>,
    locks: Cow<Vec<LockState>>,
    lock_order: Cow<LockOrder>,
    db: Option<Cow<Db>>,
    clock: i64,
    /// Copy-on-write: a step changes one actor, so a successor shares the others.
    actors: Vec<Cow<Actor>>,
    /// Per fault: whether it has landed.
    fired: Vec<bool>,
    timers: Vec<KillTimer>,
    /// The schedule so far: the actor of each step.
    schedule: Steps,
    broken: Vec<Broken>,
    end: Option<End>,
    max_steps: usize,
    details: Option<Vec<StepDetail>>,
    /// The last step's outcome, kept only while details are recorded (replays).
    last: Option<StepOutcome>,
    infrastructure: Option<String>,
    /// A duration being chosen: until it is, only its digits are choices.
    deciding: Option<Decision>,
    /// Scratch space for a step's argument values, empty between steps, reused so that a
    /// step allocates no vector. Not state.
    arg_buf: Scratch,
    /// The register vectors of returned frames, emptied, for the next calls to reuse. Not state.
    spare_regs: Spare,
    /// Which invariants read which parts of the state (`watch.rs`). Not state.
    watch: watch::Watch,
    /// The parts written since invariants were last checked, a bit per `watch::Part`: empty
    /// between steps. Not state.
    written: u8,
}

/// A step's argument buffer: a clone of the machine starts without one (it holds nothing
/// between steps, and copying its capacity would be an allocation per clone).
#[derive(Default)]
struct Scratch(Vec<Value>);

impl Clone for Scratch {
    fn clone(&self) -> Self {
        Scratch::default()
    }
}

/// The schedule so far. A clone keeps room for more steps: the stateful search clones a
/// machine and steps it at once, and an exact-capacity copy reallocated (copying the whole
/// schedule again) at that first push.
#[derive(Default)]
struct Steps(Vec<u8>);

/// Steps a clone has room for before its schedule grows.
const STEPS_HEADROOM: usize = 32;

impl Clone for Steps {
    fn clone(&self) -> Self {
        let mut steps = Vec::with_capacity(self.0.len() + STEPS_HEADROOM);
        steps.extend_from_slice(&self.0);
        Steps(steps)
    }
}

impl std::ops::Deref for Steps {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        &self.0
    }
}

impl std::ops::DerefMut for Steps {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.0
    }
}

/// Emptied register vectors kept for reuse; a clone starts with none.
#[derive(Default)]
struct Spare(Vec<Vec<Value>>);

impl Clone for Spare {
    fn clone(&self) -> Self {
        Spare::default()
    }
}

/// How many emptied register vectors a machine keeps: enough for the deepest usual call chain.
const SPARE_REGS: usize = 16;

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

impl<F: World> Machine<F> {
    /// A fresh execution on a given filesystem, already holding the scenario's initial files.
    pub fn with_fs(prog: Arc<Program>, fs: F) -> Machine<F> {
        let actors = prog
            .actors
            .iter()
            .map(|a| {
                Cow::new(Actor {
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
            })
            .collect();
        let mut m = Machine {
            cells: Cow::new(prog.cells.iter().map(|(_, v)| v.clone()).collect()),
            logs: Cow::new(vec![Vec::new(); prog.logs.len()]),
            holders: Cow::new(vec![Vec::new(); prog.sections.len()]),
            locks: Cow::new(vec![LockState::default(); prog.locks.len()]),
            lock_order: Cow::default(),
            db: prog.database.as_ref().map(|d| Cow::new(Db::initial(d))),
            clock: EPOCH_MS,
            fired: vec![false; prog.faults.len()],
            timers: Vec::new(),
            actors,
            schedule: Steps::default(),
            broken: Vec::new(),
            end: None,
            max_steps: DEFAULT_MAX_STEPS,
            details: None,
            last: None,
            infrastructure: None,
            deciding: None,
            arg_buf: Scratch::default(),
            spare_regs: Spare::default(),
            watch: watch::Watch::of(&prog),
            written: watch::ALL_PARTS,
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
        self.actors.len() + self.fired.len() + usize::from(self.prog.has_decision_choice())
    }

    /// The choice that is digit 1 of a duration or an answer being chosen (digit 0 is the actor
    /// itself), when the program has `between` durations or explores answers
    /// ([`Program::has_decision_choice`]): the last choice index, after the faults.
    pub fn decision_choice(&self) -> Option<usize> {
        self.prog
            .has_decision_choice()
            .then(|| self.actors.len() + self.fired.len())
    }

    /// The actor whose duration or answer is being chosen, if one is.
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

    /// [`Machine::runnable`] into `out` (cleared first), in one pass over the actors and the
    /// faults: the random engines ask at every step, and `is_runnable` per choice counted the
    /// ready actors and the landed faults again for each.
    pub fn runnable_into(&self, out: &mut Vec<usize>) {
        out.clear();
        if self.end.is_some() {
            return;
        }
        if let Some(d) = &self.deciding {
            out.extend((d.allows(0)).then_some(d.actor));
            out.extend(self.decision_choice().filter(|_| d.allows(1)));
        } else {
            for (a, actor) in self.actors.iter().enumerate() {
                if actor.status == Status::Ready {
                    out.push(a);
                }
            }
            let n = self.actors.len();
            let faults = &self.prog.faults;
            if !out.is_empty()
                && !faults.is_empty()
                && self.fired.iter().filter(|x| **x).count() < self.prog.fault_budget
            {
                for (f, fault) in faults.iter().enumerate() {
                    if !self.fired[f] && !self.actors[fault.target].status.is_over() {
                        out.push(n + f);
                    }
                }
            }
        }
        debug_assert!(
            out.iter().copied().eq(self.runnable()),
            "runnable_into agrees with runnable"
        );
    }

    fn any_actor_ready(&self) -> bool {
        self.actors.iter().any(|a| a.status == Status::Ready)
    }
}

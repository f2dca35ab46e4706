//! Actors as real processes: the racelab binary re-executed as one worker per actor.
//!
//! Each worker runs in its own process group, asks the kernel to SIGKILL it when the harness
//! dies (PR_SET_PDEATHSIG, checked against a race with the parent's death), and performs the
//! operations the harness sends it over a pipe, one JSON line each. Faults are real: a crash is
//! SIGKILL, a signal is the real signal — caught by a real handler only while the scenario has
//! one installed, otherwise the worker dies of it — and a stall is SIGSTOP until the actor's
//! next step, then SIGCONT. The harness waits for the kernel to confirm each.
//!
//! Starting a process is the dearest part of a short run (about 0.4 s under qemu's emulation,
//! where the NFS fallback guest runs), so a loop of runs ([`with_reuse`]) hands a worker that
//! finished its run alive back to an idle pool, and the next run of the same thread resets it
//! (`Reset`: its descriptors closed, its handlers and caught signals forgotten, a new root)
//! instead of starting a process. A worker that was killed, stopped, or left mid-request is
//! never reused; [`release_idle`] ends the pooled ones when the loop is done.

use std::cell::Cell;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Mutex;
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal as NixSignal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::wire::{self, Request, Response, WireValue};
use super::Executor;
use racelab_core::error::Error;
use racelab_lang::ir::{Errno, FaultKind, Op, Signal, Value};

/// Why a worker did not perform an operation: the two end a run differently.
#[derive(Debug)]
pub(crate) enum CallFailure {
    /// The worker is gone, cannot be reached, or cannot be handed the operation: an
    /// infrastructure failure that ends the campaign, never a finding.
    Worker(Error),
    /// The operation failed inside the worker, as it would have in a thread: the actor fails.
    Operation(String),
}

impl From<CallFailure> for String {
    fn from(f: CallFailure) -> String {
        match f {
            CallFailure::Worker(e) => e.into(),
            CallFailure::Operation(msg) => msg,
        }
    }
}

mod worker_side;

pub use self::worker_side::worker_main;

/// The hidden subcommand that runs a worker.
pub(crate) const WORKER_COMMAND: &str = "__worker";

/// The binary to re-execute: `RACELAB_WORKER_EXE` when set (tests run from another binary),
/// else this very executable.
pub(crate) fn worker_exe() -> Result<PathBuf, String> {
    match std::env::var_os("RACELAB_WORKER_EXE") {
        Some(p) => Ok(PathBuf::from(p)),
        None => std::env::current_exe()
            .map_err(|e| format!("cannot find the racelab binary to start workers: {e}")),
    }
}

thread_local! {
    /// Whether workers this thread starts may go back to the idle pool ([`with_reuse`]).
    static REUSE: Cell<bool> = const { Cell::new(false) };
}

/// Live workers between runs, each with the thread that started it: PR_SET_PDEATHSIG ties a
/// worker to that thread, so only that thread takes it again.
static IDLE: Mutex<Vec<Worker>> = Mutex::new(Vec::new());

/// At most this many idle workers are kept; more are ended.
const MAX_IDLE: usize = 32;

/// Runs `f` with reuse on: the workers this thread starts in it go back to the idle pool when
/// their run drops them alive, and its runs take idle workers before starting processes.
pub(crate) fn with_reuse<R>(f: impl FnOnce() -> R) -> R {
    let before = REUSE.with(|r| r.replace(true));
    let out = f();
    REUSE.with(|r| r.set(before));
    out
}

/// Reuse on for this thread until dropped; then, unless an outer guard is still on (a suite's
/// loop of rows around a row's loop of runs), every idle worker is ended ([`release_idle`]).
/// For a loop of runs on one thread: `let _reuse = Reuse::here();`.
#[must_use = "reuse lasts as long as the guard"]
pub struct Reuse {
    before: bool,
}

impl Reuse {
    pub fn here() -> Reuse {
        Reuse {
            before: REUSE.with(|r| r.replace(true)),
        }
    }
}

impl Drop for Reuse {
    fn drop(&mut self) {
        REUSE.with(|r| r.set(self.before));
        if !self.before {
            release_idle();
        }
    }
}

/// Ends every idle worker (killed and reaped): call it when a loop of runs is done, so no
/// process outlives the work it was kept for.
pub(crate) fn release_idle() {
    let idle = std::mem::take(&mut *IDLE.lock().unwrap_or_else(|e| e.into_inner()));
    for mut w in idle {
        w.reusable = false;
        drop(w);
    }
}

/// An idle worker this thread started, reset for a run in `root`; None when there is none (or
/// the ones there died with their thread).
fn take_idle(root: &Path) -> Option<Worker> {
    if !REUSE.with(Cell::get) {
        return None;
    }
    let me = std::thread::current().id();
    let mut idle = IDLE.lock().unwrap_or_else(|e| e.into_inner());
    // Workers whose thread ended died with it: reap them now.
    idle.retain_mut(|w| {
        let alive = w.alive();
        if !alive {
            w.dead = true;
        }
        alive
    });
    let i = idle.iter().position(|w| w.started_by == me)?;
    let mut w = idle.swap_remove(i);
    drop(idle);
    match w.ask(&Request::Reset {
        root: root.to_string_lossy().into_owned(),
    }) {
        Ok(Response::Done) => Some(w),
        _ => {
            w.reusable = false;
            None
        }
    }
}

/// One actor's worker process. Dropping it kills its process group, or hands it to the idle
/// pool when its thread reuses workers and it can be reused.
pub(crate) struct Worker {
    /// The process and its pipes; None only once handed over to the idle pool.
    io: Option<Io>,
    /// The process id, kept apart from `io` for messages.
    id: u32,
    /// SIGSTOPped by a stall; continued before its next operation.
    stopped: bool,
    /// Reaped: killed by a fault or gone.
    dead: bool,
    /// May go back to the idle pool: started under [`with_reuse`] and every request answered.
    reusable: bool,
    started_by: ThreadId,
}

/// A worker's process and the pipes to it.
struct Io {
    child: Child,
    input: ChildStdin,
    output: BufReader<ChildStdout>,
}

impl Worker {
    fn pid(&self) -> Pid {
        Pid::from_raw(self.id as i32)
    }

    /// A new value owning this worker's process; this one is left empty (its drop does nothing).
    fn hand_over(&mut self) -> Option<Worker> {
        let io = self.io.take()?;
        Some(Worker {
            io: Some(io),
            id: self.id,
            stopped: false,
            dead: false,
            reusable: true,
            started_by: self.started_by,
        })
    }

    /// Alive: not exited nor killed (reaps it if it is gone).
    fn alive(&mut self) -> bool {
        self.io
            .as_mut()
            .is_some_and(|io| matches!(io.child.try_wait(), Ok(None)))
    }

    /// Performs one filesystem operation in this worker.
    pub(crate) fn perform(
        &mut self,
        op: Op,
        args: &[Value],
        now: i64,
    ) -> Result<Result<Value, Errno>, CallFailure> {
        let worker = |e: String| CallFailure::Worker(Error::infrastructure(e));
        if self.dead {
            return Err(worker(format!("worker {} is dead", self.id)));
        }
        if self.stopped {
            kill(self.pid(), NixSignal::SIGCONT)
                .map_err(|e| worker(format!("SIGCONT to worker {}: {e}", self.id)))?;
            self.stopped = false;
        }
        let args = args
            .iter()
            .map(WireValue::from_value)
            .collect::<Result<Vec<_>, _>>()
            .map_err(worker)?;
        let r = self
            .ask(&Request::Perform {
                op: wire::op_name(op).map_err(worker)?.to_string(),
                args,
                now,
            })
            .map_err(worker)?;
        match r {
            Response::Fail(msg) => Err(CallFailure::Operation(msg)),
            r => wire::result_of(r).map_err(worker),
        }
    }

    fn ask(&mut self, req: &Request) -> Result<Response, String> {
        // Unanswered until the answer is read: a worker left mid-request is never reused.
        let reusable = std::mem::replace(&mut self.reusable, false);
        let answer = self.ask_once(req);
        self.reusable = reusable && answer.is_ok();
        answer
    }

    fn ask_once(&mut self, req: &Request) -> Result<Response, String> {
        let mut line = serde_json::to_string(req).map_err(|e| e.to_string())?;
        line.push('\n');
        let id = self.id;
        let io = self
            .io
            .as_mut()
            .ok_or_else(|| format!("worker {id} was handed over"))?;
        io.input
            .write_all(line.as_bytes())
            .and_then(|()| io.input.flush())
            .map_err(|e| format!("the worker (pid {id}) is gone: {e}"))?;
        let mut answer = String::new();
        match io.output.read_line(&mut answer) {
            Ok(0) => Err(format!(
                "the worker (pid {}) exited without answering",
                self.id
            )),
            Ok(_) => serde_json::from_str(&answer)
                .map_err(|e| format!("the worker answered garbage ({e}): {answer:?}")),
            Err(e) => Err(format!("reading from the worker (pid {}): {e}", self.id)),
        }
    }

    /// Makes a fault real on this worker: SIGKILL (reaped), SIGSTOP (until its next
    /// operation), or the signal, waiting until a handler reports it or the default action kills.
    pub(crate) fn fault(&mut self, fault: &FaultKind, handled: bool) -> Result<(), String> {
        let pid = self.pid();
        match fault {
            FaultKind::Crash => {
                kill(pid, NixSignal::SIGKILL)
                    .map_err(|e| format!("SIGKILL to worker {pid}: {e}"))?;
                self.reap_killed_by(NixSignal::SIGKILL)
            }
            // A real kernel cannot be told to lose a reply: the real run goes on, and forced
            // replay reports where it diverges from the model.
            FaultKind::Retransmit => Ok(()),
            FaultKind::Stall { .. } => {
                kill(pid, NixSignal::SIGSTOP)
                    .map_err(|e| format!("SIGSTOP to worker {pid}: {e}"))?;
                match waitpid(pid, Some(WaitPidFlag::WUNTRACED)) {
                    Ok(WaitStatus::Stopped(_, NixSignal::SIGSTOP)) => {
                        self.stopped = true;
                        Ok(())
                    }
                    other => Err(format!("worker {pid} did not stop: {other:?}")),
                }
            }
            FaultKind::Signal { signal, .. } => {
                let sig = nix_signal(*signal);
                if self.stopped {
                    let _ = kill(pid, NixSignal::SIGCONT);
                    self.stopped = false;
                }
                kill(pid, sig).map_err(|e| format!("{sig} to worker {pid}: {e}"))?;
                if !handled {
                    // No handler: the default action must kill it, for real.
                    return self.reap_killed_by(sig);
                }
                // The worker's real handler sets a flag; wait until it reports the signal.
                let deadline = Instant::now() + Duration::from_secs(10);
                loop {
                    match self.ask(&Request::Signals)? {
                        Response::Signals(got) if got.iter().any(|s| s == signal.name()) => {
                            return Ok(())
                        }
                        Response::Signals(_) if Instant::now() < deadline => {
                            std::thread::sleep(Duration::from_millis(1))
                        }
                        other => {
                            return Err(format!(
                                "worker {pid} did not report SIG{} ({other:?})",
                                signal.name()
                            ))
                        }
                    }
                }
            }
        }
    }

    /// Installs (or removes) a real flag-setting handler for `signal` in the worker.
    pub(crate) fn handler(&mut self, signal: Signal, installed: bool) -> Result<(), String> {
        match self.ask(&Request::Handler {
            signal: signal.name().to_string(),
            installed,
        })? {
            Response::Done => Ok(()),
            other => Err(format!(
                "installing a SIG{} handler: {other:?}",
                signal.name()
            )),
        }
    }

    /// Waits (bounded) until the kernel reports the worker killed by `sig`.
    fn reap_killed_by(&mut self, sig: NixSignal) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match waitpid(self.pid(), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Signaled(_, s, _)) if s == sig => {
                    self.dead = true;
                    return Ok(());
                }
                Ok(WaitStatus::StillAlive) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(1))
                }
                Ok(WaitStatus::StillAlive) => {
                    return Err(format!("worker {} still alive 10 s after {sig}", self.id))
                }
                Ok(other) => {
                    self.dead = true;
                    return Err(format!(
                        "worker {} ended as {other:?}, not by {sig}",
                        self.id
                    ));
                }
                Err(e) => return Err(format!("waiting for worker {}: {e}", self.id)),
            }
        }
    }
}

/// One worker process per actor.
pub struct ProcessExecutor {
    workers: Vec<Worker>,
}

impl ProcessExecutor {
    /// One worker process per actor; actor `a` works in `roots[a]`. What fails here (the
    /// binary, a process, its pipes) is infrastructure.
    pub fn start(roots: &[PathBuf]) -> Result<ProcessExecutor, Error> {
        let exe = worker_exe()?;
        let me = std::process::id().to_string();
        let mut workers = Vec::with_capacity(roots.len());
        for (a, root) in roots.iter().enumerate() {
            if let Some(w) = take_idle(root) {
                workers.push(w);
                continue;
            }
            let mut child = Command::new(&exe)
                .arg(WORKER_COMMAND)
                .arg(root)
                .arg(&me)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .process_group(0)
                .spawn()
                .map_err(|e| {
                    format!(
                        "cannot start worker process {} for actor {a}: {e}",
                        exe.display()
                    )
                })?;
            let (Some(input), Some(output)) = (child.stdin.take(), child.stdout.take()) else {
                let _ = child.kill();
                return Err("worker pipes missing".into());
            };
            let id = child.id();
            let mut io = Io {
                child,
                input,
                output: BufReader::new(output),
            };
            // The worker says `Done` once PR_SET_PDEATHSIG is in place and its root is open.
            let mut hello = String::new();
            let ready = io
                .output
                .read_line(&mut hello)
                .ok()
                .filter(|n| *n > 0)
                .and_then(|_| serde_json::from_str::<Response>(&hello).ok());
            if !matches!(ready, Some(Response::Done)) {
                let _ = io.child.kill();
                let _ = io.child.wait();
                return Err(Error::infrastructure(format!(
                    "worker for actor {a} did not start (said {hello:?}); see its message above"
                )));
            }
            workers.push(Worker {
                io: Some(io),
                id,
                stopped: false,
                dead: false,
                reusable: REUSE.with(Cell::get),
                started_by: std::thread::current().id(),
            });
        }
        Ok(ProcessExecutor { workers })
    }

    /// Hands out the workers, one per actor, for drivers that run actors in parallel.
    pub(crate) fn into_workers(mut self) -> Vec<Worker> {
        std::mem::take(&mut self.workers)
    }

    /// The process ids of the live workers, for tests and reports.
    pub fn pids(&self) -> Vec<u32> {
        self.workers
            .iter()
            .filter(|w| !w.dead)
            .map(|w| w.id)
            .collect()
    }

    fn worker(&mut self, actor: usize) -> Result<&mut Worker, String> {
        let w = self
            .workers
            .get_mut(actor)
            .ok_or_else(|| format!("no worker for actor {actor}"))?;
        if w.dead {
            return Err(format!("actor {actor}'s process is dead"));
        }
        Ok(w)
    }
}

fn nix_signal(s: Signal) -> NixSignal {
    match s {
        Signal::Term => NixSignal::SIGTERM,
        Signal::Int => NixSignal::SIGINT,
        Signal::Hup => NixSignal::SIGHUP,
        Signal::Usr1 => NixSignal::SIGUSR1,
        Signal::Usr2 => NixSignal::SIGUSR2,
    }
}

impl Executor for ProcessExecutor {
    fn perform(
        &mut self,
        actor: usize,
        op: Op,
        args: &[Value],
        now: i64,
    ) -> Result<Result<Value, Errno>, String> {
        Ok(self.worker(actor)?.perform(op, args, now)?)
    }

    fn fault(&mut self, actor: usize, fault: &FaultKind, handled: bool) -> Result<(), String> {
        self.worker(actor)?.fault(fault, handled)
    }

    fn handler(&mut self, actor: usize, signal: Signal, installed: bool) -> Result<(), String> {
        self.worker(actor)?.handler(signal, installed)
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // Parked first: its descriptors of this run closed now (on NFS an open file whose name
        // is removed would stay behind as a `.nfsXXXX`, and its flocks would outlive the run).
        if self.reusable
            && !self.dead
            && !self.stopped
            && matches!(
                self.ask(&Request::Reset { root: "/".into() }),
                Ok(Response::Done)
            )
        {
            // Hand the process on to the pool: this value gives up its pipes and child.
            let mut idle = IDLE.lock().unwrap_or_else(|e| e.into_inner());
            if idle.len() < MAX_IDLE {
                if let Some(w) = self.hand_over() {
                    idle.push(w);
                    return;
                }
            }
        }
        if let (false, Some(io)) = (self.dead, self.io.as_mut()) {
            // The whole process group: a worker never forks, but nothing may outlive us.
            let _ = nix::sys::signal::killpg(Pid::from_raw(self.id as i32), NixSignal::SIGKILL);
            let _ = io.child.wait();
        }
    }
}

//! One execution of a scenario's real program under the gate: start a process per actor, let
//! one gated call happen per step as a [`Chooser`] decides, land faults, keep the discrete-event
//! clock, and check the scenario's invariants against the real files after every step.
//!
//! The choices are the model's: `c < actors` lets actor `c`'s pending call happen, `actors + f`
//! lands fault `f`. So a gate schedule is a portable schedule like any other, replayed by
//! following it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use reports::TraceStep;

use super::tracee::{GateError, Stop, Tracee};
use super::{expand_command, VirtualClock};
use crate::eval::{eval, truthy, Env};
use crate::ir::{oracle, FaultKind, FsInit, Program, Query, Reg, Value, When};

/// How gated runs are made.
#[derive(Debug, Clone)]
pub struct GateOptions {
    /// The racelab binary, re-executed as the launcher of each gated process.
    pub racelab: PathBuf,
    /// Where `$SCENARIO_DIR` points: the scenario file's directory.
    pub scenario_dir: PathBuf,
    /// The directory each run's root is made in (on the filesystem under test).
    pub base: PathBuf,
    /// The same directory as `base` seen through other clients (two NFS mounts of one export,
    /// each with its own attribute cache). Actor `i` runs on client `i % (1 + clients.len())`:
    /// the first on `base`, the next on `clients[0]`, and so on. The invariants read the files
    /// through `base`.
    pub clients: Vec<PathBuf>,
    /// A process that makes no gated call for this long (wall time) is hung: killed, reported.
    pub step_timeout: Duration,
    /// The step bound; beyond it the run is a livelock.
    pub max_steps: usize,
    /// Seeds the programs' random bytes (per actor): part of the schedule, so part of the token.
    pub seed: u64,
    /// Wake-ups fall on multiples of this (ns; 0: exact). Two processes whose sleeps end within
    /// one tick wake at the same instant, and the schedule orders them: the real-world analogue
    /// of the model's fixed NAP (docs/language.md, "The gate").
    pub tick_ns: u64,
    /// Put first on the gated programs' PATH: `$RACELAB_VENV/bin`, where `cargo xtask venv`
    /// installs the Python packages the built-in drivers import (flufl.lock).
    pub path_prefix: Option<PathBuf>,
}

impl GateOptions {
    pub fn new(scenario_file: &Path, base: &Path) -> Result<GateOptions, String> {
        let racelab = match std::env::var_os("RACELAB_BIN") {
            Some(p) => PathBuf::from(p),
            None => std::env::current_exe().map_err(|e| {
                format!("cannot find the racelab binary to launch gated processes: {e}")
            })?,
        };
        let dir = scenario_file
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let scenario_dir = dir
            .canonicalize()
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(GateOptions {
            racelab,
            scenario_dir,
            base: base.to_path_buf(),
            clients: Vec::new(),
            step_timeout: Duration::from_secs(20),
            max_steps: 5_000,
            seed: 1,
            tick_ns: 1_000_000_000,
            path_prefix: std::env::var_os("RACELAB_VENV").map(|v| PathBuf::from(v).join("bin")),
        })
    }
}

/// Decides each step of a gated run.
pub trait Chooser {
    /// One of `enabled` (sorted), or `None` to stop the run here (a replayed prefix has ended).
    /// `last` is the previous step's actor and whether that step changed a file others see.
    fn choose(
        &mut self,
        step: usize,
        enabled: &[u8],
        last: Option<(usize, bool)>,
    ) -> Result<Option<u8>, String>;
}

/// How a gated run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GateEnd {
    /// Every process ended (or an invariant broke and the run stopped there).
    Finished,
    /// The chooser stopped it.
    Cut,
    Livelock,
}

/// One gated execution.
#[derive(Debug, Clone)]
pub struct Execution {
    pub choices: Vec<u8>,
    pub trace: Vec<TraceStep>,
    /// Invariants (and oracles) that broke, each the first time it did, in order. The run
    /// goes on after a break, as the model's does, so that one execution can show several.
    pub broken: Vec<Broken>,
    pub end: GateEnd,
    /// Virtual time at the end, in milliseconds since the run began.
    pub elapsed_ms: u64,
}

/// An invariant that broke, why, and after how many choices (its schedule is that prefix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    pub invariant: String,
    pub message: String,
    pub steps: usize,
}

impl Execution {
    pub fn broke(&self, invariant: &str) -> bool {
        self.broken.iter().any(|b| b.invariant == invariant)
    }

    fn record(&mut self, invariant: &str, message: String) {
        if !self.broke(invariant) {
            self.broken.push(Broken {
                invariant: invariant.to_string(),
                message,
                steps: self.choices.len(),
            });
        }
    }

    /// The verdict line of a step table.
    pub fn verdict(&self) -> String {
        if self.broken.is_empty() {
            return "nothing broke".into();
        }
        self.broken
            .iter()
            .map(|b| b.message.as_str())
            .collect::<Vec<_>>()
            .join("; ")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Status {
    /// Stopped at a gated call, shown as text.
    Ready(String),
    /// Asleep (or stalled) until this virtual time; then `Ready` again, or resumed from a sleep.
    Waiting {
        until: u64,
        then: Option<String>,
    },
    Done(Ended),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Ended {
    Exited(i32),
    Killed(Signal),
    /// By a crash fault.
    Crashed,
    /// By the watchdog.
    Hung,
}

/// Kills the running process if one gated step takes longer than the timeout.
struct Watchdog {
    armed: Arc<Mutex<Option<(i32, Instant)>>>,
    fired: Arc<AtomicI32>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watchdog {
    fn start() -> Watchdog {
        let armed: Arc<Mutex<Option<(i32, Instant)>>> = Arc::default();
        let fired = Arc::new(AtomicI32::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (a, f, s) = (armed.clone(), fired.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(25));
                let due = *a.lock().unwrap_or_else(|e| e.into_inner());
                if let Some((pid, deadline)) = due {
                    if Instant::now() > deadline {
                        f.store(pid, Ordering::SeqCst);
                        let _ = nix::sys::signal::kill(
                            nix::unistd::Pid::from_raw(pid),
                            Signal::SIGKILL,
                        );
                    }
                }
            }
        });
        Watchdog {
            armed,
            fired,
            stop,
            thread: Some(thread),
        }
    }
    fn arm(&self, pid: i32, timeout: Duration) {
        *self.armed.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((pid, Instant::now() + timeout));
    }
    fn disarm(&self) -> bool {
        *self.armed.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.fired.swap(0, Ordering::SeqCst) != 0
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Each client's path of the run's root: `root` itself first, then the same directory through
/// every other client in [`GateOptions::clients`] (it was made through the first one).
fn client_roots(opts: &GateOptions, run: &Path, root: &Path) -> Result<Vec<PathBuf>, GateError> {
    let mut roots = vec![root.to_path_buf()];
    let rel = run
        .strip_prefix(&opts.base)
        .map_err(|_| format!("{} is not under {}", run.display(), opts.base.display()))?
        .join("root");
    for client in &opts.clients {
        let theirs = client.join(&rel);
        // Another client may not see the new directory until its cache of the parent expires;
        // a lookup by name asks the server.
        let theirs = theirs.canonicalize().map_err(|e| {
            format!(
                "{} (the run's root through another client): {e}",
                theirs.display()
            )
        })?;
        roots.push(theirs);
    }
    Ok(roots)
}

/// The real files an invariant reads: the root, plus racelab's conventions for sections and
/// logs (docs/language.md, "The gate").
struct GateWorld<'a> {
    prog: &'a Program,
    root: &'a Path,
    alive: Vec<bool>,
    clock: VirtualClock,
}

impl GateWorld<'_> {
    fn real(&self, model_path: &str) -> PathBuf {
        self.root.join(model_path.trim_start_matches('/'))
    }
    fn log_lines(&self, l: u32) -> Vec<String> {
        let path = self
            .root
            .join(".racelab/logs")
            .join(&self.prog.logs[l as usize]);
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Env for GateWorld<'_> {
    fn reg(&self, _r: Reg) -> Value {
        Value::None
    }
    fn self_name(&self) -> Option<&str> {
        None
    }
    fn query(&self, q: Query, args: &[Value]) -> Result<Value, String> {
        let path = || match args.first() {
            Some(Value::Str(s)) => Ok(s.to_string()),
            other => Err(format!(
                "expected a path, got {}",
                other.map_or("nothing", Value::type_name)
            )),
        };
        Ok(match q {
            // A section's holders are the marker files of live actors: a crashed holder's
            // marker stays on disk, but (as in the model) its section ends with it.
            Query::Holders(s) => {
                let dir = self.root.join(".racelab/critical").join(&self.prog.sections[s as usize]);
                let names: Vec<String> = std::fs::read_dir(dir).map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect()).unwrap_or_default();
                let live = self.prog.actors.iter().enumerate().filter(|(i, a)| self.alive[*i] && names.iter().any(|n| **n == *a.name)).count();
                Value::Int(live as i64)
            }
            Query::LogCount(l) => Value::Int(self.log_lines(l).len() as i64),
            Query::LogCountMatching(l) => {
                let needle = args.first().map(|v| v.to_string()).unwrap_or_default();
                Value::Int(self.log_lines(l).iter().filter(|e| e.contains(&needle)).count() as i64)
            }
            Query::Exists => Value::Bool(self.real(&path()?).exists()),
            Query::Contents => match std::fs::read_to_string(self.real(&path()?)) {
                Ok(s) => Value::str(&s),
                Err(_) => Value::None,
            },
            Query::Now => Value::Int(self.clock.wall_ms()),
            Query::Cell(_) | Query::LocalCount(_) => return Err("cells and thread-locals live inside the model; a gated program's state is its files (see docs/language.md, \"The gate\")".into()),
            Query::Sql(_) | Query::Connections => return Err("a gated run has no database".into()),
        })
    }
}

/// Runs `prog`'s gate command once per actor and steps them as `chooser` says.
pub fn execute(
    prog: &Program,
    opts: &GateOptions,
    chooser: &mut dyn Chooser,
) -> Result<Execution, GateError> {
    let Some(command) = prog.gate.as_deref() else {
        return Err(format!(
            "scenario `{}` variant `{}` has no `gate \"COMMAND\"`: there is no real program to run",
            prog.scenario, prog.variant
        ));
    };
    let run = tempfile::Builder::new()
        .prefix("racelab-gate-")
        .tempdir_in(&opts.base)
        .map_err(|e| {
            format!(
                "cannot make a run directory in {}: {e}",
                opts.base.display()
            )
        })?;
    let root = run.path().join("root");
    let logs = run.path().join("logs");
    for d in [root.join(".racelab/logs"), logs.clone()] {
        std::fs::create_dir_all(&d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    for s in &prog.sections {
        std::fs::create_dir_all(root.join(".racelab/critical").join(s))
            .map_err(|e| format!("{}: {e}", root.display()))?;
    }
    for init in &prog.fs {
        let r = match init {
            FsInit::Dir(p) => std::fs::create_dir_all(root.join(p.trim_start_matches('/'))),
            FsInit::File(p, c) => std::fs::write(root.join(p.trim_start_matches('/')), c),
        };
        r.map_err(|e| format!("setting up the run's files: {e}"))?;
    }
    let root = root
        .canonicalize()
        .map_err(|e| format!("{}: {e}", root.display()))?;
    let roots = client_roots(opts, run.path(), &root)?;

    let mut procs = Vec::new();
    for (i, a) in prog.actors.iter().enumerate() {
        let root = &roots[i % roots.len()];
        let argv = expand_command(command, root, &a.name, i, &opts.scenario_dir, &opts.racelab);
        let env = vec![
            ("RACELAB_ROOT".to_string(), root.display().to_string()),
            ("RACELAB_ACTOR".to_string(), a.name.to_string()),
            ("RACELAB_INDEX".to_string(), i.to_string()),
            // Everything a run depends on comes from the schedule: no hash randomization, no
            // bytecode caches written halfway through, one time zone.
            ("PYTHONHASHSEED".to_string(), "0".to_string()),
            ("PYTHONDONTWRITEBYTECODE".to_string(), "1".to_string()),
            ("TZ".to_string(), "UTC".to_string()),
        ];
        let mut env = env;
        if let Some(bin) = &opts.path_prefix {
            let path = std::env::var("PATH").unwrap_or_default();
            env.push(("PATH".to_string(), format!("{}:{path}", bin.display())));
        }
        procs.push(Tracee::spawn(
            &opts.racelab,
            &argv,
            &env,
            &opts.scenario_dir,
            root,
            &logs,
            opts.seed
                .wrapping_mul(0x100_0000_01B3)
                .wrapping_add(i as u64 + 1),
        )?);
    }

    let watchdog = Watchdog::start();
    let mut clock = VirtualClock::default();
    let n = prog.actors.len();
    let mut status = Vec::with_capacity(n);
    for p in procs.iter_mut() {
        p.start()?;
    }
    for (i, p) in procs.iter_mut().enumerate() {
        let st = resume(p, &clock, &watchdog, opts)?;
        // A program that fails before its first gated call did not run the scenario at all
        // (a missing interpreter or module, a typo in the command): that is the setup's fault.
        if let Status::Done(end) = &st {
            if *end != Ended::Exited(0) {
                return Err(format!(
                    "{} ({}) ended before its first gated call ({end:?}): {}",
                    prog.actors[i].name,
                    command,
                    p.stderr_tail()
                ));
            }
        }
        status.push(st);
    }
    let mut fired = vec![false; prog.faults.len()];
    let mut last: Option<(usize, bool)> = None;
    let mut exec = Execution {
        choices: Vec::new(),
        trace: Vec::new(),
        broken: Vec::new(),
        end: GateEnd::Finished,
        elapsed_ms: 0,
    };

    let result = (|| -> Result<(), GateError> {
        loop {
            if let Some(sig) = crate::backend::cancel::requested() {
                return Err(format!("interrupted by signal {sig}"));
            }
            // Wake whoever is due; when nobody can run, the clock jumps to the next wake-up.
            loop {
                let ready = status.iter().any(|s| matches!(s, Status::Ready(_)));
                let next = status
                    .iter()
                    .filter_map(|s| {
                        if let Status::Waiting { until, .. } = s {
                            Some(*until)
                        } else {
                            None
                        }
                    })
                    .min();
                match next {
                    Some(t) if !ready || t <= clock.now_ns() => {
                        clock.advance_to(t);
                        for i in 0..n {
                            if let Status::Waiting { until, then } = &status[i] {
                                if *until <= clock.now_ns() {
                                    status[i] = match then.clone() {
                                        Some(call) => Status::Ready(call),
                                        // The end of a sleep is no step: nothing shared happens
                                        // before the process's next gated call.
                                        None => resume(&mut procs[i], &clock, &watchdog, opts)?,
                                    };
                                    // A process may end right after its sleep (an exception
                                    // raised once a back-off runs out): a finding, at the
                                    // step that ends the sleep.
                                    if let Some((oracle, why)) = bad_end(&prog.actors[i].name, &status[i], &procs[i], opts) {
                                        exec.record(oracle, why);
                                        exec.trace.push(TraceStep {
                                            actor: Some(i),
                                            time_ms: clock.wall_ms(),
                                            operation: "(wakes)".into(),
                                            result: describe_end(&status[i]),
                                            broke: vec![oracle.to_string()],
                                            line: 0,
                                        });
                                    }
                                }
                            }
                        }
                    }
                    _ => break,
                }
            }
            let budget_left = fired.iter().filter(|f| **f).count() < prog.fault_budget;
            let mut enabled: Vec<u8> = (0..n)
                .filter(|&i| matches!(status[i], Status::Ready(_)))
                .map(|i| i as u8)
                .collect();
            if enabled.is_empty() {
                return Ok(());
            }
            for (f, fault) in prog.faults.iter().enumerate() {
                if !fired[f] && budget_left && !matches!(status[fault.target], Status::Done(_)) {
                    enabled.push((n + f) as u8);
                }
            }
            if exec.choices.len() >= opts.max_steps {
                exec.end = GateEnd::Livelock;
                exec.record(
                    oracle::LIVELOCK,
                    format!("livelock: no end after {} gated steps", opts.max_steps),
                );
                return Ok(());
            }
            let Some(c) = chooser.choose(exec.choices.len(), &enabled, last)? else {
                exec.end = GateEnd::Cut;
                return Ok(());
            };
            if !enabled.contains(&c) {
                return Err(format!(
                    "the schedule chose #{c}, which is not enabled here (enabled: {enabled:?})"
                ));
            }
            exec.choices.push(c);
            let time_ms = clock.wall_ms();
            let c = c as usize;
            let (actor, operation, result) = if c < n {
                let Status::Ready(call) = status[c].clone() else {
                    unreachable!("enabled actors are ready")
                };
                status[c] = resume(&mut procs[c], &clock, &watchdog, opts)?;
                let result = match (procs[c].last_result.is_empty(), &status[c]) {
                    (true, _) => describe_end(&status[c]),
                    (false, Status::Done(_)) => format!(
                        "{}, then {}",
                        procs[c].last_result,
                        describe_end(&status[c])
                    ),
                    (false, _) => procs[c].last_result.clone(),
                };
                (c, call, result)
            } else {
                let f = c - n;
                fired[f] = true;
                let fault = &prog.faults[f];
                let t = fault.target;
                let result = match fault.kind {
                    FaultKind::Crash => {
                        procs[t].reap();
                        status[t] = Status::Done(Ended::Crashed);
                        "crashed (SIGKILL): stops for good; its files stay".to_string()
                    }
                    FaultKind::Stall { for_ms } => {
                        let d = for_ms as u64 * 1_000_000;
                        status[t] = match status[t].clone() {
                            Status::Ready(call) => Status::Waiting { until: clock.now_ns() + d, then: Some(call) },
                            Status::Waiting { until, then } => Status::Waiting { until: until.max(clock.now_ns() + d), then },
                            done => done,
                        };
                        format!("stalled for {}", crate::ir::format_duration(for_ms))
                    }
                    ref other => return Err(format!("fault `{}` ({other:?}) has no gated form yet; the gate lands crash and stall faults", fault.name)),
                };
                (t, fault.text.clone(), result)
            };
            last = Some((actor, c < n && changes_files(&operation, &result)));
            // A process that ended badly in this step is a finding at this step.
            if c < n {
                if let Some((oracle, why)) = bad_end(&prog.actors[c].name, &status[c], &procs[c], opts) {
                    exec.record(oracle, why);
                }
            }
            let alive: Vec<bool> = status
                .iter()
                .map(|s| !matches!(s, Status::Done(_)))
                .collect();
            let world = GateWorld {
                prog,
                root: &root,
                alive,
                clock,
            };
            let mut broke = Vec::new();
            for inv in prog.invariants.iter().filter(|i| i.when == When::Always) {
                match eval(&inv.cond, &world).and_then(|v| truthy(&v)) {
                    Ok(true) => {}
                    Ok(false) => broke.push(inv.name.clone()),
                    Err(e) => {
                        return Err(format!(
                            "invariant `{}` cannot be read from the real files: {e}",
                            inv.name
                        ))
                    }
                }
            }
            for name in &broke {
                if let Some(inv) = prog.invariants.iter().find(|i| i.name == *name) {
                    exec.record(name, format!("{} broke: {}", inv.name, inv.text));
                }
            }
            exec.trace.push(TraceStep {
                actor: Some(actor),
                time_ms,
                operation,
                result,
                broke,
                line: 0,
            });
        }
    })();
    drop(watchdog);
    exec.elapsed_ms = clock.now_ns() / 1_000_000;
    // Whatever happened, no process outlives the run.
    for p in procs.iter_mut() {
        p.reap();
    }
    result?;
    if exec.end == GateEnd::Finished {
        let world = GateWorld {
            prog,
            root: &root,
            alive: vec![false; n],
            clock,
        };
        for inv in prog.invariants.iter().filter(|i| i.when == When::AtEnd) {
            match eval(&inv.cond, &world).and_then(|v| truthy(&v)) {
                Ok(true) => {}
                Ok(false) => exec.record(
                    &inv.name,
                    format!("{} broke at the end: {}", inv.name, inv.text),
                ),
                Err(e) => {
                    return Err(format!(
                        "invariant `{}` cannot be read from the real files: {e}",
                        inv.name
                    ))
                }
            }
        }
    }
    Ok(exec)
}

/// The finding a process's end is, if it ended badly: a non-zero exit or a signal is an
/// `unhandled_error`, a hang a `deadlock`.
fn bad_end(
    who: &str,
    status: &Status,
    p: &Tracee,
    opts: &GateOptions,
) -> Option<(&'static str, String)> {
    match status {
        Status::Done(Ended::Exited(code)) if *code != 0 => Some((oracle::UNHANDLED_ERROR, format!("unhandled_error: {who} exited with status {code}: {}", p.stderr_tail()))),
        Status::Done(Ended::Killed(sig)) => Some((oracle::UNHANDLED_ERROR, format!("unhandled_error: {who} was killed by {sig}: {}", p.stderr_tail()))),
        Status::Done(Ended::Hung) => Some((
            oracle::DEADLOCK,
            format!("deadlock: {who} made no gated call for {:?} of wall time (blocked outside the gate, or spinning): killed and reaped", opts.step_timeout),
        )),
        _ => None,
    }
}

/// Lets `p`'s pending call happen and runs it to its next stop, under the watchdog.
fn resume(
    p: &mut Tracee,
    clock: &VirtualClock,
    watchdog: &Watchdog,
    opts: &GateOptions,
) -> Result<Status, GateError> {
    watchdog.arm(p.pid.as_raw(), opts.step_timeout);
    let stop = p.resume(clock);
    let hung = watchdog.disarm();
    Ok(match stop? {
        Stop::Step(call) => Status::Ready(call),
        Stop::Sleep(until) if opts.tick_ns > 0 => Status::Waiting {
            until: until.div_ceil(opts.tick_ns) * opts.tick_ns,
            then: None,
        },
        Stop::Sleep(until) => Status::Waiting { until, then: None },
        Stop::Exited(code) => Status::Done(Ended::Exited(code)),
        Stop::Killed(_) if hung => Status::Done(Ended::Hung),
        Stop::Killed(sig) => Status::Done(Ended::Killed(sig)),
    })
}

/// Whether a step changed what other processes can see: a successful link, unlink, rename,
/// utime, write, flock (taking or dropping the lock; a close that is a step drops one), or
/// entering or leaving a section. Schedulers prefer to switch after these.
fn changes_files(operation: &str, result: &str) -> bool {
    let op = operation.split('(').next().unwrap_or("");
    let failed = result.starts_with('E');
    matches!(
        op,
        "link"
            | "unlink"
            | "rename"
            | "utime"
            | "write"
            | "mkdir"
            | "rmdir"
            | "flock"
            | "flock-un"
            | "close"
    ) && !failed
        || operation.starts_with("enter ")
        || operation.starts_with("leave ")
}

fn describe_end(s: &Status) -> String {
    match s {
        Status::Done(Ended::Exited(c)) => format!("exits ({c})"),
        Status::Done(Ended::Killed(sig)) => format!("killed by {sig}"),
        Status::Done(Ended::Hung) => "hung: killed".into(),
        _ => "ok".into(),
    }
}

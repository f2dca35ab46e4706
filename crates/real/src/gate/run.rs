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

use super::tracee::{coarse_now_ns, FileTimeMap, FileTimes, GateError, Stop, ThreadAt, Tracee};
use super::{expand_command, VirtualClock};
use racelab_lang::eval::{eval, truthy, Env};
use racelab_lang::ir::{oracle, FaultKind, FsInit, Program, Query, Reg, Value, When};

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
    /// More environment for the gated programs (tests point `RACELAB_VENV` at their own).
    pub extra_env: Vec<(String, String)>,
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
            extra_env: Vec::new(),
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

    /// Which of the `ready` threads of `actor` at gated calls goes (`0..ready`, in the order the
    /// threads started), asked only when there are two or more: a schedule records it as one more
    /// choice right after the actor's. `None` stops the run. The first is the default: a chooser
    /// that does not explore threads runs the oldest.
    fn choose_thread(
        &mut self,
        _step: usize,
        _actor: usize,
        _ready: usize,
    ) -> Result<Option<u8>, String> {
        Ok(Some(0))
    }
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
    /// The positions in `choices` that pick a thread of the actor chosen just before (an
    /// actor with two or more threads at gated calls), not an actor.
    pub thread_choices: Vec<usize>,
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

    /// Context switches among the first `upto` choices: a choice of another actor (a process,
    /// or a fault) than the one before. A thread choice moves within one process, no switch.
    pub fn process_switches(&self, upto: usize) -> u32 {
        let actors: Vec<u8> = self
            .choices
            .iter()
            .take(upto)
            .enumerate()
            .filter(|(i, _)| !self.thread_choices.contains(i))
            .map(|(_, c)| *c)
            .collect();
        actors.windows(2).filter(|w| w[0] != w[1]).count() as u32
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
        )
        .into());
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
    let made_at = coarse_now_ns();
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
    let times: FileTimes = std::rc::Rc::new(std::cell::RefCell::new(FileTimeMap {
        since_ns: made_at,
        start_wall_ns: VirtualClock::default().wall_ns(),
        ..Default::default()
    }));
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
        env.extend(opts.extra_env.iter().cloned());
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
            opts.tick_ns,
            times.clone(),
        )?);
    }

    let watchdog = Watchdog::start();
    let mut clock = VirtualClock::default();
    let n = prog.actors.len();
    // How each actor ended, when racelab ended it (a crash fault, the hang watchdog).
    let mut fate: Vec<Option<Ended>> = vec![None; n];
    let mut reported = vec![false; n];
    let mut stalled_until = vec![0u64; n];
    for p in procs.iter_mut() {
        p.start()?;
    }
    let first = settle(&mut procs, &clock, &watchdog, opts, &mut fate);
    if let Err(e) = first {
        for p in procs.iter_mut() {
            p.reap();
        }
        return Err(e);
    }
    for (i, p) in procs.iter().enumerate() {
        // A program that fails before its first gated call did not run the scenario at all
        // (a missing interpreter or module, a typo in the command): that is the setup's fault.
        let end = ended(p, &fate[i]);
        if let Some(end) = end {
            if end == Ended::Exited(super::SKIP_STATUS) {
                return Err(racelab_core::error::Error::skipped(format!(
                    "{} ({command}) exited {} before its first gated call: {}",
                    prog.actors[i].name,
                    super::SKIP_STATUS,
                    p.stderr_tail()
                )));
            }
            if end != Ended::Exited(0) {
                return Err(format!(
                    "{} ({}) ended before its first gated call ({end:?}): {}",
                    prog.actors[i].name,
                    command,
                    p.stderr_tail()
                )
                .into());
            }
            reported[i] = true;
        }
    }
    let mut fired = vec![false; prog.faults.len()];
    let mut last: Option<(usize, bool)> = None;
    let mut exec = Execution {
        choices: Vec::new(),
        thread_choices: Vec::new(),
        trace: Vec::new(),
        broken: Vec::new(),
        end: GateEnd::Finished,
        elapsed_ms: 0,
    };

    let result = (|| -> Result<(), GateError> {
        loop {
            if let Some(sig) = crate::backend::cancel::requested() {
                return Err(format!("interrupted by signal {sig}").into());
            }
            let enabled_actors = |procs: &[Tracee], clock: &VirtualClock| -> Vec<u8> {
                (0..n)
                    .filter(|&i| {
                        procs[i].alive()
                            && stalled_until[i] <= clock.now_ns()
                            && !procs[i].ready().is_empty()
                    })
                    .map(|i| i as u8)
                    .collect()
            };
            // Wake whoever is due; when nobody can run, the clock jumps to the next wake-up.
            loop {
                let ready = !enabled_actors(&procs, &clock).is_empty();
                let next = procs
                    .iter()
                    .filter(|p| p.alive())
                    .filter_map(Tracee::next_wakeup)
                    .chain(
                        (0..n)
                            .filter(|&i| procs[i].alive() && stalled_until[i] > clock.now_ns())
                            .map(|i| stalled_until[i]),
                    )
                    .min();
                match next {
                    Some(t) if !ready || t <= clock.now_ns() => {
                        clock.advance_to(t);
                        // The end of a sleep is no step: nothing shared happens before the
                        // thread's next gated call.
                        for p in procs.iter_mut().filter(|p| p.alive()) {
                            p.wake_due(&clock)?;
                        }
                        settle(&mut procs, &clock, &watchdog, opts, &mut fate)?;
                        note_ends(prog, &procs, &fate, &mut reported, &mut exec, opts);
                    }
                    _ => break,
                }
            }
            let budget_left = fired.iter().filter(|f| **f).count() < prog.fault_budget;
            let mut enabled = enabled_actors(&procs, &clock);
            if enabled.is_empty() {
                return Ok(());
            }
            for (f, fault) in prog.faults.iter().enumerate() {
                if !fired[f] && budget_left && procs[fault.target].alive() {
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
                )
                .into());
            }
            exec.choices.push(c);
            let time_ms = clock.wall_ms();
            let c = c as usize;
            let (actor, operation, result) = if c < n {
                // An actor with several threads at gated calls: one more choice, which thread
                // (0 = the one that started first).
                let ready = procs[c].ready();
                let k = if ready.len() > 1 {
                    let Some(k) = chooser.choose_thread(exec.choices.len(), c, ready.len())? else {
                        exec.choices.pop();
                        exec.end = GateEnd::Cut;
                        return Ok(());
                    };
                    if k as usize >= ready.len() {
                        return Err(format!(
                            "the schedule chose thread {k} of #{c}, which has {} threads at gated calls here",
                            ready.len()
                        ).into());
                    }
                    exec.thread_choices.push(exec.choices.len());
                    exec.choices.push(k);
                    k as usize
                } else {
                    0
                };
                let t = ready[k];
                let call = procs[c].call(t);
                watchdog.arm(procs[c].pid.as_raw(), opts.step_timeout);
                let stepped = procs[c].step(t, &clock);
                if watchdog.disarm() {
                    fate[c] = Some(Ended::Hung);
                }
                stepped?;
                settle(&mut procs, &clock, &watchdog, opts, &mut fate)?;
                let end = ended(&procs[c], &fate[c]);
                let result = match (procs[c].last_result.is_empty(), &end) {
                    (true, Some(e)) => describe_end(e),
                    (true, None) => "ok".into(),
                    (false, Some(e)) => {
                        format!("{}, then {}", procs[c].last_result, describe_end(e))
                    }
                    (false, None) => procs[c].last_result.clone(),
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
                        fate[t] = Some(Ended::Crashed);
                        reported[t] = true;
                        "crashed (SIGKILL): stops for good; its files stay".to_string()
                    }
                    FaultKind::Stall { for_ms } => {
                        let d = for_ms as u64 * 1_000_000;
                        stalled_until[t] = stalled_until[t].max(clock.now_ns() + d);
                        format!("stalled for {}", racelab_lang::ir::format_duration(for_ms))
                    }
                    ref other => return Err(format!("fault `{}` ({other:?}) has no gated form yet; the gate lands crash and stall faults", fault.name).into()),
                };
                (t, fault.text.clone(), result)
            };
            last = Some((actor, c < n && changes_files(&operation, &result)));
            // A process that ended badly in this step is a finding at this step.
            note_ends(prog, &procs, &fate, &mut reported, &mut exec, opts);
            let alive: Vec<bool> = procs.iter().map(Tracee::alive).collect();
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
                        )
                        .into())
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
                    )
                    .into())
                }
            }
        }
    }
    Ok(exec)
}

/// How actor `p` ended, if it has: racelab's doing (`fate`) or the process's own.
fn ended(p: &Tracee, fate: &Option<Ended>) -> Option<Ended> {
    if let Some(f) = fate {
        return Some(f.clone());
    }
    match p.end.as_ref()? {
        Stop::Exited(code) => Some(Ended::Exited(*code)),
        Stop::Killed(sig) => Some(Ended::Killed(*sig)),
    }
}

/// Records, at the current step, every actor that has just ended badly: a non-zero exit or a
/// signal is an unhandled error, a hang a deadlock.
fn note_ends(
    prog: &Program,
    procs: &[Tracee],
    fate: &[Option<Ended>],
    reported: &mut [bool],
    exec: &mut Execution,
    opts: &GateOptions,
) {
    for i in 0..procs.len() {
        if reported[i] {
            continue;
        }
        let Some(end) = ended(&procs[i], &fate[i]) else {
            continue;
        };
        reported[i] = true;
        let who = &prog.actors[i].name;
        match end {
            Ended::Exited(code) if code != 0 => exec.record(oracle::UNHANDLED_ERROR, format!("unhandled_error: {who} exited with status {code}: {}", procs[i].stderr_tail())),
            Ended::Killed(sig) => exec.record(oracle::UNHANDLED_ERROR, format!("unhandled_error: {who} was killed by {sig}: {}", procs[i].stderr_tail())),
            Ended::Hung => exec.record(
                oracle::DEADLOCK,
                format!("deadlock: {who} made no gated call for {:?} of wall time (blocked outside the gate, or spinning): killed and reaped", opts.step_timeout),
            ),
            _ => {}
        }
    }
}

/// Lets every free thread of every process run until the program is *settled*: each thread is
/// held by the gate (at a step, asleep, in a timed wait) or idle in the kernel (a futex, an
/// epoll with no deadline), and something can go on (a thread at a step, a wake-up due, or
/// every process ended). Nothing then changes until racelab lets a thread go, so the schedule's
/// choice is among everything that can run. A program that does not settle within
/// `--step-timeout` (spinning, or every thread idle with nothing to wake it) is killed and
/// marked hung.
fn settle(
    procs: &mut [Tracee],
    clock: &VirtualClock,
    watchdog: &Watchdog,
    opts: &GateOptions,
    fate: &mut [Option<Ended>],
) -> Result<(), GateError> {
    // A single-threaded program (the common case) is waited for, not polled: one free thread
    // in all, alone in its process.
    loop {
        let free: Vec<usize> = (0..procs.len())
            .filter(|&i| {
                procs[i].alive() && procs[i].threads.iter().any(|t| t.at == ThreadAt::Free)
            })
            .collect();
        let [i] = free[..] else { break };
        if procs[i].live_threads() != 1 {
            break;
        }
        watchdog.arm(procs[i].pid.as_raw(), opts.step_timeout);
        let waited = procs[i].wait_single(clock);
        if watchdog.disarm() {
            fate[i] = Some(Ended::Hung);
        }
        waited?;
        if procs[i].live_threads() <= 1 {
            return Ok(());
        }
    }
    let deadline = Instant::now() + opts.step_timeout;
    let mut probed = false;
    let mut quiet = 0u32;
    let mut last_signature = None;
    loop {
        let mut any = false;
        for p in procs.iter_mut() {
            any |= p.drain(clock)?;
        }
        if any {
            quiet = 0;
            last_signature = None;
            continue;
        }
        // Settled twice over, with no thread run in between (see `idle_signature`).
        let signature: Option<Vec<Vec<(i32, u64)>>> =
            procs.iter().map(Tracee::idle_signature).collect();
        let confirmed = signature.is_some() && signature == last_signature;
        last_signature = signature;
        if confirmed {
            if !probed {
                probed = true;
                let mut probing = false;
                for p in procs.iter_mut().filter(|p| p.alive()) {
                    probing |= p.probe_timed()?;
                }
                if probing {
                    last_signature = None;
                    continue;
                }
            }
            let goes_on = procs.iter().all(|p| !p.alive())
                || procs
                    .iter()
                    .any(|p| p.alive() && (!p.ready().is_empty() || p.next_wakeup().is_some()));
            if goes_on {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            // Spinning threads, or everything idle with nothing to wake it: hung.
            let all_settled = procs.iter().all(Tracee::settled);
            for (i, p) in procs.iter_mut().enumerate() {
                if p.alive() && (all_settled || !p.settled()) {
                    p.reap();
                    fate[i] = Some(Ended::Hung);
                }
            }
            return Ok(());
        }
        // Poll: a few yields first (a thread pool's hand-over is quick), then short sleeps.
        quiet += 1;
        if quiet < 20 {
            std::thread::yield_now();
        } else {
            std::thread::sleep(Duration::from_micros(if quiet < 200 { 50 } else { 500 }));
        }
    }
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

fn describe_end(e: &Ended) -> String {
    match e {
        Ended::Exited(c) => format!("exits ({c})"),
        Ended::Killed(sig) => format!("killed by {sig}"),
        Ended::Hung => "hung: killed".into(),
        Ended::Crashed => "crashed".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_choice_is_no_context_switch() {
        // Actor 0, its thread 1; actor 0, its thread 0; actor 1; actor 1; actor 0.
        let exec = Execution {
            choices: vec![0, 1, 0, 0, 1, 1, 0],
            thread_choices: vec![1, 3],
            trace: Vec::new(),
            broken: Vec::new(),
            end: GateEnd::Finished,
            elapsed_ms: 0,
        };
        assert_eq!(exec.process_switches(7), 2);
        assert_eq!(exec.process_switches(4), 0);
        // Counted as plain actors, the same choices made four switches.
        assert_eq!(exec.choices.windows(2).filter(|w| w[0] != w[1]).count(), 4);
    }
}

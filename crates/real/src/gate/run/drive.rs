//! Driving one gated execution: launching the actors' processes, letting the chooser pick each
//! step, landing faults, keeping the clock, and checking invariants after every step.

use reports::TraceStep;

use super::super::tracee::{coarse_now_ns, FileTimeMap, FileTimes, GateError, Tracee};
use super::ends::{changes_files, describe_end, ended, note_ends, settle, Ended};
use super::watchdog::Watchdog;
use super::world::{client_roots, GateWorld};
use super::{Chooser, Execution, GateEnd, GateOptions, Last};
use crate::gate::{expand_command, VirtualClock};
use racelab_lang::eval::{eval, truthy};
use racelab_lang::ir::{oracle, FaultKind, FsInit, Program, When};

/// How long a program may take to reach its first gated call (see `execute`): its start-up,
/// which no schedule orders.
const STARTUP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// Runs `prog`'s gate command once per actor and steps them as `chooser` says: one execution,
/// which the caller starts ([`Chooser::new_execution`]) and ends ([`Chooser::end_execution`])
/// when it explores with one chooser.
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
            opts.ptrace_only,
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
    // Start-up (an interpreter loading its modules) is not a step, and takes far longer in an
    // emulated guest: measured under qemu's TCG on a loaded host, Python with filelock did not
    // reach its first gated call within a step's 20 s.
    let startup = GateOptions {
        step_timeout: opts.step_timeout.max(STARTUP_TIMEOUT),
        ..opts.clone()
    };
    let first = settle(&mut procs, &clock, &watchdog, &startup, &mut fate);
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
            if end == Ended::Exited(super::super::SKIP_STATUS) {
                return Err(racelab_core::error::Error::skipped(format!(
                    "{} ({command}) exited {} before its first gated call: {}",
                    prog.actors[i].name,
                    super::super::SKIP_STATUS,
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
    let mut last: Option<Last> = None;
    let mut exec = Execution {
        choices: Vec::new(),
        thread_choices: Vec::new(),
        trace: Vec::new(),
        broken: Vec::new(),
        end: GateEnd::Finished,
        elapsed_ms: 0,
        notified_steps: 0,
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
            let choices: Vec<usize> = enabled.iter().map(|&c| usize::from(c)).collect();
            let Some(c) = chooser.next_choice(&choices, last) else {
                exec.end = GateEnd::Cut;
                return Ok(());
            };
            let Some(c) = u8::try_from(c).ok().filter(|c| enabled.contains(c)) else {
                return Err(format!(
                    "the schedule chose #{c}, which is not enabled here (enabled: {enabled:?})"
                )
                .into());
            };
            exec.choices.push(c);
            let time_ms = clock.wall_ms();
            let c = c as usize;
            let (actor, operation, result) = if c < n {
                // An actor with several threads at gated calls: one more choice, which thread
                // (0 = the one that started first).
                let ready = procs[c].ready();
                let k = if ready.len() > 1 {
                    let Some(k) = chooser.next_thread(c, ready.len()) else {
                        exec.choices.pop();
                        exec.end = GateEnd::Cut;
                        return Ok(());
                    };
                    let Some(k) = u8::try_from(k)
                        .ok()
                        .filter(|&k| usize::from(k) < ready.len())
                    else {
                        return Err(format!(
                            "the schedule chose thread {k} of #{c}, which has {} threads at gated calls here",
                            ready.len()
                        ).into());
                    };
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
            last = Some(Last {
                actor,
                shared: c < n && changes_files(&operation, &result),
            });
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
    exec.notified_steps = procs.iter().map(|p| p.notified_steps).sum();
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

//! The worker process's side: its main loop (performing requests on the real filesystem under
//! its root), and signal handlers that only set a flag until the scenario's handler runs.

use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use nix::sys::signal::Signal as NixSignal;

use super::super::realfs::RealFs;
use super::super::wire::{self, Request, Response, WireValue};
use super::nix_signal;
use racelab_core::model::world::{OpCtx, World};
use racelab_lang::ir::{Signal, Value};

/// The worker's main loop (`racelab __worker ROOT PARENT_PID`). Returns the exit code.
pub fn worker_main(root: &Path, parent: u32) -> i32 {
    // Die with the harness; and if it died before this line, notice and go.
    if let Err(e) = nix::sys::prctl::set_pdeathsig(NixSignal::SIGKILL) {
        eprintln!("racelab worker: PR_SET_PDEATHSIG failed: {e}");
        return 3;
    }
    if nix::unistd::getppid().as_raw() as u32 != parent {
        return 3;
    }
    let mut fs = match RealFs::open(root) {
        Ok(fs) => fs,
        Err(e) => {
            eprintln!("racelab worker: {e}");
            return 3;
        }
    };
    let mut signals = SignalFlags::default();
    let stdin = std::io::stdin();
    let mut out = std::io::stdout().lock();
    if send(&mut out, &Response::Done).is_err() {
        return 3;
    }
    for line in stdin.lock().lines() {
        let Ok(line) = line else { return 3 };
        let response = match serde_json::from_str::<Request>(&line) {
            Err(e) => Response::Fail(format!("bad request ({e})")),
            Ok(Request::Perform { op, args, now }) => match wire::op_of(&op) {
                None => Response::Fail(format!("unknown operation `{op}`")),
                Some(op) => {
                    let args: Vec<Value> = args.into_iter().map(WireValue::into_value).collect();
                    match fs.perform(op, &args, &OpCtx { now, actor: 0 }) {
                        Ok(Ok(v)) => {
                            WireValue::from_value(&v).map_or_else(Response::Fail, Response::Ok)
                        }
                        Ok(Err(e)) => Response::Errno(e.name().to_string()),
                        Err(msg) => Response::Fail(msg),
                    }
                }
            },
            Ok(Request::Handler { signal, installed }) => match Signal::from_name(&signal) {
                Some(s) => signals
                    .set(s, installed)
                    .map_or_else(Response::Fail, |()| Response::Done),
                None => Response::Fail(format!("unknown signal {signal}")),
            },
            Ok(Request::Signals) => Response::Signals(signals.take()),
            Ok(Request::Reset { root }) => match RealFs::open(Path::new(&root)) {
                Ok(fresh) => {
                    // The last run's descriptors (and their flocks) close with the old one.
                    fs = fresh;
                    signals.reset();
                    Response::Done
                }
                Err(e) => Response::Fail(e.to_string()),
            },
        };
        if send(&mut out, &response).is_err() {
            return 3;
        }
    }
    0
}

fn send(out: &mut impl Write, r: &Response) -> std::io::Result<()> {
    let line = serde_json::to_string(r).map_err(std::io::Error::other)?;
    writeln!(out, "{line}")?;
    out.flush()
}

/// Real signal handlers that only set a flag, as CPython's C-level handler does; the scenario's
/// handler then runs at the actor's next step boundary. While no handler is installed, the
/// default action is emulated, so the worker dies of the signal as an unhandled process would.
#[derive(Default)]
struct SignalFlags {
    hooks: Vec<(Signal, Arc<AtomicBool>, Arc<AtomicBool>)>,
}

impl SignalFlags {
    fn set(&mut self, s: Signal, installed: bool) -> Result<(), String> {
        if let Some((_, default_action, _)) = self.hooks.iter().find(|(x, _, _)| *x == s) {
            default_action.store(!installed, Ordering::SeqCst);
            return Ok(());
        }
        let default_action = Arc::new(AtomicBool::new(!installed));
        let received = Arc::new(AtomicBool::new(false));
        let raw = nix_signal(s) as i32;
        // signal-hook runs the default action while `default_action` is true (no handler
        // installed); the flag is set either way.
        signal_hook::flag::register_conditional_default(raw, Arc::clone(&default_action))
            .map_err(|e| e.to_string())?;
        signal_hook::flag::register(raw, Arc::clone(&received)).map_err(|e| e.to_string())?;
        self.hooks.push((s, default_action, received));
        Ok(())
    }

    /// As after start: no handler installed (default actions again), nothing caught.
    fn reset(&self) {
        for (_, default_action, received) in &self.hooks {
            default_action.store(true, Ordering::SeqCst);
            received.store(false, Ordering::SeqCst);
        }
    }

    fn take(&self) -> Vec<String> {
        self.hooks
            .iter()
            .filter(|(_, _, r)| r.swap(false, Ordering::SeqCst))
            .map(|(s, _, _)| s.name().to_string())
            .collect()
    }
}

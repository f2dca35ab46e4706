//! Actors as real threads of this process: each performs its own syscalls on the real root.
//!
//! A thread cannot be SIGKILLed or SIGSTOPped alone, so faults on thread actors are emulated:
//! a crash ends the actor's thread (its files stay), a signal without a handler likewise, a
//! stall only delays the actor's next step. Use process actors for real signals.

use std::path::PathBuf;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::thread::JoinHandle;

use super::realfs::RealFs;
use super::Executor;
use racelab_core::model::world::{OpCtx, World};
use racelab_lang::ir::{Errno, FaultKind, Op, Signal, Value};

type Reply = Result<Result<Value, Errno>, String>;

struct ActorThread {
    jobs: Sender<(Op, Vec<Value>, i64)>,
    replies: Receiver<Reply>,
    handle: JoinHandle<()>,
}

/// One thread per actor.
pub(crate) struct ThreadExecutor {
    actors: Vec<Option<ActorThread>>,
}

impl ThreadExecutor {
    /// One thread per actor; actor `a` works in `roots[a]`.
    pub(crate) fn start(roots: &[PathBuf]) -> Result<ThreadExecutor, String> {
        let mut out = Vec::with_capacity(roots.len());
        for (a, root) in roots.iter().enumerate() {
            let mut fs = RealFs::open(root).map_err(|e| e.to_string())?;
            let (jobs, job_rx) = channel::<(Op, Vec<Value>, i64)>();
            let (reply_tx, replies) = channel();
            let handle = std::thread::Builder::new()
                .name(format!("racelab-actor-{a}"))
                .spawn(move || {
                    for (op, args, now) in job_rx {
                        let r = fs.perform(op, &args, &OpCtx { now, actor: a });
                        if reply_tx.send(r).is_err() {
                            return;
                        }
                    }
                })
                .map_err(|e| format!("cannot start a thread for actor {a}: {e}"))?;
            out.push(Some(ActorThread {
                jobs,
                replies,
                handle,
            }));
        }
        Ok(ThreadExecutor { actors: out })
    }

    fn stop(&mut self, actor: usize) {
        if let Some(t) = self.actors.get_mut(actor).and_then(Option::take) {
            drop(t.jobs);
            let _ = t.handle.join();
        }
    }
}

impl Executor for ThreadExecutor {
    fn perform(&mut self, actor: usize, op: Op, args: &[Value], now: i64) -> Reply {
        let t = self
            .actors
            .get(actor)
            .and_then(Option::as_ref)
            .ok_or_else(|| format!("actor {actor} has no thread (it crashed)"))?;
        t.jobs
            .send((op, args.to_vec(), now))
            .map_err(|_| format!("actor {actor}'s thread is gone"))?;
        t.replies
            .recv()
            .map_err(|_| format!("actor {actor}'s thread died during {}", op.name()))?
    }

    fn fault(&mut self, actor: usize, fault: &FaultKind, handled: bool) -> Result<(), String> {
        match fault {
            FaultKind::Crash => self.stop(actor),
            FaultKind::Signal { .. } if !handled => self.stop(actor),
            FaultKind::Signal { .. } | FaultKind::Stall { .. } | FaultKind::Retransmit => {}
        }
        Ok(())
    }

    fn handler(&mut self, _actor: usize, _signal: Signal, _installed: bool) -> Result<(), String> {
        Ok(())
    }
}

impl Drop for ThreadExecutor {
    fn drop(&mut self) {
        for a in 0..self.actors.len() {
            self.stop(a);
        }
    }
}

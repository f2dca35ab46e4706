//! One execution with actors as engine-controlled threads; instantiated for shuttle and for loom.
//!
//! Both crates mirror std's `sync` and `thread` APIs, so one macro writes the driver for both.
//! Each step is preceded by exactly one scheduling point (an atomic increment the engine
//! controls); an actor that is not runnable parks until a step makes it runnable. So the
//! engine's choices are the machine's choices: which runnable actor takes the next step. The
//! machine itself sits in a std mutex that is never contended (the engines run one task at a
//! time), so taking it adds no scheduling point of its own.

/// loom's fixed thread limit (`loom::MAX_THREADS`), the engine's main thread included. racelab
/// runs the first actor on the main thread, so a scenario may have this many actors.
pub const MAX_ACTORS: usize = 5;

/// Defines `run_execution(initial, enabled, taken) -> Machine` using `$rt::sync::atomic` and `$rt::thread`.
///
/// `initial` is the machine before any step, built once per exploration outside the engine:
/// building it evaluates the `always` invariants, and the engine's main task may have a small
/// stack (loom's main coroutine has 32 KiB), too small for a deep invariant in a debug build.
///
/// `enabled` receives, after every step, a bit mask of the runnable actors (bit 63: the
/// execution has ended), and `taken` the number of steps taken so far (a scheduler that follows
/// a recorded schedule needs to know which step is next). shuttle's scheduler wrapper filters its choices by it, so a shuttle
/// task whose actor is not runnable is never chosen and never needs to block: shuttle's `park`
/// may wake spuriously, which would give DFS infinitely many schedules. loom's `park` does not,
/// so under loom a non-runnable actor parks.
macro_rules! threaded_driver {
    ($rt:ident) => {
        use std::sync::{Arc, Mutex as StdMutex};

        use $rt::sync::atomic::{AtomicUsize, Ordering};
        use $rt::thread::Thread;

        use crate::model::Machine;

        const ACTOR_STACK: usize = 1 << 20;

        struct Shared {
            machine: StdMutex<Machine>,
            /// Touched before every step: the one scheduling point the engine decides at.
            turn: AtomicUsize,
            /// Each actor's thread, registered when it starts, so that a step can unpark the
            /// actors it made runnable (and only those).
            threads: StdMutex<Vec<Option<Thread>>>,
            /// Which threads are parked. Only those are unparked: an unpark is a scheduling
            /// point, and unparking a thread that is about to step anyway would give the engine
            /// a choice that changes no interleaving (DFS on two actors of four steps explored
            /// 8706 schedules instead of 70).
            parked: StdMutex<Vec<bool>>,
        }

        /// Runs one execution to its end under the engine's scheduler and returns the machine.
        pub(crate) fn run_execution(
            initial: &Machine,
            enabled: &Arc<std::sync::atomic::AtomicU64>,
            taken: &Arc<std::sync::atomic::AtomicUsize>,
        ) -> Machine {
            let machine = initial.clone();
            // Every choice (actor or fault) is a thread: the engine deciding which thread runs
            // decides where faults land too.
            let n = machine.choice_count();
            // Actors get their own threads with a roomy stack (the engines' default task stacks
            // are a few dozen KiB, too small for a debug build evaluating a long expression).
            // Only when loom's thread limit requires it does actor 0 run on the main thread.
            let on_main = usize::from(n >= crate::explore::threads::MAX_ACTORS);
            // Task ids: the main task is 0, spawned tasks count up from 1.
            let task_of_actor = 1 - on_main;
            // Until every actor's thread exists, only the main task may run: otherwise the
            // first actors could take steps before the later ones exist, hiding interleavings.
            enabled.store(1, std::sync::atomic::Ordering::SeqCst);
            let shared = Arc::new(Shared {
                machine: StdMutex::new(machine),
                turn: AtomicUsize::new(0),
                threads: StdMutex::new(vec![None; n]),
                parked: StdMutex::new(vec![false; n]),
            });
            let handles: Vec<_> = (on_main..n)
                .filter_map(|a| {
                    let shared = Arc::clone(&shared);
                    let enabled = Arc::clone(enabled);
                    let taken = Arc::clone(taken);
                    $rt::thread::Builder::new()
                        .stack_size(ACTOR_STACK)
                        .spawn(move || actor_loop(a, &shared, (&enabled, &taken), task_of_actor))
                        .ok()
                })
                .collect();
            publish(
                &shared.machine.lock().unwrap_or_else(|e| e.into_inner()),
                (enabled, taken),
                task_of_actor,
            );
            if on_main == 1 {
                actor_loop(0, &shared, (enabled, taken), task_of_actor);
            }
            for h in handles {
                let _ = h.join();
            }
            let m = shared.machine.lock().unwrap_or_else(|e| e.into_inner());
            m.clone()
        }

        /// Publishes the runnable actors as a mask over task ids (actor `a` is task `a + offset`).
        fn publish(m: &Machine, (enabled, taken): Published<'_>, offset: usize) {
            taken.store(m.schedule().len(), std::sync::atomic::Ordering::SeqCst);
            let mut mask = if m.is_finished() { 1u64 << 63 } else { 0 };
            for a in m.runnable() {
                mask |= 1 << (a + offset).min(62);
            }
            enabled.store(mask, std::sync::atomic::Ordering::SeqCst);
        }

        /// Where a step's effect on the choices is published: the runnable mask, the step count.
        type Published<'a> = (
            &'a std::sync::atomic::AtomicU64,
            &'a std::sync::atomic::AtomicUsize,
        );

        fn actor_loop(me: usize, shared: &Shared, published: Published<'_>, offset: usize) {
            shared.threads.lock().unwrap_or_else(|e| e.into_inner())[me] =
                Some($rt::thread::current());
            loop {
                shared.turn.fetch_add(1, Ordering::SeqCst);
                let mut m = shared.machine.lock().unwrap_or_else(|e| e.into_inner());
                if m.is_spent(me) {
                    drop(m);
                    // Gone: nobody may unpark this thread any more.
                    shared.threads.lock().unwrap_or_else(|e| e.into_inner())[me] = None;
                    return;
                }
                if !m.is_runnable(me) {
                    shared.parked.lock().unwrap_or_else(|e| e.into_inner())[me] = true;
                    drop(m);
                    // No scheduling point lies between the check and here, so no step can
                    // make us runnable unseen; an unpark that came earlier is remembered.
                    $rt::thread::park();
                    shared.parked.lock().unwrap_or_else(|e| e.into_inner())[me] = false;
                    continue;
                }
                m.step(me);
                publish(&m, published, offset);
                let finished = m.is_finished();
                // Never unpark an actor that has finished: its thread may be gone, and loom
                // counts an unpark of a finished thread against its join.
                // Wake the threads that can now step, and those that must now exit (an actor a
                // fault killed, a fault that can no longer land) — never one that has exited.
                let wake: Vec<usize> = {
                    let mut parked = shared.parked.lock().unwrap_or_else(|e| e.into_inner());
                    let wake: Vec<usize> = (0..m.choice_count())
                        .filter(|&o| {
                            o != me && parked[o] && (finished || m.is_runnable(o) || m.is_spent(o))
                        })
                        .collect();
                    for &o in &wake {
                        parked[o] = false;
                    }
                    wake
                };
                drop(m);
                let threads = shared
                    .threads
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone();
                for o in wake {
                    if let Some(t) = &threads[o] {
                        t.unpark();
                    }
                }
            }
        }
    };
}

pub(crate) use threaded_driver;

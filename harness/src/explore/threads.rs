//! One execution with actors as engine-controlled threads; instantiated for shuttle and for loom.
//!
//! Both crates mirror std's `sync` and `thread` APIs, so one macro writes the driver for both.

/// Defines `run_execution(prog) -> Machine` using `$rt::sync::{Mutex, Condvar}` and `$rt::thread`.
macro_rules! threaded_driver {
    ($rt:ident) => {
        use std::sync::Arc;

        use $rt::sync::{Condvar, Mutex};

        use crate::ir::Program;
        use crate::model::{Machine, Status};

        struct Shared {
            machine: Mutex<Machine>,
            /// One per actor: an actor waits on its own, so a step wakes exactly the actors it
            /// made runnable and the engine sees no spurious choices.
            wake: Vec<Condvar>,
        }

        /// Runs one execution to its end under the engine's scheduler and returns the machine.
        pub(crate) fn run_execution(prog: &Arc<Program>) -> Machine {
            let machine = Machine::new(Arc::clone(prog));
            let n = machine.actor_count();
            let shared = Arc::new(Shared { machine: Mutex::new(machine), wake: (0..n).map(|_| Condvar::new()).collect() });
            let handles: Vec<_> = (1..n)
                .map(|a| {
                    let shared = Arc::clone(&shared);
                    $rt::thread::spawn(move || actor_loop(a, &shared))
                })
                .collect();
            // Actor 0 runs on the engine's main thread: one thread fewer (loom allows five).
            if n > 0 {
                actor_loop(0, &shared);
            }
            for h in handles {
                let _ = h.join();
            }
            let m = shared.machine.lock().unwrap_or_else(|e| e.into_inner());
            m.clone()
        }

        fn actor_loop(me: usize, shared: &Shared) {
            let mut m = shared.machine.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                if m.is_finished() || matches!(m.status(me), Status::Done | Status::Failed) {
                    return;
                }
                if !m.is_runnable(me) {
                    m = shared.wake[me].wait(m).unwrap_or_else(|e| e.into_inner());
                    continue;
                }
                m.step(me);
                let finished = m.is_finished();
                for (other, cv) in shared.wake.iter().enumerate() {
                    if other != me && (finished || m.is_runnable(other)) {
                        cv.notify_one();
                    }
                }
                // Release the machine between steps: taking it again is the scheduling point
                // where the engine may switch to another actor.
                drop(m);
                m = shared.machine.lock().unwrap_or_else(|e| e.into_inner());
            }
        }
    };
}

pub(crate) use threaded_driver;

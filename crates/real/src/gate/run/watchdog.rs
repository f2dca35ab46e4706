//! The watchdog: kills the running process when one gated step takes longer than the timeout.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

/// Kills the running process if one gated step takes longer than the timeout.
pub(super) struct Watchdog {
    armed: Arc<Mutex<Option<(i32, Instant)>>>,
    pub(super) fired: Arc<AtomicI32>,
    pub(super) stop: Arc<AtomicBool>,
    pub(super) thread: Option<std::thread::JoinHandle<()>>,
}

impl Watchdog {
    pub(super) fn start() -> Watchdog {
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
    pub(super) fn arm(&self, pid: i32, timeout: Duration) {
        *self.armed.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((pid, Instant::now() + timeout));
    }
    pub(super) fn disarm(&self) -> bool {
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

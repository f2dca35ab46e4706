//! Ctrl-C and SIGTERM for commands that hold real resources: finish the step, clean up, exit.
//!
//! The first SIGINT or SIGTERM only sets a flag; real-backend loops check it between steps,
//! stop, and let `Drop` kill worker processes and remove run directories. A second one ends the
//! process at once (workers still die with it: PR_SET_PDEATHSIG).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

static SIGNAL: OnceLock<Arc<AtomicUsize>> = OnceLock::new();

/// Installs the handlers (once per process). Without it, `requested()` is always `None`.
pub fn install() {
    SIGNAL.get_or_init(|| {
        let got = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(std::sync::atomic::AtomicBool::new(false));
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            // Registered first, so it sees `seen` as an *earlier* signal left it.
            let _ =
                signal_hook::flag::register_conditional_shutdown(sig, 128 + sig, Arc::clone(&seen));
            let _ = signal_hook::flag::register(sig, Arc::clone(&seen));
            let _ = signal_hook::flag::register_usize(sig, Arc::clone(&got), sig as usize);
        }
        got
    });
}

/// The signal that asked us to stop, if one did.
pub fn requested() -> Option<i32> {
    let n = SIGNAL.get()?.load(Ordering::SeqCst);
    (n != 0).then_some(n as i32)
}

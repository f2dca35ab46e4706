//! Ctrl-C, SIGTERM and SIGHUP as a flag that the main thread polls, for tasks that hold real resources.
//!
//! A task that holds mounts or loop devices must tear them down when it is interrupted, and
//! teardown (umount, losetup, rm) is far too much to do inside a signal handler. So the handlers
//! only record which signal came; the code that holds the resources checks [`pending`] between
//! steps (and while it waits for child processes) and unwinds on the main thread.
//!
//! A second signal while the first is being handled ends the process at once with 128 + signal:
//! if teardown ever hangs, the user is not stuck, and the intent log left behind lets
//! `cargo xtask fs down --state FILE` finish the job.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::OnceLock;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

/// The number of the first signal that arrived, or 0.
static SIGNAL: AtomicUsize = AtomicUsize::new(0);
/// Set by the first signal; arms the immediate exit on the second.
static ARMED: AtomicBool = AtomicBool::new(false);
static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();

/// Installs the handlers (once per process; later calls return the first result).
///
/// Only call this from code that polls [`pending`]: after it, Ctrl-C no longer kills the process.
pub fn install() -> anyhow::Result<()> {
    let result = INSTALLED.get_or_init(|| {
        for sig in [SIGINT, SIGTERM, SIGHUP] {
            // Order matters (signal-hook runs actions in registration order): the conditional exit
            // must see ARMED as it was before this signal, so it is registered first.
            let registered =
                signal_hook::flag::register_conditional_shutdown(sig, 128 + sig, &ARMED)
                    .and_then(|_| signal_hook::flag::register(sig, &ARMED))
                    .and_then(|_| {
                        signal_hook::flag::register_usize(
                            sig,
                            &SIGNAL,
                            usize::try_from(sig).unwrap_or(0),
                        )
                    });
            if let Err(e) = registered {
                return Err(format!(
                    "installing the handler for signal {sig} failed: {e}"
                ));
            }
        }
        Ok(())
    });
    result.clone().map_err(anyhow::Error::msg)
}

/// The signal that asked us to stop, if one has arrived since [`install`].
pub fn pending() -> Option<i32> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        n => i32::try_from(n).ok(),
    }
}

/// A signal's conventional name, for messages.
pub fn name(sig: i32) -> &'static str {
    match sig {
        SIGINT => "SIGINT (Ctrl-C)",
        SIGTERM => "SIGTERM",
        SIGHUP => "SIGHUP",
        _ => "a signal",
    }
}

/// The exit code a process interrupted by `sig` reports (the shell's 128 + signal convention).
pub fn exit_code(sig: i32) -> u8 {
    u8::try_from(128 + sig).unwrap_or(1)
}

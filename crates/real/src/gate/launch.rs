//! The first moments of a gated process: ask to be traced, wait for the tracer, install the
//! seccomp filters that stop the gated system calls (user notification for some, ptrace for the
//! rest), stop again for racelab to take the listener, and exec the unmodified program.
//!
//! This runs as `racelab __gate-exec PROGRAM ARGS...`, a fresh process, so nothing here has to
//! be async-signal-safe (which `pre_exec` would demand) and the only `unsafe` is
//! `notify`'s. The filter survives `execve`, so every gated call of the program, whatever its
//! language or libc, traps to racelab.

use std::os::unix::process::CommandExt;

use nix::sys::ptrace;
use nix::sys::signal::{raise, Signal};

use super::notify::{install, PTRACE_ONLY_ENV};

/// Becomes the program named by `argv` under racelab's gate. Returns only on failure, with the
/// exit code to use; the tracer reports the message the launcher prints.
pub fn gate_exec(argv: &[String]) -> i32 {
    let Some((program, args)) = argv.split_first() else {
        eprintln!("racelab __gate-exec: no program to run");
        return 127;
    };
    if let Err(e) = ptrace::traceme() {
        eprintln!("racelab gate: PTRACE_TRACEME failed: {e} (is this process already traced, or is ptrace forbidden by Yama or a container?)");
        return 126;
    }
    // The tracer sets its options while we are stopped here, before anything is trapped.
    if let Err(e) = raise(Signal::SIGSTOP) {
        eprintln!("racelab gate: raise(SIGSTOP) failed: {e}");
        return 126;
    }
    let ptrace_only = std::env::var_os(PTRACE_ONLY_ENV).is_some();
    if let Err(e) = install(ptrace_only) {
        eprintln!("racelab gate: cannot install the seccomp filter: {e}");
        return 126;
    }
    // A second stop: racelab takes its copy of the listener (if any) before the exec closes
    // this one.
    if let Err(e) = raise(Signal::SIGSTOP) {
        eprintln!("racelab gate: raise(SIGSTOP) failed: {e}");
        return 126;
    }
    let err = std::process::Command::new(program)
        .args(args)
        .env_remove(PTRACE_ONLY_ENV)
        .exec();
    eprintln!("racelab gate: cannot run `{program}`: {err}");
    127
}

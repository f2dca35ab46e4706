//! The first moments of a gated process: ask to be traced, wait for the tracer, install the
//! seccomp filter that stops the gated system calls, and exec the unmodified program.
//!
//! This runs as `racelab __gate-exec PROGRAM ARGS...`, a fresh process, so nothing here has to
//! be async-signal-safe (which `pre_exec` would demand) and the workspace stays free of
//! `unsafe`. The filter survives `execve`, so every gated call of the program, whatever its
//! language or libc, traps to racelab.

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;

use nix::sys::ptrace;
use nix::sys::signal::{raise, Signal};
use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, TargetArch};

use super::syscalls::TRAPPED;

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
    let filter = match build_filter() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("racelab gate: cannot build the seccomp filter: {e}");
            return 126;
        }
    };
    if let Err(e) = seccompiler::apply_filter(&filter) {
        eprintln!("racelab gate: cannot install the seccomp filter: {e}");
        return 126;
    }
    let err = std::process::Command::new(program).args(args).exec();
    eprintln!("racelab gate: cannot run `{program}`: {err}");
    127
}

/// SECCOMP_RET_TRACE for every trapped call, whatever its arguments; everything else runs free.
fn build_filter() -> Result<BpfProgram, seccompiler::BackendError> {
    let rules: BTreeMap<i64, Vec<seccompiler::SeccompRule>> =
        TRAPPED.iter().map(|&nr| (nr, Vec::new())).collect();
    SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Trace(0),
        TargetArch::x86_64,
    )?
    .try_into()
}

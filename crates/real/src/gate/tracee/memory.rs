//! Reading and writing a stopped thread's registers and memory: running a call to its exit, skipping it with a result, the exec stop, paths and strings in the tracee.

use nix::sys::ptrace::{self};
use nix::sys::wait::{waitpid, WaitStatus};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use super::*;

impl Tracee {
    /// Lets the call thread `t` is stopped at run, and returns its result (the thread, or the
    /// whole process, may end instead: then the thread is `Gone`).
    pub(super) fn run_to_exit(&mut self, t: usize) -> Result<i64, GateError> {
        let tid = self.threads[t].tid;
        ptrace::syscall(tid, None).map_err(|e| format!("PTRACE_SYSCALL: {e}"))?;
        loop {
            match waitpid(tid, WALL).map_err(|e| format!("waitpid: {e}"))? {
                WaitStatus::PtraceSyscall(_) => {
                    let info = ptrace::syscall_info(tid)
                        .map_err(|e| format!("PTRACE_GET_SYSCALL_INFO: {e}"))?;
                    if info.op == libc::PTRACE_SYSCALL_INFO_EXIT {
                        break;
                    }
                    ptrace::syscall(tid, None).map_err(|e| format!("PTRACE_SYSCALL: {e}"))?;
                }
                WaitStatus::Exited(_, code) => {
                    self.thread_ended(t, Stop::Exited(code));
                    return Ok(0);
                }
                WaitStatus::Signaled(_, sig, _) => {
                    self.thread_ended(t, Stop::Killed(sig));
                    return Ok(0);
                }
                WaitStatus::Stopped(_, sig) => {
                    ptrace::syscall(tid, Some(sig)).map_err(|e| format!("PTRACE_SYSCALL: {e}"))?
                }
                _ => ptrace::syscall(tid, None).map_err(|e| format!("PTRACE_SYSCALL: {e}"))?,
            }
        }
        Ok(ptrace::getregs(tid)
            .map_err(|e| format!("PTRACE_GETREGS: {e}"))?
            .rax as i64)
    }

    /// Skips the call the tracee is stopped at (seccomp stop): it returns `ret` without running.
    pub(super) fn skip_call(&mut self, t: usize, ret: i64) -> Result<(), GateError> {
        let tid = self.threads[t].tid;
        let mut regs = ptrace::getregs(tid).map_err(|e| format!("PTRACE_GETREGS: {e}"))?;
        regs.orig_rax = u64::MAX;
        regs.rax = ret as u64;
        ptrace::setregs(tid, regs).map_err(|e| format!("PTRACE_SETREGS: {e}"))?;
        Ok(())
    }

    /// The program has just been exec'd: open its memory, and hide the vDSO from it, so that
    /// its C library asks the kernel (and so the gate) what time it is.
    pub(super) fn on_exec(&mut self) -> Result<(), GateError> {
        self.execed = true;
        let mem = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(format!("/proc/{}/mem", self.pid))
            .map_err(|e| format!("cannot open the gated process's memory: {e}"))?;
        self.mem = Some(mem);
        let sp = ptrace::getregs(self.pid)
            .map_err(|e| format!("PTRACE_GETREGS: {e}"))?
            .rsp;
        // The initial stack: argc, argv..., NULL, envp..., NULL, then the auxiliary vector.
        let word = |t: &Tracee, at: u64| -> Result<u64, GateError> {
            Ok(u64::from_ne_bytes(
                t.read_mem(at, 8)?.try_into().unwrap_or_default(),
            ))
        };
        let argc = word(self, sp)?;
        let mut at = sp + 8 * (argc + 2);
        while word(self, at)? != 0 {
            at += 8;
        }
        at += 8;
        for _ in 0..64 {
            let kind = word(self, at)?;
            if kind == libc::AT_NULL {
                break;
            }
            if kind == libc::AT_SYSINFO_EHDR {
                self.write_mem(at, &libc::AT_IGNORE.to_ne_bytes())?;
            }
            at += 16;
        }
        Ok(())
    }

    /// The absolute path a (dirfd, pointer) pair names, lexically normalized.
    pub(super) fn resolve(&self, dirfd: i64, raw: &str) -> PathBuf {
        let p = PathBuf::from(raw);
        let full = if p.is_absolute() {
            p
        } else {
            let base = if dirfd == libc::AT_FDCWD as i64 {
                format!("/proc/{}/cwd", self.pid)
            } else {
                format!("/proc/{}/fd/{dirfd}", self.pid)
            };
            std::fs::read_link(&base).unwrap_or_default().join(p)
        };
        let mut out = PathBuf::new();
        for c in full.components() {
            match c {
                std::path::Component::ParentDir => {
                    out.pop();
                }
                std::path::Component::CurDir => {}
                c => out.push(c),
            }
        }
        out
    }

    /// `st_nlink` from a `struct stat` (a u64) or `struct statx` (a u32) at `buf`: both at
    /// offset 16 on x86_64; the low 32 bits are the count either way (little-endian).
    pub(super) fn stat_nlink(&self, buf: u64) -> Option<u32> {
        let b = self.read_mem(buf + 16, 4).ok()?;
        Some(u32::from_le_bytes(b.try_into().ok()?))
    }

    pub(super) fn read_cstr(&self, mut at: u64) -> Result<String, GateError> {
        let mut out = Vec::new();
        while out.len() < 4096 {
            let chunk = self.read_mem(at, 64).or_else(|_| self.read_mem(at, 1))?;
            if let Some(n) = chunk.iter().position(|b| *b == 0) {
                out.extend_from_slice(&chunk[..n]);
                return Ok(String::from_utf8_lossy(&out).into_owned());
            }
            out.extend_from_slice(&chunk);
            at += chunk.len() as u64;
        }
        Err("a path longer than 4096 bytes".into())
    }

    pub(super) fn read_mem(&self, at: u64, len: usize) -> Result<Vec<u8>, GateError> {
        let mem = self
            .mem
            .as_ref()
            .ok_or("the process's memory is not open yet")?;
        let mut buf = vec![0; len];
        let n = mem
            .read_at(&mut buf, at)
            .map_err(|e| format!("reading the gated process's memory at {at:#x}: {e}"))?;
        buf.truncate(n);
        if n == 0 {
            return Err(
                format!("reading the gated process's memory at {at:#x}: nothing there").into(),
            );
        }
        Ok(buf)
    }

    pub(super) fn write_mem(&self, at: u64, bytes: &[u8]) -> Result<(), GateError> {
        let mem = self
            .mem
            .as_ref()
            .ok_or("the process's memory is not open yet")?;
        mem.write_all_at(bytes, at)
            .map_err(|e| format!("writing the gated process's memory at {at:#x}: {e}").into())
    }

    /// splitmix64: the gated program's "random" bytes, the same on every run of a schedule.
    pub(super) fn next_random(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

//! A trapped call of a gated thread: answered on the way (time, random bytes, files outside the root), refused (a child process), or held as a step and finished after it.

use crate::gate::syscalls::{decode, virtual_clock, virtual_time, wall_clock, Call, TimeKind};
use crate::gate::VirtualClock;
use nix::sys::ptrace::{self};
use std::path::Path;

use super::*;

impl Tracee {
    /// A trapped call of thread `t`: answer it here (and return `None`), or hold the thread at
    /// it (and return where it is held).
    pub(super) fn on_call(
        &mut self,
        t: usize,
        clock: &VirtualClock,
    ) -> Result<Option<ThreadAt>, GateError> {
        let tid = self.threads[t].tid;
        let regs = ptrace::getregs(tid).map_err(|e| format!("PTRACE_GETREGS: {e}"))?;
        let args = [regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8, regs.r9];
        let Some(call) = decode(regs.orig_rax as i64, args) else {
            self.cont(t, None)?;
            return Ok(None);
        };
        match call {
            Call::Path { op, paths } => {
                let mut shown = Vec::new();
                let mut gated = false;
                let mut model_path = None;
                let mut real_paths = Vec::new();
                for (dirfd, p) in paths {
                    // An empty path with AT_EMPTY_PATH names the descriptor itself (fstat,
                    // futimens): a call on the descriptor (glibc's fstat is newfstatat(fd, "")).
                    let raw = if p == 0 {
                        String::new()
                    } else {
                        self.read_cstr(p)?
                    };
                    if raw.is_empty() {
                        if op == "stat" && self.flocked.contains(&dirfd) {
                            return self.fd_step(t, "fstat", dirfd);
                        }
                        continue;
                    }
                    let path = self.resolve(dirfd, &raw);
                    match path.strip_prefix(&self.root) {
                        Ok(rel) => {
                            gated = true;
                            model_path.get_or_insert_with(|| format!("/{}", rel.display()));
                            shown.push(short_name(rel));
                            real_paths.push(path.clone());
                        }
                        Err(_) => shown.push(path.display().to_string()),
                    }
                }
                if !gated {
                    self.cont(t, None)?;
                    return Ok(None);
                }
                let stat_buf = match regs.orig_rax as i64 {
                    _ if op != "stat" => None,
                    libc::SYS_stat | libc::SYS_lstat => Some((regs.rsi, false)),
                    libc::SYS_newfstatat => Some((regs.rdx, false)),
                    libc::SYS_statx => Some((regs.r8, true)),
                    _ => None,
                };
                self.threads[t].pending = Some(Pending {
                    op,
                    fd: None,
                    stat_buf,
                    path: model_path,
                    paths: real_paths,
                });
                Ok(Some(ThreadAt::Step(show_call(op, &shown))))
            }
            Call::Fd { op, fd } => {
                if !self.fds.contains_key(&fd) {
                    self.cont(t, None)?;
                    return Ok(None);
                }
                let locked = self.flocked.contains(&fd);
                if matches!(op, "close" | "fstat" | "futime") && !locked {
                    // Not steps: they change nothing another process can see on a local
                    // filesystem (NFS flushes on close; its writes were steps already).
                    if op == "close" {
                        self.fds.remove(&fd);
                    }
                    self.cont(t, None)?;
                    return Ok(None);
                }
                if op == "futime" {
                    self.cont(t, None)?;
                    return Ok(None);
                }
                self.fd_step(t, op, fd)
            }
            Call::Time {
                clock: id,
                buf,
                kind,
            } if virtual_clock(id) => {
                let (bytes, ret) = virtual_time(clock, id, kind);
                // time(2) and gettimeofday(2) accept a null buffer; a timespec must have one.
                if kind == TimeKind::Timespec || buf != 0 {
                    self.write_mem(buf, &bytes)?;
                }
                self.skip_call(t, ret)?;
                self.cont(t, None)?;
                Ok(None)
            }
            Call::Time { .. } => {
                self.cont(t, None)?;
                Ok(None)
            }
            Call::Sleep {
                clock: id,
                req,
                abs,
            } if virtual_clock(id) => {
                let b = self.read_mem(req, 16)?;
                let sec = i64::from_ne_bytes(b[..8].try_into().unwrap_or_default());
                let nsec = i64::from_ne_bytes(b[8..].try_into().unwrap_or_default());
                let d = (sec.max(0) as u64)
                    .saturating_mul(1_000_000_000)
                    .saturating_add(nsec.max(0) as u64);
                let until = if !abs {
                    clock.now_ns().saturating_add(d)
                } else if wall_clock(id) {
                    d.saturating_sub(clock.wall_ns() - clock.now_ns())
                } else {
                    d.saturating_sub(clock.monotonic_ns() - clock.now_ns())
                };
                Ok(Some(ThreadAt::Sleep(
                    self.on_tick(until.max(clock.now_ns())),
                )))
            }
            Call::Sleep { .. } => {
                self.cont(t, None)?;
                Ok(None)
            }
            Call::Wait { timeout_ms, arg } if timeout_ms > 0 => {
                // A wait with a deadline: look once without waiting; if nothing is ready, hold
                // the thread with its call about to run again, until the virtual deadline.
                let until = match self.threads[t].probing.take() {
                    Some(u) => u,
                    None => {
                        self.on_tick(clock.now_ns().saturating_add(timeout_ms as u64 * 1_000_000))
                    }
                };
                let mut entry = regs;
                let mut now = regs;
                set_arg(&mut now, arg, 0);
                ptrace::setregs(tid, now).map_err(|e| format!("PTRACE_SETREGS: {e}"))?;
                let ret = self.run_to_exit(t)?;
                if self.threads[t].at == ThreadAt::Gone {
                    return Ok(None);
                }
                if ret != 0 {
                    self.cont(t, None)?;
                    return Ok(None);
                }
                // Back to the `syscall` instruction (two bytes), the call's number in rax.
                entry.rip -= 2;
                entry.rax = entry.orig_rax;
                ptrace::setregs(tid, entry).map_err(|e| format!("PTRACE_SETREGS: {e}"))?;
                self.threads[t].timed = Some((entry, arg));
                Ok(Some(ThreadAt::Timed(until)))
            }
            Call::Wait { .. } => {
                self.threads[t].probing = None;
                self.cont(t, None)?;
                Ok(None)
            }
            Call::Random { buf, len } => {
                let len = len.min(1 << 20);
                let mut bytes = Vec::with_capacity(len as usize);
                while (bytes.len() as u64) < len {
                    bytes.extend_from_slice(&self.next_random().to_ne_bytes());
                }
                bytes.truncate(len as usize);
                self.write_mem(buf, &bytes)?;
                self.skip_call(t, len as i64)?;
                self.cont(t, None)?;
                Ok(None)
            }
            Call::Dup { fd } => {
                // dup2(3, 1): the copy writes to the same file, so it is tracked too.
                if let Some(path) = self.fds.get(&fd).cloned() {
                    let newfd = self.run_to_exit(t)?;
                    if self.threads[t].at == ThreadAt::Gone {
                        return Ok(None);
                    }
                    if newfd >= 0 {
                        self.fds.insert(newfd, path);
                    }
                } else if matches!(regs.orig_rax as i64, libc::SYS_dup2 | libc::SYS_dup3) {
                    // dup2(other, tracked): the tracked descriptor now names another file.
                    self.fds.remove(&(regs.rsi as i32 as i64));
                }
                self.cont(t, None)?;
                Ok(None)
            }
            Call::Other => {
                self.cont(t, None)?;
                Ok(None)
            }
            Call::Clone { flags } => {
                // clone3 passes its flags in a struct; its first field.
                let flags = match flags {
                    Some(f) => f,
                    None => u64::from_ne_bytes(
                        self.read_mem(regs.rdi, 8)?.try_into().unwrap_or_default(),
                    ),
                };
                if flags & libc::CLONE_THREAD as u64 != 0 {
                    // A thread: PTRACE_O_TRACECLONE attaches it; it becomes a schedulable
                    // unit of this actor.
                    self.cont(t, None)?;
                    Ok(None)
                } else {
                    Err(Self::refuse_process())
                }
            }
            Call::Spawn => Err(Self::refuse_process()),
        }
    }

    pub(super) fn refuse_process() -> GateError {
        racelab_core::error::Error::refused("the gated program started a process (fork, vfork or clone without CLONE_THREAD); the gate follows the threads of one process per actor, not child processes: run the child as an actor of its own, or gate a program that does not fork (docs/language.md, \"The gate\")")
    }

    /// `until`, rounded up to the tick: sleeps that end within one tick wake together.
    pub(super) fn on_tick(&self, until: u64) -> u64 {
        if self.tick_ns > 0 {
            until.div_ceil(self.tick_ns) * self.tick_ns
        } else {
            until
        }
    }

    /// Stops at a call on tracked descriptor `fd` as a step.
    pub(super) fn fd_step(
        &mut self,
        t: usize,
        op: &'static str,
        fd: i64,
    ) -> Result<Option<ThreadAt>, GateError> {
        let path = self.fds.get(&fd).cloned().unwrap_or_default();
        let shown = short_name(Path::new(path.trim_start_matches('/')));
        // (A notified call is not at a ptrace stop: racelab makes it with a buffer of its own.)
        let stat_buf = if op == "fstat" && self.threads[t].held.is_none() {
            let regs =
                ptrace::getregs(self.threads[t].tid).map_err(|e| format!("PTRACE_GETREGS: {e}"))?;
            match regs.orig_rax as i64 {
                libc::SYS_fstat => Some((regs.rsi, false)),
                libc::SYS_newfstatat => Some((regs.rdx, false)),
                libc::SYS_statx => Some((regs.r8, true)),
                _ => None,
            }
        } else {
            None
        };
        let real = self.root.join(path.trim_start_matches('/'));
        self.threads[t].pending = Some(Pending {
            op,
            fd: Some(fd),
            stat_buf,
            path: Some(path),
            paths: vec![real],
        });
        Ok(Some(ThreadAt::Step(show_call(op, &[shown]))))
    }

    /// Performs the pending step: the call runs, we read its result at the syscall exit.
    pub(super) fn finish_step(&mut self, t: usize, clock: &VirtualClock) -> Result<(), GateError> {
        // The inodes the step may change (an unlink leaves no name to read them by after).
        let touched: Vec<u64> = match &self.threads[t].pending {
            Some(p) if !matches!(p.op, "stat" | "fstat" | "read") => {
                use std::os::unix::fs::MetadataExt;
                p.paths
                    .iter()
                    .flat_map(|q| [Some(q.as_path()), q.parent()])
                    .flatten()
                    .filter_map(|q| std::fs::symlink_metadata(q).ok().map(|m| m.ino()))
                    .collect()
            }
            _ => Vec::new(),
        };
        let before = coarse_now_ns();
        let held = self.threads[t].held.take();
        let (ret, nlink) = match &held {
            Some(h) => self.make_held(h)?,
            None => (self.run_to_exit(t)?, None),
        };
        if self.threads[t].at == ThreadAt::Gone {
            return Ok(());
        }
        let pending = self.threads[t].pending.take();
        self.last_result = if ret < 0 {
            nix::errno::Errno::from_raw(-ret as i32)
                .to_string()
                .split(':')
                .next()
                .unwrap_or("error")
                .to_string()
        } else {
            match pending.as_ref().map(|p| p.op) {
                Some("read") | Some("write") => format!("{ret} bytes"),
                Some("open") => format!("fd {ret}"),
                // The link count the program read: 0 once the inode it locked lost its last name.
                Some("fstat") => match (nlink, pending.as_ref().and_then(|p| p.stat_buf)) {
                    (Some(n), _) => format!("nlink {n}"),
                    (None, Some((buf, _))) => self
                        .stat_nlink(buf)
                        .map_or("ok".into(), |n| format!("nlink {n}")),
                    (None, None) => "ok".into(),
                },
                _ => "ok".into(),
            }
        };
        if let Some(p) = &pending {
            if ret >= 0 {
                self.date_files(p, before, &touched, clock)?;
            }
        }
        if let Some(p) = pending {
            match (p.op, p.fd) {
                ("flock", Some(fd)) if ret == 0 => {
                    self.flocked.insert(fd);
                }
                ("flock-un", Some(fd)) => {
                    self.flocked.remove(&fd);
                }
                ("close", Some(fd)) => {
                    // Closed, even when close reports an error (EINTR, EIO): the number is free.
                    self.flocked.remove(&fd);
                    self.fds.remove(&fd);
                }
                _ => {}
            }
            if p.op == "open" && ret >= 0 {
                if let Some(path) = p.path {
                    self.fds.insert(ret, path);
                }
            }
        }
        // A notified step: the program learns its result only now, after the dating.
        if let Some(h) = &held {
            self.answer_held(t, h, ret);
        }
        Ok(())
    }
}

/// A root-relative path as the step table shows it: the file name (the directory is the
/// scenario's), or what racelab's own conventions mean (`section list/locker1`, `log done`).
pub(super) fn short_name(rel: &Path) -> String {
    let parts: Vec<String> = rel
        .iter()
        .map(|c| c.to_string_lossy().into_owned())
        .collect();
    match parts.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        [".racelab", "critical", s, a] => format!("section {s}/{a}"),
        [".racelab", "logs", l] => format!("log {l}"),
        _ => parts.last().cloned().unwrap_or_default(),
    }
}

/// `link(a, b)`; racelab's markers as what they mean (`enter list`, `leave list`).
pub(super) fn show_call(op: &str, names: &[String]) -> String {
    match (op, names) {
        ("open", [n]) if n.starts_with("section ") => format!("enter {}", &n["section ".len()..]),
        ("unlink", [n]) if n.starts_with("section ") => format!("leave {}", &n["section ".len()..]),
        _ => format!("{op}({})", names.join(", ")),
    }
}

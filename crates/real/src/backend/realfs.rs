//! A real directory as the scenario's filesystem: every operation is the real syscall, confined to the root.
//!
//! Confinement: a scenario's absolute paths are relative to the root, `..` is collapsed before
//! anything reaches the kernel (never above `/`), every parent directory is opened with
//! `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)` — so a symlink inside the root resolves
//! inside the root — and the final name is acted on with the `*at` call that does not follow
//! symlinks. Nothing outside the root can be touched, whatever the scenario says.
//!
//! Times: the interpreter's clock is virtual, so every operation that lets the kernel set an
//! mtime (create, write, touch, mkdir) pins it to the virtual time with `utimensat`; `stat`
//! then reads back what the model would. Mailman compares lock-file mtimes with `now`, so a
//! real clock in one place and a virtual one in another would break the lock for the wrong
//! reason.

use std::io::{Read as _, Write as _};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno as NixErrno;
use nix::fcntl::{openat2, AtFlags, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fstatat, mkdirat, utimensat, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::{linkat, unlinkat, UnlinkatFlags};

use racelab_core::model::fs::{normalize, path_arg};
use racelab_core::model::world::{OpCtx, Signals, Sql, World};
use racelab_lang::ir::{Errno, FsInit, Op, Stat, Value};

/// The scenario's filesystem in a real directory.
#[derive(Debug)]
pub struct RealFs {
    root: OwnedFd,
    root_path: PathBuf,
    /// The descriptor the first half of a two-step call left open for its second half: an
    /// O_PATH descriptor after a stat's lookup, a truncated file after a write's open.
    half: Option<std::fs::File>,
    /// The descriptors `open` gave, by `(actor, number)`: numbered as the model numbers them
    /// (the lowest free from 3, per actor), each a real open file whose flock is real.
    fds: std::collections::BTreeMap<(usize, i64), std::fs::File>,
}

/// Why a real filesystem could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum RealFsError {
    #[error("cannot open {path} as the scenario's root: {errno}; pass an existing, writable directory to --backend fs:DIR")]
    Root { path: PathBuf, errno: NixErrno },
    #[error("cannot create the scenario's initial file {path} under {root}: {errno}")]
    Init {
        root: PathBuf,
        path: String,
        errno: String,
    },
}

impl RealFs {
    /// Opens `root` (which must exist and be a directory) as the scenario's `/`.
    pub fn open(root: &Path) -> Result<RealFs, RealFsError> {
        let how = OpenHow::new().flags(OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC);
        let fd = openat2(nix::fcntl::AT_FDCWD, root, how).map_err(|errno| RealFsError::Root {
            path: root.to_path_buf(),
            errno,
        })?;
        Ok(RealFs {
            root: fd,
            root_path: root.to_path_buf(),
            half: None,
            fds: Default::default(),
        })
    }

    /// Creates the scenario's initial directories and files, with mtimes pinned to `now`.
    pub(crate) fn populate(&mut self, entries: &[FsInit], now: i64) -> Result<(), RealFsError> {
        let cx = OpCtx { now, actor: 0 };
        for e in entries {
            let (path, result) = match e {
                FsInit::Dir(p) => (p, self.mkdir_all(p, now)),
                FsInit::File(p, contents) => {
                    let parent = parent_of(&normalize(p)).to_string();
                    let made = self.mkdir_all(&parent, now);
                    let written = made.and_then(|()| {
                        match self.perform(Op::Write, &[Value::str(p), Value::str(contents)], &cx) {
                            Ok(Ok(_)) => Ok(()),
                            Ok(Err(e)) => Err(e.name().to_string()),
                            Err(msg) => Err(msg),
                        }
                    });
                    (p, written)
                }
            };
            result.map_err(|errno| RealFsError::Init {
                root: self.root_path.clone(),
                path: path.clone(),
                errno,
            })?;
        }
        Ok(())
    }

    fn mkdir_all(&mut self, path: &str, now: i64) -> Result<(), String> {
        let cx = OpCtx { now, actor: 0 };
        let norm = normalize(path);
        let mut cur = String::new();
        for part in norm.split('/').filter(|p| !p.is_empty()) {
            cur.push('/');
            cur.push_str(part);
            match self.perform(Op::Mkdir, &[Value::str(&cur)], &cx) {
                Ok(Ok(_)) | Ok(Err(Errno::EEXIST)) => {}
                Ok(Err(e)) => return Err(e.name().to_string()),
                Err(msg) => return Err(msg),
            }
        }
        Ok(())
    }

    /// Opens the parent directory of `path` inside the root, and returns it with the final name.
    fn parent(&self, path: &str) -> Result<(OwnedFd, String), Errno> {
        let norm = normalize(path);
        let (dir, name) = match norm.rfind('/') {
            Some(i) => (&norm[..i], &norm[i + 1..]),
            None => ("", norm.as_str()),
        };
        let dir = if dir.is_empty() {
            "."
        } else {
            dir.trim_start_matches('/')
        };
        let how = OpenHow::new()
            .flags(OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
            .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        let fd = openat2(self.root.as_fd(), dir, how).map_err(errno_of)?;
        Ok((
            fd,
            if name.is_empty() {
                ".".to_string()
            } else {
                name.to_string()
            },
        ))
    }

    /// Opens `path` itself inside the root (symlinks resolved inside the root).
    fn open_in_root(&self, path: &str, flags: OFlag) -> Result<std::fs::File, Errno> {
        let rel = normalize(path);
        let rel = rel.trim_start_matches('/');
        let rel = if rel.is_empty() { "." } else { rel };
        let mut how = OpenHow::new()
            .flags(flags | OFlag::O_CLOEXEC)
            .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        // openat2 refuses a mode without O_CREAT (EINVAL), unlike open(2), which ignores it.
        if flags.contains(OFlag::O_CREAT) {
            how = how.mode(Mode::from_bits_truncate(0o644));
        }
        openat2(self.root.as_fd(), rel, how)
            .map(std::fs::File::from)
            .map_err(errno_of)
    }

    fn pin_mtime(&self, path: &str, t: i64) -> Result<(), Errno> {
        let (dir, name) = self.parent(path)?;
        let ts = timespec(t);
        utimensat(
            dir.as_fd(),
            name.as_str(),
            &ts,
            &ts,
            UtimensatFlags::NoFollowSymlink,
        )
        .map_err(errno_of)
    }

    fn open_for_write(
        &self,
        path: &str,
        excl: bool,
        data: Option<&str>,
        now: i64,
    ) -> Result<Value, Errno> {
        if normalize(path) == "/" {
            return Err(Errno::EISDIR);
        }
        let mut flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_TRUNC | OFlag::O_NOFOLLOW;
        if excl {
            flags |= OFlag::O_EXCL;
        }
        let mut f = self.open_in_root(path, flags)?;
        if let Some(d) = data {
            f.write_all(d.as_bytes()).map_err(io_errno)?;
        }
        drop(f);
        self.pin_mtime(path, now)?;
        Ok(Value::None)
    }

    fn stat(&self, path: &str) -> Result<Value, Errno> {
        let (dir, name) = self.parent(path)?;
        let st =
            fstatat(dir.as_fd(), name.as_str(), AtFlags::AT_SYMLINK_NOFOLLOW).map_err(errno_of)?;
        Ok(stat_value(&st))
    }
}

impl RealFs {
    /// `open`, `flock`, `fstat` and `close` on real descriptors, each the one real syscall.
    fn descriptor_op(
        &mut self,
        op: Op,
        args: &[Value],
        cx: &OpCtx,
    ) -> Result<Result<Value, Errno>, String> {
        if let Op::Open { creat } = op {
            let path = path_arg(args, 0, op)?;
            if normalize(&path) == "/" {
                return Ok(Err(Errno::EISDIR));
            }
            let mut flags = OFlag::O_RDWR | OFlag::O_TRUNC | OFlag::O_NOFOLLOW;
            if creat {
                flags |= OFlag::O_CREAT;
            }
            return Ok(self.open_in_root(&path, flags).and_then(|f| {
                // O_TRUNC set the mtime to the real clock; the model's is the virtual one.
                let ts = timespec(cx.now);
                nix::sys::stat::futimens(f.as_fd(), &ts, &ts).map_err(errno_of)?;
                let mut fd = 3;
                while self.fds.contains_key(&(cx.actor, fd)) {
                    fd += 1;
                }
                self.fds.insert((cx.actor, fd), f);
                Ok(Value::Int(fd))
            }));
        }
        let fd = match args.first() {
            Some(Value::Int(fd)) => *fd,
            other => {
                return Err(format!(
                    "{} expects a file descriptor (the int `open` returned), got {}",
                    op.name(),
                    other.map_or("nothing", Value::type_name)
                ))
            }
        };
        let key = (cx.actor, fd);
        if op == Op::CloseFd {
            // Dropping the File closes it, and the close drops its flock.
            return Ok(self
                .fds
                .remove(&key)
                .map(|_| Value::None)
                .ok_or(Errno::EBADF));
        }
        let Some(f) = self.fds.get(&key) else {
            return Ok(Err(Errno::EBADF));
        };
        Ok(match op {
            Op::Flock { unlock } => {
                let how = if unlock {
                    nix::fcntl::FlockArg::Unlock
                } else {
                    nix::fcntl::FlockArg::LockExclusiveNonblock
                };
                // nix's `Flock` ties the lock to owning the file (dropped: unlocked); here the
                // scenario decides when it ends (flock un, close), each one real syscall.
                #[allow(deprecated)]
                nix::fcntl::flock(f.as_raw_fd(), how)
                    .map(|()| Value::None)
                    .map_err(errno_of)
            }
            _ => nix::sys::stat::fstat(f.as_fd())
                .map(|st| stat_value(&st))
                .map_err(errno_of),
        })
    }
}

impl World for RealFs {
    fn perform(
        &mut self,
        op: Op,
        args: &[Value],
        cx: &OpCtx,
    ) -> Result<Result<Value, Errno>, String> {
        if matches!(op, Op::Open { .. }) || op.is_descriptor() {
            return self.descriptor_op(op, args, cx);
        }
        let path = path_arg(args, 0, op)?;
        let second_path = || path_arg(args, 1, op);
        Ok(match op {
            Op::Create { excl } => self.open_for_write(&path, excl, None, cx.now),
            Op::Write => {
                let data = args.get(1).map(|v| v.to_string()).unwrap_or_default();
                self.open_for_write(&path, false, Some(&data), cx.now)
            }
            Op::Read => self.open_in_root(&path, OFlag::O_RDONLY).and_then(|mut f| {
                let mut s = String::new();
                f.read_to_string(&mut s).map_err(io_errno)?;
                Ok(Value::str(&s))
            }),
            Op::Link => {
                let to = second_path()?;
                (|| {
                    let (from_dir, from_name) = self.parent(&path)?;
                    let (to_dir, to_name) = self.parent(&to)?;
                    linkat(
                        from_dir.as_fd(),
                        from_name.as_str(),
                        to_dir.as_fd(),
                        to_name.as_str(),
                        AtFlags::empty(),
                    )
                    .map_err(errno_of)?;
                    Ok(Value::None)
                })()
            }
            Op::Unlink | Op::Rmdir => {
                if path == "/" {
                    Err(if op == Op::Unlink {
                        Errno::EISDIR
                    } else {
                        Errno::EBUSY
                    })
                } else {
                    let flag = if op == Op::Unlink {
                        UnlinkatFlags::NoRemoveDir
                    } else {
                        UnlinkatFlags::RemoveDir
                    };
                    self.parent(&path)
                        .and_then(|(dir, name)| {
                            unlinkat(dir.as_fd(), name.as_str(), flag).map_err(errno_of)
                        })
                        .map(|()| Value::None)
                }
            }
            Op::Rename => {
                let to = second_path()?;
                (|| {
                    let (from_dir, from_name) = self.parent(&path)?;
                    let (to_dir, to_name) = self.parent(&to)?;
                    nix::fcntl::renameat(
                        from_dir.as_fd(),
                        from_name.as_str(),
                        to_dir.as_fd(),
                        to_name.as_str(),
                    )
                    .map_err(errno_of)?;
                    Ok(Value::None)
                })()
            }
            Op::Stat => self.stat(&path),
            // stat(2) in two halves, each done for real once: the lookup pins the inode (O_PATH,
            // not following a final symlink, as fstatat's AT_SYMLINK_NOFOLLOW), and fstat reads
            // its attributes later, after whatever other actors did to its names in between.
            Op::StatLookup => self
                .open_in_root(&path, OFlag::O_PATH | OFlag::O_NOFOLLOW)
                .map(|f| {
                    self.half = Some(f);
                    Value::None
                }),
            // On NFS the pinned file may have been removed by another client: its handle is
            // stale (ESTALE). stat(2) never says so, because the kernel then repeats the lookup
            // with revalidation (LOOKUP_REVAL); so does this half, by name.
            Op::StatAttrs => match self.half.take() {
                Some(f) => match nix::sys::stat::fstat(f.as_fd()) {
                    Err(nix::errno::Errno::ESTALE) => self.stat(&path),
                    other => other.map_err(errno_of).map(|st| stat_value(&st)),
                },
                None => return Err("stat's second half came without its lookup".into()),
            },
            // write(path, data) in two halves: open with O_TRUNC (the file is empty from now on),
            // then the data through that descriptor and close; both mtimes pinned to the clock.
            Op::WriteOpen => {
                if normalize(&path) == "/" {
                    Err(Errno::EISDIR)
                } else {
                    self.open_in_root(
                        &path,
                        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_TRUNC | OFlag::O_NOFOLLOW,
                    )
                    .and_then(|f| {
                        let ts = timespec(cx.now);
                        nix::sys::stat::futimens(f.as_fd(), &ts, &ts).map_err(errno_of)?;
                        self.half = Some(f);
                        Ok(Value::None)
                    })
                }
            }
            Op::WriteData => match self.half.take() {
                Some(mut f) => {
                    let data = args.get(1).map(|v| v.to_string()).unwrap_or_default();
                    f.write_all(data.as_bytes())
                        .map_err(io_errno)
                        .and_then(|()| {
                            let ts = timespec(cx.now);
                            nix::sys::stat::futimens(f.as_fd(), &ts, &ts).map_err(errno_of)?;
                            Ok(Value::None)
                        })
                }
                None => return Err("write's second half came without its open".into()),
            },
            Op::Utime | Op::Touch => {
                let t = match (op, args.get(1)) {
                    (Op::Touch, _) => cx.now,
                    (_, Some(Value::Int(t))) => *t,
                    (_, other) => {
                        return Err(format!(
                            "utime expects a time (an int), got {}",
                            other.map_or("nothing", Value::type_name)
                        ))
                    }
                };
                self.pin_mtime(&path, t).map(|()| Value::None)
            }
            // glob.glob: one directory read; a missing or unreadable directory lists nothing.
            Op::Glob => {
                let (dir, pattern) = racelab_core::model::fs::split_glob(&normalize(&path))?;
                let names = self
                    .open_in_root(&dir, OFlag::O_RDONLY | OFlag::O_DIRECTORY)
                    .ok()
                    .and_then(|d| {
                        std::fs::read_dir(format!("/proc/self/fd/{}", d.as_raw_fd())).ok()
                    });
                let count = names.map_or(0, |rd| {
                    rd.filter_map(Result::ok)
                        .filter(|e| {
                            e.file_name()
                                .to_str()
                                .is_some_and(|n| racelab_core::model::fs::glob_matches(&pattern, n))
                        })
                        .count()
                });
                Ok(Value::Int(count as i64))
            }
            Op::Mkdir => {
                if path == "/" {
                    Err(Errno::EEXIST)
                } else {
                    self.parent(&path)
                        .and_then(|(dir, name)| {
                            mkdirat(dir.as_fd(), name.as_str(), Mode::from_bits_truncate(0o755))
                                .map_err(errno_of)
                        })
                        .and_then(|()| self.pin_mtime(&path, cx.now))
                        .map(|()| Value::None)
                }
            }
            other => return Err(format!("{} is not a filesystem operation", other.name())),
        })
    }

    fn observe_exists(&self, path: &str) -> bool {
        self.stat(path).is_ok()
    }

    fn actor_ended(&mut self, actor: usize) {
        // The actor's process is gone: its descriptors close, and their flocks go with them.
        self.fds.retain(|(a, _), _| *a != actor);
    }

    fn observe_contents(&self, path: &str) -> Option<String> {
        let mut f = self.open_in_root(path, OFlag::O_RDONLY).ok()?;
        let mut s = String::new();
        f.read_to_string(&mut s).ok()?;
        Some(s)
    }
}

impl Signals for RealFs {}

impl Sql for RealFs {}

/// What `stat` says, as the model says it.
fn stat_value(st: &nix::sys::stat::FileStat) -> Value {
    let is_dir = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR;
    Value::Stat(Stat {
        // Directories: the model reports 2 links and 4096 bytes whatever the filesystem says
        // (btrfs reports 1 link, tmpfs a size that grows with entries); files are compared as is.
        nlink: if is_dir { 2 } else { st.st_nlink as i64 },
        mtime: st.st_mtime * 1000 + st.st_mtime_nsec / 1_000_000,
        size: if is_dir { 4096 } else { st.st_size },
        ino: st.st_ino as i64,
        dir: is_dir,
    })
}

fn parent_of(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

fn timespec(ms: i64) -> TimeSpec {
    TimeSpec::new(ms.div_euclid(1000), ms.rem_euclid(1000) * 1_000_000)
}

/// The language's errno for a real one. An errno the language does not know becomes EIO, so a
/// scenario that does not expect it stops with an unhandled error naming the operation.
fn errno_of(e: NixErrno) -> Errno {
    Errno::from_code(e as i32).unwrap_or(Errno::EIO)
}

fn io_errno(e: std::io::Error) -> Errno {
    e.raw_os_error()
        .and_then(Errno::from_code)
        .unwrap_or(Errno::EIO)
}

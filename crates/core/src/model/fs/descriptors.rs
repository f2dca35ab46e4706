//! Descriptors in the model filesystem: open, flock, fstat and close, and what a last close does on an NFS client (the silly-renamed file goes).

use crate::model::world::OpCtx;
use racelab_lang::ir::{Errno, Op, Value};

use super::*;

impl ModelFs {
    /// `open`, `flock`, `fstat` and `close` on descriptors (see [`crate::model::fds`]).
    pub(super) fn descriptor_op(
        &mut self,
        op: Op,
        args: &[Value],
        cx: &OpCtx,
    ) -> Result<Result<Value, Errno>, String> {
        if let Op::Open { creat } = op {
            let path = path_arg(args, 0, op)?;
            return Ok(self.open_fd(path, creat, cx));
        }
        let fd = fd_arg(args, op)?;
        let a = cx.actor;
        Ok(match op {
            // On NFS, flock is a lock on the server's file (NLM, or NFSv4's LOCK): one lock
            // for every client, as on a local filesystem; but a release may still be on its way
            // to the server (`NfsClients::unlocks_in_flight`).
            Op::Flock { unlock: false } => {
                let granted = self.open_files.lock(a, fd).map(|()| Value::None);
                if granted.is_ok() {
                    self.may_be_refused(a, fd);
                }
                granted
            }
            Op::Flock { unlock: true } => {
                self.release_sent(a, fd);
                self.open_files.unlock(a, fd).map(|()| Value::None)
            }
            Op::Fstat => self
                .open_files
                .inode(a, fd)
                .and_then(|ino| self.fstat_of(a, ino, cx.now)),
            _ => {
                self.release_sent(a, fd);
                self.close_fd(a, fd)
            }
        })
    }

    /// close(fd): the descriptor goes, and its flock with it.
    fn close_fd(&mut self, a: usize, fd: i64) -> Result<Value, Errno> {
        self.open_files.close(a, fd).map(|ino| {
            self.closed(a, ino);
            Value::None
        })
    }

    /// Through an NFS client, the flock `(a, fd)` holds is released: the server may see it late.
    fn release_sent(&mut self, a: usize, fd: i64) {
        if self.nfs.is_none() || !self.open_files.holds_lock(a, fd) {
            return;
        }
        let ino = self.open_files.inode(a, fd).expect("an open descriptor");
        if let Some(nfs) = self.nfs.as_mut() {
            if !nfs.unlocks_in_flight.contains(&(ino, a)) {
                nfs.unlocks_in_flight.push((ino, a));
            }
        }
    }

    /// The flock `(a, fd)` was just granted: while another actor's release of it may still be on
    /// its way, the server may refuse it instead (EAGAIN), the other allowed answer.
    fn may_be_refused(&mut self, a: usize, fd: i64) {
        let Ok(ino) = self.open_files.inode(a, fd) else {
            return;
        };
        let Some(nfs) = self.nfs.as_mut() else {
            return;
        };
        if nfs
            .unlocks_in_flight
            .iter()
            .any(|(i, r)| *i == ino && *r != a)
        {
            nfs.refused_grant = Some(ino);
            self.offer_answers(&Ok(Value::None), [Err(Errno::EAGAIN)]);
        }
    }

    /// fstat of an open inode. Locally: its attributes, `nlink` 0 once unnamed. Through an NFS
    /// client: GETATTR on the server (a client revalidates a file's attributes when it takes a
    /// lock on it), so `nlink` counts a silly-renamed file's `.nfs` name. A file with no name
    /// left on the server has three allowed answers, which the engines choose among
    /// (`World::other_answers`): ESTALE (NFSv3: the server freed it), its attributes with
    /// `nlink` 0 (NFSv4: the server keeps a file alive while a client has it open), and the
    /// attributes this client last had for it (the removal of a `.nfs` name at its client's last
    /// close is sent asynchronously, so a GETATTR may still find it, and an attribute cache
    /// may answer). Measured through the gate on two clients (filelock nfs-v3.29.4): nlink 1 on
    /// NFSv3 and 0 on NFSv4.2 where the model had said only ESTALE.
    pub(super) fn fstat_of(&mut self, actor: usize, ino: usize, now: i64) -> Result<Value, Errno> {
        let Some(client) = self.client_of(actor) else {
            return Ok(self.stat_of(ino));
        };
        if self.inodes[ino].as_ref().is_none_or(|n| n.nlink <= 0) {
            let kept_open = self.inodes[ino].is_some().then(|| Ok(self.stat_of(ino)));
            let last_known = self
                .nfs
                .as_ref()
                .and_then(|nfs| nfs.caches[client].attrs.get(&ino))
                .map(|(_, attrs)| Ok(attrs.clone()));
            let stale = Err(Errno::ESTALE);
            self.offer_answers(&stale, kept_open.into_iter().chain(last_known));
            return stale;
        }
        Ok(self
            .fetch_attrs(client, ino, now)
            .unwrap_or_else(|| self.stat_of(ino)))
    }

    /// The NFS client of `actor`, or None on a local filesystem.
    pub(super) fn client_of(&self, actor: usize) -> Option<usize> {
        let nfs = self.nfs.as_ref()?;
        Some(nfs.client_of.get(actor).copied().unwrap_or(0) as usize)
    }

    /// After `actor` closed a descriptor on `ino`: on NFS, when no process of its client has the
    /// file open any more, the client removes the file's silly-renamed `.nfs` names (the
    /// deferred unlink); then the inode goes if nothing refers to it.
    pub(super) fn closed(&mut self, actor: usize, ino: usize) {
        if let Some(client) = self.client_of(actor) {
            let still_open = self
                .open_files
                .openers(ino)
                .any(|a| self.client_of(a) == Some(client));
            if !still_open {
                let silly: Vec<Arc<str>> = self
                    .names
                    .iter()
                    .filter(|(p, i)| **i == ino && is_silly_name(p))
                    .map(|(p, _)| p.clone())
                    .collect();
                for p in silly {
                    self.unlink_name(&p, ino);
                }
            }
        }
        self.free_if_unreferenced(ino);
    }

    /// NFS's silly rename: `unlink(path)` through a client on which some process has the file
    /// open renames it to `.nfsXXXX` in the same directory instead (the server would free a
    /// file it has no name for, under the client's open descriptors); the client removes that
    /// name when the last of its descriptors on the file closes. `None`: a plain unlink.
    pub(super) fn silly_rename(
        &mut self,
        client: usize,
        path: &str,
    ) -> Option<Result<Value, Errno>> {
        let ino = *self.names.get(path)?;
        let open_here = self
            .open_files
            .openers(ino)
            .any(|a| self.client_of(a) == Some(client));
        if !open_here || self.inode_mut(ino).kind == Kind::Dir {
            return None;
        }
        let dir = parent(path);
        let base = if dir == "/" {
            String::new()
        } else {
            dir.to_string()
        };
        let mut n = 0u32;
        let silly = loop {
            let name = format!("{base}/.nfs{:016x}{n:08x}", ino + 3);
            if !self.names.contains_key(name.as_str()) {
                break name;
            }
            n += 1;
        };
        Some(self.rename(path.to_string(), silly))
    }

    /// open(path, O_RDWR|O_TRUNC|O_NOFOLLOW [|O_CREAT]): a descriptor on the inode the name has now.
    pub(super) fn open_fd(
        &mut self,
        path: String,
        creat: bool,
        cx: &OpCtx,
    ) -> Result<Value, Errno> {
        if path == "/" {
            return Err(Errno::EISDIR);
        }
        if !self.names.contains_key(path.as_str()) {
            if !creat {
                return Err(self.missing(&path));
            }
            self.check_parent(&path)?;
        }
        self.open_for_write(path.as_str().into(), false, None, cx.now)?;
        let ino = self.names[path.as_str()];
        if let Some(client) = self.client_of(cx.actor) {
            // Close-to-open: an NFS open looks the name up on the server and revalidates.
            let _fresh = self.look_up(client, &path, cx.now);
        }
        Ok(Value::Int(self.open_files.open(cx.actor, ino)))
    }
}

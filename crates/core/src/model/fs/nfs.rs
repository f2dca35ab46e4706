//! The NFS client model: each actor's operations through its client, with per-client attribute caches (close-to-open, cached lookups, ESTALE when the server lost the file).

use crate::model::world::OpCtx;
use racelab_lang::ir::{Errno, Op, Value};

use super::*;

/// The longest a Linux client trusts a cached name or attributes without asking the server
/// again: acregmax and acdirmax, 60 s by default. A stale answer is allowed up to this age, never
/// beyond (else a client polling a name could be answered from its cache forever: a livelock no
/// real client has).
const TRUSTED_AT_MOST_MS: i64 = 60_000;

impl ModelFs {
    /// Models every actor's operations as made through its NFS client (`client_of[actor]`),
    /// each client caching attributes for `cache_ms`.
    pub fn set_nfs(&mut self, cache_ms: i64, client_of: Vec<u32>) {
        let clients = client_of
            .iter()
            .copied()
            .max()
            .map_or(1, |m| m as usize + 1);
        self.nfs = Some(NfsClients {
            cache_ms,
            client_of,
            caches: vec![ClientCache::default(); clients],
            removed: BTreeMap::new(),
            other_answers: Vec::new(),
            unlocks_in_flight: Vec::new(),
            refused_grant: None,
            stale_name: None,
        });
    }

    /// One operation through the actor's NFS client.
    pub(super) fn through_client(
        &mut self,
        op: Op,
        args: &[Value],
        cx: &OpCtx,
    ) -> Result<Result<Value, Errno>, String> {
        let path = path_arg(args, 0, op)?;
        let nfs = self.nfs.as_ref().expect("called only with NFS clients");
        let client = nfs.client_of.get(cx.actor).copied().unwrap_or(0) as usize;
        if op == Op::Stat && path != "/" {
            // While the cache is fresh the kernel may still revalidate (a changed directory makes
            // it look the name up again): the cached answer, or the server's, two allowed
            // answers as for a read below. Measured on two clients: after the ESTALE of a utime
            // on a removed claim, client B's stat of LOCKFILE, which B still mapped to that
            // claim, answered from B's cache on NFSv4.2 and with the new lock's attributes on
            // NFSv3 (flufl-lock nfs-crash); a stat of a lock file another client had just
            // touched gave the new mtime where B's cache held the old one (portalocker
            // nfs-v3.2.0, nfs3x2 and nfs4x2).
            //
            // And once `cache_ms` has passed the kernel may not have revalidated yet (Linux's
            // attribute timeouts grow from acregmin to acregmax, and a cached name, negative
            // ones included, is trusted while its directory's attributes are: acdirmin): the
            // server's answer, or the stale cached one. Measured: a real forced replay takes a
            // fraction of a second, so a name the model's 3 s cache had let go at 3 s was still
            // ENOENT for the real client (nfs-two-clients nfs, on the qemu guest).
            let other = if self.cached_name_is_fresh(client, &path, cx.now) {
                Some(self.server_stat(&path))
            } else {
                self.stale_stat(client, &path, cx.now)
            };
            let entry = self
                .nfs
                .as_ref()
                .and_then(|nfs| nfs.caches[client].names.get(&path).cloned());
            let first = self.cached_stat(client, &path, cx.now);
            if let (Some(nfs), Some(other)) = (self.nfs.as_mut(), &other) {
                if !nfs.cache_fresh(entry.as_ref(), cx.now) && *other != first {
                    nfs.stale_name = entry.map(|entry| StaleName {
                        client,
                        path: path.clone(),
                        entry,
                    });
                }
            }
            self.offer_answers(&first, other);
            return Ok(first);
        }
        // A directory listing (READDIR) is the server's; the model keeps no readdir cache.
        if op == Op::Glob {
            return self.server(op, args, cx);
        }
        // An operation that must find an existing file resolves its path through the client's
        // cached names (dentries) first, as the kernel's path walk does: a fresh negative entry
        // is ENOENT without asking the server (measured: client A, whose own unlink left a
        // negative entry, gets ENOENT from utime(LOCKFILE) after client B has linked a new
        // LOCKFILE). Creating operations (write, create, mkdir, a link's or a rename's target)
        // go to the server whatever the client cached.
        let resolves = matches!(
            op,
            Op::Read | Op::Utime | Op::Touch | Op::Unlink | Op::Rmdir | Op::Rename | Op::Link
        );
        let cached = match &nfs.caches[client].names.get(&path) {
            Some((at, named)) if resolves && path != "/" && cx.now - at < nfs.cache_ms => {
                Some(*named)
            }
            _ => None,
        };
        // Through a name the client still caches, whose file the server has since unnamed or
        // removed, the kernel may trust the cached name and act on that file's handle (NFSv3
        // GETATTR, NFSv4.1+ OPEN by handle) or look the name up again: two allowed answers,
        // which the engines choose between (`World::other_answers`). Measured on the qemu guest,
        // never on User-mode Linux: a read of the lock file just after the other client
        // unlinked it got the file's contents (it lived on under its claim name; mailman
        // nfs-mailman-2.1, nfs3x2 and nfs4x2), a read after it was removed for good got the
        // old contents (4 of 20 probes), and a utime of a removed claim succeeded (flufl-lock
        // nfs-crash, nfs4x2).
        let other = match cached {
            Some(Ok(ino)) if self.names.get(path.as_str()) != Some(&ino) => {
                self.through_cached_handle(op, ino)
            }
            _ => None,
        };
        match cached {
            Some(Err(e)) => return Ok(Err(e)),
            // utime through a name the client still maps to a file the server has since
            // unnamed or replaced: SETATTR goes to that file's handle (ESTALE, when the file is
            // gone, makes the kernel look the name up again: then it is the server's name).
            Some(Ok(ino))
                if matches!(op, Op::Utime | Op::Touch)
                    && self.names.get(path.as_str()) != Some(&ino)
                    && self.inodes.get(ino).is_some_and(Option::is_some) =>
            {
                let t = match (op, args.get(1)) {
                    (Op::Touch, _) => cx.now,
                    (_, Some(Value::Int(t))) => *t,
                    _ => return self.server(op, args, cx),
                };
                self.inode_mut(ino).mtime = t;
                self.fetch_attrs(client, ino, cx.now);
                return Ok(Ok(Value::None));
            }
            _ => {}
        }
        let mut touched = vec![path];
        if matches!(op, Op::Link | Op::Rename) {
            touched.push(path_arg(args, 1, op)?);
        }
        // The files the names named before the call: an unlink or a rename changes their link
        // count, and the client knows it did (Linux drops its cached nlink).
        let before: Vec<usize> = touched
            .iter()
            .filter_map(|p| self.names.get(p.as_str()).copied())
            .collect();
        let silly = match op {
            Op::Unlink => self.silly_rename(client, &touched[0]),
            _ => None,
        };
        let result = match silly {
            Some(r) => r,
            None => self.server(op, args, cx)?,
        };
        self.offer_answers(&result, other);
        // The reply refreshes what this client knows of the names involved and their files:
        // post-operation attributes for changes, a fresh GETATTR for an open (`read`).
        for p in &touched {
            let _refreshed = self.look_up(client, p, cx.now);
        }
        for ino in before {
            self.fetch_attrs(client, ino, cx.now);
        }
        Ok(result)
    }

    /// `stat` through `client`: the cached name and attributes while they are fresh.
    pub(super) fn cached_stat(
        &mut self,
        client: usize,
        path: &str,
        now: i64,
    ) -> Result<Value, Errno> {
        let nfs = self.nfs.as_ref().expect("called only with NFS clients");
        let fresh = |at: i64| now - at < nfs.cache_ms;
        let cache = &nfs.caches[client];
        let named = match cache.names.get(path) {
            Some((at, named)) if fresh(*at) => *named,
            _ => return self.look_up(client, path, now),
        };
        let ino = named?;
        match cache.attrs.get(&ino) {
            Some((at, attrs)) if fresh(*at) => Ok(attrs.clone()),
            // GETATTR; on ESTALE (the file is gone) the kernel looks the name up again.
            _ => match self.fetch_attrs(client, ino, now) {
                Some(attrs) => Ok(attrs),
                None => self.look_up(client, path, now),
            },
        }
    }

    /// Offers the engines `others` beside the answer `given` (`World::other_answers`): those
    /// that differ from it and from each other.
    pub(super) fn offer_answers(
        &mut self,
        given: &Result<Value, Errno>,
        others: impl IntoIterator<Item = Result<Value, Errno>>,
    ) {
        let Some(nfs) = self.nfs.as_mut() else {
            return;
        };
        for other in others {
            if other != *given && !nfs.other_answers.contains(&other) {
                nfs.other_answers.push(other);
            }
        }
    }

    /// Whether `client` holds a fresh name `path` for a file (a stat may answer from it).
    fn cached_name_is_fresh(&self, client: usize, path: &str, now: i64) -> bool {
        let Some(nfs) = self.nfs.as_ref() else {
            return false;
        };
        matches!(nfs.caches[client].names.get(path), Some((at, Ok(_))) if now - at < nfs.cache_ms)
    }

    /// What `client`'s cache still says of `path` past its lifetime but within
    /// [`TRUSTED_AT_MOST_MS`]: the negative entry's error, or the attributes last cached for the
    /// file the name named; None when it holds neither, or held it too long.
    fn stale_stat(&self, client: usize, path: &str, now: i64) -> Option<Result<Value, Errno>> {
        let cache = &self.nfs.as_ref()?.caches[client];
        match cache.names.get(path)? {
            (at, _) if now - at >= TRUSTED_AT_MOST_MS => None,
            (_, Err(e)) => Some(Err(*e)),
            (_, Ok(ino)) => cache.attrs.get(ino).map(|(_, attrs)| Ok(attrs.clone())),
        }
    }

    /// What a LOOKUP of `path` and a GETATTR would answer now, without caching it.
    fn server_stat(&self, path: &str) -> Result<Value, Errno> {
        self.names
            .get(path)
            .map(|ino| self.stat_of(*ino))
            .ok_or_else(|| self.missing(path))
    }

    /// LOOKUP on the server: caches what `path` names now and that file's attributes.
    pub(super) fn look_up(&mut self, client: usize, path: &str, now: i64) -> Result<Value, Errno> {
        let named = self
            .names
            .get(path)
            .copied()
            .ok_or_else(|| self.missing(path));
        let attrs = named.map(|ino| self.stat_of(ino));
        if let Some(nfs) = self.nfs.as_mut() {
            let cache = &mut nfs.caches[client];
            cache.names.insert(path.to_string(), (now, named));
            if let (Ok(ino), Ok(a)) = (named, &attrs) {
                cache.attrs.insert(ino, (now, a.clone()));
            }
        }
        attrs
    }

    /// What `op` gives when the client acts on the handle of `ino`, the file its cached name
    /// last named: a read gets that file's contents (or, when the server has removed it, its
    /// last contents while it is remembered), a utime of a removed file goes nowhere. `None`
    /// where the model has one answer (a utime of a live file: see `through_client`).
    fn through_cached_handle(&self, op: Op, ino: usize) -> Option<Result<Value, Errno>> {
        let removed = self.nfs.as_ref()?.removed.get(&ino);
        match (op, self.inodes.get(ino)?) {
            (
                Op::Read,
                Some(Inode {
                    kind: Kind::File(contents),
                    ..
                }),
            ) => Some(Ok(Value::Str(Arc::clone(contents)))),
            (Op::Read, None) => removed.map(|c| Ok(Value::Str(Arc::clone(c)))),
            (Op::Utime | Op::Touch, None) => removed.map(|_| Ok(Value::None)),
            _ => None,
        }
    }

    /// Keeps a removed file's last contents while some client still caches a name of it.
    pub(super) fn remember_removed(&mut self, ino: usize, contents: Arc<str>) {
        let Some(nfs) = self.nfs.as_mut() else {
            return;
        };
        let named = nfs
            .caches
            .iter()
            .any(|c| c.names.values().any(|(_, n)| *n == Ok(ino)));
        if named {
            nfs.removed.insert(ino, contents);
        }
    }

    /// GETATTR on the server: caches and returns the attributes of `ino`, None when it is gone.
    pub(super) fn fetch_attrs(&mut self, client: usize, ino: usize, now: i64) -> Option<Value> {
        self.inodes.get(ino)?.as_ref()?;
        let v = self.stat_of(ino);
        if let Some(nfs) = self.nfs.as_mut() {
            nfs.caches[client].attrs.insert(ino, (now, v.clone()));
        }
        Some(v)
    }
}

impl NfsClients {
    /// Whether a cached name looked up at the entry's time is still fresh at `now`.
    fn cache_fresh(&self, entry: Option<&(i64, Result<usize, Errno>)>, now: i64) -> bool {
        entry.is_some_and(|(at, _)| now - at < self.cache_ms)
    }
}

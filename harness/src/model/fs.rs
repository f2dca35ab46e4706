//! The model filesystem: names to inodes, contents, link counts, mtimes, and POSIX errno results.

use std::collections::BTreeMap;

use super::world::{OpCtx, Signals, Sql, World};
use crate::ir::{Errno, Op, Stat, Value};

#[derive(Debug, Clone, PartialEq, Hash)]
enum Kind {
    File(String),
    Dir,
}

#[derive(Debug, Clone, Hash)]
struct Inode {
    kind: Kind,
    nlink: i64,
    mtime: i64,
}

/// An in-memory POSIX filesystem, deterministic and cheap to clone.
#[derive(Debug, Clone, Default, Hash)]
pub struct ModelFs {
    /// invariant: every key is a normalised absolute path whose parent is a directory in `names`
    /// (or `/`), and every value indexes a live inode.
    names: BTreeMap<String, usize>,
    inodes: Vec<Option<Inode>>,
    /// Set for `nfs cache D`: the world as NFS clients see it.
    nfs: Option<NfsClients>,
    /// Per actor, the inode the first half of its `stat` or `write` holds for the second half
    /// (the kernel's reference from the lookup, or the open file). A pinned inode outlives its
    /// last name until the second half lets it go, as an open file does.
    pinned: BTreeMap<usize, usize>,
    /// The actors' open descriptors (`open`) and the flocks taken through them.
    open_files: crate::model::fds::OpenFiles,
}

/// The pin of `stat("/")`: the root has no inode in `names`.
const ROOT_PIN: usize = usize::MAX;

/// NFS client caches over the model server, as a Linux client keeps them: each client caches
/// what a name resolved to (its dentries: the inode a path named, or that it was missing) and,
/// apart from names, the attributes of each inode (the attribute cache is per file, not per
/// name: a change a client makes through one name of a file is what it sees through every
/// other name of it). Both are kept for `cache_ms` of virtual time (acregmin = 3 s). `stat`
/// answers from the cache while it is fresh; when the inode a cached name points at is gone
/// from the server (ESTALE), the kernel looks the name up again, and so does this. Opening a
/// file (`read`) revalidates it (close-to-open consistency); a client's own changes refresh its
/// own cache from the reply's post-operation attributes, for the names it used and the files
/// they named before and after. Other clients' caches are left as they were: client B still
/// sees `st_nlink == 1` just after client A's `link`, and still sees a file A has just
/// unlinked — the staleness Mailman's LockFile comments worry about.
#[derive(Debug, Clone, Hash)]
struct NfsClients {
    cache_ms: i64,
    /// The client of each actor.
    client_of: Vec<u32>,
    caches: Vec<ClientCache>,
}

/// One client's caches.
#[derive(Debug, Clone, Default, Hash)]
struct ClientCache {
    /// path → (when looked up, the inode it named or why it named none).
    names: BTreeMap<String, (i64, Result<usize, Errno>)>,
    /// inode → (when fetched, its attributes).
    attrs: BTreeMap<usize, (i64, Value)>,
}

/// Normalises an absolute path: collapses `//` and `.`, resolves `..` without ever climbing above `/`.
pub fn normalize(path: &str) -> String {
    // Fast path: most scenario paths are already normal; checking is cheaper than rebuilding.
    let already_normal = path.starts_with('/')
        && (path == "/" || !path.ends_with('/'))
        && !path.contains("//")
        && !path.contains("/./")
        && !path.contains("/../")
        && !path.ends_with("/.")
        && !path.ends_with("/..");
    if already_normal {
        return path.to_string();
    }
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

/// Refuses a path whose `..` would climb above the scenario's root (`/..`, `/a/../..`): on a
/// real backend the root is a directory of the host, and a scenario must never reach out of
/// it. The model refuses the same paths, so model and real runs agree.
pub fn check_confined(path: &str) -> Result<(), String> {
    let mut depth = 0usize;
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." if depth == 0 => {
                return Err(format!("the path `{path}` climbs above the scenario's root with `..`; scenario paths are relative to the root and cannot leave it"))
            }
            ".." => depth -= 1,
            _ => depth += 1,
        }
    }
    Ok(())
}

/// The `i`-th argument as a normalised path, or the misuse that stops the actor.
/// Whether `path`'s last component is an NFS client's silly-rename name (`.nfs` + hex).
fn is_silly_name(path: &str) -> bool {
    path.rsplit('/')
        .next()
        .is_some_and(|n| n.starts_with(".nfs"))
}

/// Argument 0 of a descriptor operation: the int `open` returned.
fn fd_arg(args: &[Value], op: Op) -> Result<i64, String> {
    match args.first() {
        Some(Value::Int(fd)) => Ok(*fd),
        Some(v) => Err(format!(
            "{} expects a file descriptor (the int `open` returned), got a {} ({v})",
            op.name(),
            v.type_name()
        )),
        None => Err(format!("{} is missing its descriptor", op.name())),
    }
}

pub fn path_arg(args: &[Value], i: usize, op: Op) -> Result<String, String> {
    match args.get(i) {
        Some(Value::Str(s)) => {
            check_confined(s)?;
            Ok(normalize(s))
        }
        Some(v) => Err(format!(
            "{} expects a path (a string), got a {} ({v})",
            op.name(),
            v.type_name()
        )),
        None => Err(format!("{} is missing an argument", op.name())),
    }
}

impl ModelFs {
    pub fn new() -> ModelFs {
        ModelFs::default()
    }

    /// Creates a directory and its parents (for the scenario's initial `fs { ... }` block).
    pub fn mkdir_all(&mut self, path: &str, now: i64) {
        let path = normalize(path);
        if path == "/" || self.names.contains_key(&path) {
            return;
        }
        self.mkdir_all(parent(&path), now);
        self.insert(path, Kind::Dir, now);
    }

    /// Creates a file with contents (and its parent directories).
    pub fn put_file(&mut self, path: &str, contents: &str, now: i64) {
        let path = normalize(path);
        self.mkdir_all(parent(&path), now);
        if let Some(ino) = self.names.get(&path).copied() {
            self.unlink_name(&path, ino);
        }
        self.insert(path, Kind::File(contents.to_string()), now);
    }

    pub fn exists(&self, path: &str) -> bool {
        let p = normalize(path);
        p == "/" || self.names.contains_key(&p)
    }

    pub fn contents(&self, path: &str) -> Option<&str> {
        match &self.inode(&normalize(path))?.kind {
            Kind::File(s) => Some(s),
            Kind::Dir => None,
        }
    }

    fn insert(&mut self, path: String, kind: Kind, now: i64) {
        let nlink = if kind == Kind::Dir { 2 } else { 1 };
        self.inodes.push(Some(Inode {
            kind,
            nlink,
            mtime: now,
        }));
        self.names.insert(path, self.inodes.len() - 1);
    }

    fn inode(&self, path: &str) -> Option<&Inode> {
        self.names.get(path).and_then(|i| self.inodes[*i].as_ref())
    }

    fn inode_mut(&mut self, ino: usize) -> &mut Inode {
        self.inodes[ino]
            .as_mut()
            .expect("names only point at live inodes")
    }

    fn unlink_name(&mut self, path: &str, ino: usize) {
        self.names.remove(path);
        let node = self.inode_mut(ino);
        node.nlink -= 1;
        if node.kind == Kind::Dir {
            node.nlink = 0;
        }
        self.free_if_unreferenced(ino);
    }

    /// Frees an inode that no name and no pin refers to.
    fn free_if_unreferenced(&mut self, ino: usize) {
        let unnamed = self.inodes[ino].as_ref().is_some_and(|n| n.nlink <= 0);
        if unnamed && !self.pinned.values().any(|p| *p == ino) && !self.open_files.refers_to(ino) {
            self.inodes[ino] = None;
        }
    }

    /// The attributes of inode `ino` (alive: named or pinned).
    fn stat_of(&self, ino: usize) -> Value {
        let n = self.inodes[ino]
            .as_ref()
            .expect("a pinned inode stays alive");
        let size = match &n.kind {
            Kind::File(s) => s.len() as i64,
            Kind::Dir => 4096,
        };
        // Inode 2 is the root, as on ext4; files start at 3.
        Value::Stat(Stat {
            nlink: n.nlink,
            mtime: n.mtime,
            size,
            ino: ino as i64 + 3,
            dir: matches!(n.kind, Kind::Dir),
        })
    }

    /// Lets go of what the first half of actor `actor`'s `stat` or `write` held.
    fn unpin(&mut self, actor: usize) -> Option<usize> {
        let ino = self.pinned.remove(&actor)?;
        if ino != ROOT_PIN {
            self.free_if_unreferenced(ino);
        }
        Some(ino)
    }

    /// ENOENT when the parent is missing, ENOTDIR when it is a file.
    fn check_parent(&self, path: &str) -> Result<(), Errno> {
        let p = parent(path);
        if p == "/" {
            return Ok(());
        }
        match self.inode(p) {
            None => Err(Errno::ENOENT),
            Some(Inode {
                kind: Kind::Dir, ..
            }) => Ok(()),
            Some(_) => Err(Errno::ENOTDIR),
        }
    }

    /// The errno for a path that is not in the namespace: ENOTDIR when an ancestor is a
    /// regular file (as the kernel's path walk reports), ENOENT otherwise.
    fn missing(&self, path: &str) -> Errno {
        let mut p = parent(path);
        while p != "/" {
            if let Some(Inode {
                kind: Kind::File(_),
                ..
            }) = self.inode(p)
            {
                return Errno::ENOTDIR;
            }
            p = parent(p);
        }
        Errno::ENOENT
    }

    fn has_children(&self, dir: &str) -> bool {
        let prefix = format!("{dir}/");
        self.names
            .range(prefix.clone()..)
            .next()
            .is_some_and(|(k, _)| k.starts_with(&prefix))
    }

    fn open_for_write(
        &mut self,
        path: String,
        excl: bool,
        data: Option<String>,
        now: i64,
    ) -> Result<Value, Errno> {
        self.check_parent(&path)?;
        if path == "/" {
            return Err(Errno::EISDIR);
        }
        match self.names.get(&path).copied() {
            Some(ino) => {
                if excl {
                    return Err(Errno::EEXIST);
                }
                let node = self.inode_mut(ino);
                if node.kind == Kind::Dir {
                    return Err(Errno::EISDIR);
                }
                node.kind = Kind::File(data.unwrap_or_default());
                node.mtime = now;
            }
            None => self.insert(path, Kind::File(data.unwrap_or_default()), now),
        }
        Ok(Value::None)
    }

    fn rename(&mut self, from: String, to: String) -> Result<Value, Errno> {
        let src = *self.names.get(&from).ok_or(Errno::ENOENT)?;
        self.check_parent(&to)?;
        if from == to {
            return Ok(Value::None);
        }
        let src_is_dir = self.inode(&from).is_some_and(|n| n.kind == Kind::Dir);
        if src_is_dir && to.starts_with(&format!("{from}/")) {
            return Err(Errno::EINVAL);
        }
        if let Some(dst) = self.names.get(&to).copied() {
            let dst_is_dir = self.inode(&to).is_some_and(|n| n.kind == Kind::Dir);
            match (src_is_dir, dst_is_dir) {
                (false, true) => return Err(Errno::EISDIR),
                (true, false) => return Err(Errno::ENOTDIR),
                (true, true) if self.has_children(&to) => return Err(Errno::ENOTEMPTY),
                _ => {}
            }
            if dst == src {
                // Two names of one inode: POSIX says rename does nothing.
                return Ok(Value::None);
            }
            self.unlink_name(&to, dst);
        }
        self.names.remove(&from);
        if src_is_dir {
            let prefix = format!("{from}/");
            let moved: Vec<(String, usize)> = self
                .names
                .range(prefix.clone()..)
                .take_while(|(k, _)| k.starts_with(&prefix))
                .map(|(k, v)| (k.clone(), *v))
                .collect();
            for (k, v) in moved {
                self.names.remove(&k);
                self.names.insert(format!("{to}/{}", &k[prefix.len()..]), v);
            }
        }
        self.names.insert(to, src);
        Ok(Value::None)
    }
}

impl World for ModelFs {
    fn observe_exists(&self, path: &str) -> bool {
        self.exists(path)
    }

    fn actor_ended(&mut self, actor: usize) {
        // A process that is gone holds no inode any more: its pin goes, its descriptors close
        // (and their flocks with them).
        self.unpin(actor);
        for ino in self.open_files.close_all(actor) {
            self.closed(actor, ino);
        }
    }

    fn observe_contents(&self, path: &str) -> Option<String> {
        self.contents(path).map(str::to_string)
    }

    fn perform(
        &mut self,
        op: Op,
        args: &[Value],
        cx: &OpCtx,
    ) -> Result<Result<Value, Errno>, String> {
        if matches!(op, Op::Open { .. }) || op.is_descriptor() {
            return self.descriptor_op(op, args, cx);
        }
        if self.nfs.is_none() {
            return self.server(op, args, cx);
        }
        self.through_client(op, args, cx)
    }
}

impl Signals for ModelFs {}

impl Sql for ModelFs {}

impl ModelFs {
    /// `open`, `flock`, `fstat` and `close` on descriptors (see [`crate::model::fds`]).
    fn descriptor_op(
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
            // for every client, as on a local filesystem.
            Op::Flock { unlock: false } => self.open_files.lock(a, fd).map(|()| Value::None),
            Op::Flock { unlock: true } => self.open_files.unlock(a, fd).map(|()| Value::None),
            Op::Fstat => self
                .open_files
                .inode(a, fd)
                .and_then(|ino| self.fstat_of(a, ino, cx.now)),
            _ => self.open_files.close(a, fd).map(|ino| {
                self.closed(a, ino);
                Value::None
            }),
        })
    }

    /// fstat of an open inode. Locally: its attributes, `nlink` 0 once unnamed. Through an NFS
    /// client: GETATTR on the server (a client revalidates a file's attributes when it takes a
    /// lock on it), so `nlink` counts a silly-renamed file's `.nfs` name; a file with no name
    /// left on the server is gone there, and its handle is stale (ESTALE).
    fn fstat_of(&mut self, actor: usize, ino: usize, now: i64) -> Result<Value, Errno> {
        let Some(client) = self.client_of(actor) else {
            return Ok(self.stat_of(ino));
        };
        if self.inodes[ino].as_ref().is_none_or(|n| n.nlink <= 0) {
            return Err(Errno::ESTALE);
        }
        Ok(self
            .fetch_attrs(client, ino, now)
            .unwrap_or_else(|| self.stat_of(ino)))
    }

    /// The NFS client of `actor`, or None on a local filesystem.
    fn client_of(&self, actor: usize) -> Option<usize> {
        let nfs = self.nfs.as_ref()?;
        Some(nfs.client_of.get(actor).copied().unwrap_or(0) as usize)
    }

    /// After `actor` closed a descriptor on `ino`: on NFS, when no process of its client has the
    /// file open any more, the client removes the file's silly-renamed `.nfs` names (the
    /// deferred unlink); then the inode goes if nothing refers to it.
    fn closed(&mut self, actor: usize, ino: usize) {
        if let Some(client) = self.client_of(actor) {
            let still_open = self
                .open_files
                .openers(ino)
                .any(|a| self.client_of(a) == Some(client));
            if !still_open {
                let silly: Vec<String> = self
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
    fn silly_rename(&mut self, client: usize, path: &str) -> Option<Result<Value, Errno>> {
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
            if !self.names.contains_key(&name) {
                break name;
            }
            n += 1;
        };
        Some(self.rename(path.to_string(), silly))
    }

    /// open(path, O_RDWR|O_TRUNC|O_NOFOLLOW [|O_CREAT]): a descriptor on the inode the name has now.
    fn open_fd(&mut self, path: String, creat: bool, cx: &OpCtx) -> Result<Value, Errno> {
        if path == "/" {
            return Err(Errno::EISDIR);
        }
        if !self.names.contains_key(&path) {
            if !creat {
                return Err(self.missing(&path));
            }
            self.check_parent(&path)?;
        }
        self.open_for_write(path.clone(), false, None, cx.now)?;
        let ino = self.names[&path];
        if let Some(client) = self.client_of(cx.actor) {
            // Close-to-open: an NFS open looks the name up on the server and revalidates.
            let _fresh = self.look_up(client, &path, cx.now);
        }
        Ok(Value::Int(self.open_files.open(cx.actor, ino)))
    }

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
        });
    }

    /// One operation through the actor's NFS client.
    fn through_client(
        &mut self,
        op: Op,
        args: &[Value],
        cx: &OpCtx,
    ) -> Result<Result<Value, Errno>, String> {
        let path = path_arg(args, 0, op)?;
        let nfs = self.nfs.as_ref().expect("called only with NFS clients");
        let client = nfs.client_of.get(cx.actor).copied().unwrap_or(0) as usize;
        if op == Op::Stat && path != "/" {
            return Ok(self.cached_stat(client, &path, cx.now));
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
        match cached {
            Some(Err(e)) => return Ok(Err(e)),
            // utime through a name the client still maps to a file the server has since
            // unnamed or replaced: SETATTR goes to that file's handle (ESTALE, when the file is
            // gone, makes the kernel look the name up again: then it is the server's name).
            Some(Ok(ino))
                if matches!(op, Op::Utime | Op::Touch)
                    && self.names.get(&path) != Some(&ino)
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
            .filter_map(|p| self.names.get(p).copied())
            .collect();
        let silly = match op {
            Op::Unlink => self.silly_rename(client, &touched[0]),
            _ => None,
        };
        let result = match silly {
            Some(r) => r,
            None => self.server(op, args, cx)?,
        };
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
    fn cached_stat(&mut self, client: usize, path: &str, now: i64) -> Result<Value, Errno> {
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

    /// LOOKUP on the server: caches what `path` names now and that file's attributes.
    fn look_up(&mut self, client: usize, path: &str, now: i64) -> Result<Value, Errno> {
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

    /// GETATTR on the server: caches and returns the attributes of `ino`, None when it is gone.
    fn fetch_attrs(&mut self, client: usize, ino: usize, now: i64) -> Option<Value> {
        self.inodes.get(ino)?.as_ref()?;
        let v = self.stat_of(ino);
        if let Some(nfs) = self.nfs.as_mut() {
            nfs.caches[client].attrs.insert(ino, (now, v.clone()));
        }
        Some(v)
    }

    /// The operation on the server's (the model's) state, as every client will eventually see it.
    fn server(
        &mut self,
        op: Op,
        args: &[Value],
        cx: &OpCtx,
    ) -> Result<Result<Value, Errno>, String> {
        let path = path_arg(args, 0, op)?;
        Ok(match op {
            Op::Create { excl } => self.open_for_write(path, excl, None, cx.now),
            Op::Write => {
                let data = args.get(1).map(|v| v.to_string()).unwrap_or_default();
                self.open_for_write(path, false, Some(data), cx.now)
            }
            Op::Read => match self.inode(&path) {
                None if path == "/" => Err(Errno::EISDIR),
                None => Err(self.missing(&path)),
                Some(Inode {
                    kind: Kind::Dir, ..
                }) => Err(Errno::EISDIR),
                Some(Inode {
                    kind: Kind::File(s),
                    ..
                }) => Ok(Value::str(s)),
            },
            Op::Link => {
                let to = path_arg(args, 1, op)?;
                (|| {
                    let ino = *self.names.get(&path).ok_or(Errno::ENOENT)?;
                    if self.inode_mut(ino).kind == Kind::Dir {
                        return Err(Errno::EPERM);
                    }
                    self.check_parent(&to)?;
                    if to == "/" || self.names.contains_key(&to) {
                        return Err(Errno::EEXIST);
                    }
                    self.inode_mut(ino).nlink += 1;
                    self.names.insert(to, ino);
                    Ok(Value::None)
                })()
            }
            Op::Unlink => match self.names.get(&path).copied() {
                None => Err(self.missing(&path)),
                Some(ino) if self.inode_mut(ino).kind == Kind::Dir => Err(Errno::EISDIR),
                Some(ino) => {
                    self.unlink_name(&path, ino);
                    Ok(Value::None)
                }
            },
            Op::Rename => {
                let to = path_arg(args, 1, op)?;
                self.rename(path, to)
            }
            Op::Stat => match self.names.get(&path) {
                None if path == "/" => Ok(Value::Stat(Stat {
                    nlink: 2,
                    mtime: cx.now,
                    size: 4096,
                    ino: 2,
                    dir: true,
                })),
                None => Err(self.missing(&path)),
                Some(&ino) => Ok(self.stat_of(ino)),
            },
            Op::StatLookup => match self.names.get(&path) {
                None if path == "/" => {
                    self.unpin(cx.actor);
                    self.pinned.insert(cx.actor, ROOT_PIN);
                    Ok(Value::None)
                }
                None => Err(self.missing(&path)),
                Some(&ino) => {
                    self.unpin(cx.actor);
                    self.pinned.insert(cx.actor, ino);
                    Ok(Value::None)
                }
            },
            Op::StatAttrs => {
                let Some(&ino) = self.pinned.get(&cx.actor) else {
                    return Err("stat's second half came without its lookup".into());
                };
                let v = if ino == ROOT_PIN {
                    Value::Stat(Stat {
                        nlink: 2,
                        mtime: cx.now,
                        size: 4096,
                        ino: 2,
                        dir: true,
                    })
                } else {
                    self.stat_of(ino)
                };
                self.unpin(cx.actor);
                Ok(v)
            }
            Op::WriteOpen => self
                .open_for_write(path.clone(), false, Some(String::new()), cx.now)
                .inspect(|_| {
                    let ino = self.names[&path];
                    self.unpin(cx.actor);
                    self.pinned.insert(cx.actor, ino);
                }),
            Op::WriteData => {
                let Some(&ino) = self.pinned.get(&cx.actor) else {
                    return Err("write's second half came without its open".into());
                };
                let data = args.get(1).map(|v| v.to_string()).unwrap_or_default();
                let node = self.inode_mut(ino);
                node.kind = Kind::File(data);
                node.mtime = cx.now;
                self.unpin(cx.actor);
                Ok(Value::None)
            }
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
                match self.names.get(&path) {
                    None => Err(self.missing(&path)),
                    Some(&ino) => {
                        self.inode_mut(ino).mtime = t;
                        Ok(Value::None)
                    }
                }
            }
            Op::Mkdir => {
                if path == "/" || self.names.contains_key(&path) {
                    Err(Errno::EEXIST)
                } else {
                    self.check_parent(&path).map(|()| {
                        self.insert(path, Kind::Dir, cx.now);
                        Value::None
                    })
                }
            }
            Op::Glob => {
                let (dir, pattern) = split_glob(&path)?;
                let prefix = if dir == "/" {
                    "/".to_string()
                } else {
                    format!("{dir}/")
                };
                let count = self
                    .names
                    .range(prefix.clone()..)
                    .take_while(|(k, _)| k.starts_with(&prefix))
                    .filter(|(k, _)| {
                        let name = &k[prefix.len()..];
                        !name.is_empty() && !name.contains('/') && glob_matches(&pattern, name)
                    })
                    .count();
                Ok(Value::Int(count as i64))
            }
            Op::Rmdir => match self.names.get(&path).copied() {
                None if path == "/" => Err(Errno::EBUSY),
                None => Err(Errno::ENOENT),
                Some(ino) if self.inode_mut(ino).kind != Kind::Dir => Err(Errno::ENOTDIR),
                Some(_) if self.has_children(&path) => Err(Errno::ENOTEMPTY),
                Some(ino) => {
                    self.unlink_name(&path, ino);
                    Ok(Value::None)
                }
            },
            other => return Err(format!("{} is not a filesystem operation", other.name())),
        })
    }
}

/// `glob(pattern)`'s directory and last component; wildcards only in the last component.
pub fn split_glob(path: &str) -> Result<(String, String), String> {
    let (dir, pattern) = match path.rfind('/') {
        Some(0) => ("/", &path[1..]),
        Some(i) => (&path[..i], &path[i + 1..]),
        None => ("/", path),
    };
    if dir.contains(['*', '?']) {
        return Err(format!(
            "glob({path:?}): only the last component may hold wildcards"
        ));
    }
    Ok((dir.to_string(), pattern.to_string()))
}

/// Whether `name` matches a glob component (`*` any run, `?` one character, anything else
/// itself), as Python's `glob` does: a name starting with `.` only when the pattern does.
pub fn glob_matches(pattern: &str, name: &str) -> bool {
    fn go(p: &[char], n: &[char]) -> bool {
        match p.split_first() {
            None => n.is_empty(),
            Some(('*', rest)) => (0..=n.len()).any(|i| go(rest, &n[i..])),
            Some(('?', rest)) => !n.is_empty() && go(rest, &n[1..]),
            Some((c, rest)) => n.first() == Some(c) && go(rest, &n[1..]),
        }
    }
    if name.starts_with('.') && !pattern.starts_with('.') {
        return false;
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    go(&p, &n)
}

#[cfg(test)]
mod nfs_client_tests {
    //! The NFS client model's rules, each as a real two-client forced replay showed it.
    use super::*;

    const T0: i64 = 1_000_000;

    /// Actors 0 and 2 on client A, actor 1 on client B; a lock directory.
    fn two_clients() -> ModelFs {
        let mut fs = ModelFs::new();
        fs.set_nfs(60_000, vec![0, 1, 0]);
        fs.mkdir_all("/l", T0);
        fs
    }

    fn op(fs: &mut ModelFs, actor: usize, op: Op, args: &[Value]) -> Result<Value, Errno> {
        fs.perform(op, args, &OpCtx { now: T0, actor })
            .expect("a well-formed operation")
    }

    fn stat(fs: &mut ModelFs, actor: usize, path: &str) -> Result<(i64, i64), Errno> {
        match op(fs, actor, Op::Stat, &[Value::str(path)])? {
            Value::Stat(s) => Ok((s.nlink, s.mtime)),
            other => panic!("stat gave {other:?}"),
        }
    }

    fn nlink_of(v: Result<Value, Errno>) -> Result<i64, Errno> {
        match v? {
            Value::Stat(s) => Ok(s.nlink),
            other => panic!("fstat gave {other:?}"),
        }
    }

    #[test]
    fn an_unlink_of_a_file_open_on_the_client_is_a_silly_rename_until_its_last_close_there() {
        let mut fs = two_clients();
        let lock = Value::str("/l/lock");
        let fd0 = op(
            &mut fs,
            0,
            Op::Open { creat: true },
            std::slice::from_ref(&lock),
        )
        .unwrap();
        let fd1 = op(
            &mut fs,
            1,
            Op::Open { creat: true },
            std::slice::from_ref(&lock),
        )
        .unwrap();
        let fd2 = op(
            &mut fs,
            2,
            Op::Open { creat: true },
            std::slice::from_ref(&lock),
        )
        .unwrap();
        op(&mut fs, 0, Op::Unlink, std::slice::from_ref(&lock)).unwrap();
        assert!(!fs.exists("/l/lock"));
        let silly: Vec<String> = fs
            .names
            .keys()
            .filter(|p| is_silly_name(p))
            .cloned()
            .collect();
        assert_eq!(silly.len(), 1, "{:?}", fs.names);
        // Every client reads nlink 1: the file still has its .nfs name.
        assert_eq!(
            nlink_of(op(&mut fs, 1, Op::Fstat, std::slice::from_ref(&fd1))),
            Ok(1)
        );
        // Actor 2 on the same client still has it open: the name stays.
        op(&mut fs, 0, Op::CloseFd, &[fd0]).unwrap();
        assert_eq!(
            nlink_of(op(&mut fs, 2, Op::Fstat, std::slice::from_ref(&fd2))),
            Ok(1)
        );
        // The client's last descriptor closes: it removes the .nfs name, and client B's
        // handle is stale.
        op(&mut fs, 2, Op::CloseFd, &[fd2]).unwrap();
        assert!(!fs.exists(&silly[0]));
        assert_eq!(
            nlink_of(op(&mut fs, 1, Op::Fstat, &[fd1])),
            Err(Errno::ESTALE)
        );
    }

    #[test]
    fn the_other_client_keeps_the_link_count_it_fetched() {
        let mut fs = two_clients();
        op(
            &mut fs,
            0,
            Op::Write,
            &[Value::str("/l/tmp"), Value::str("x")],
        )
        .unwrap();
        assert_eq!(stat(&mut fs, 1, "/l/tmp").unwrap().0, 1);
        op(
            &mut fs,
            0,
            Op::Link,
            &[Value::str("/l/tmp"), Value::str("/l/lock")],
        )
        .unwrap();
        assert_eq!(
            stat(&mut fs, 0, "/l/tmp").unwrap().0,
            2,
            "client A saw its reply"
        );
        assert_eq!(stat(&mut fs, 1, "/l/tmp").unwrap().0, 1, "client B's cache");
        // Opening the file revalidates it (close-to-open).
        op(&mut fs, 1, Op::Read, &[Value::str("/l/tmp")]).unwrap();
        assert_eq!(stat(&mut fs, 1, "/l/tmp").unwrap().0, 2);
    }

    #[test]
    fn attributes_are_cached_per_file_not_per_name() {
        let mut fs = two_clients();
        op(
            &mut fs,
            0,
            Op::Write,
            &[Value::str("/l/tmp"), Value::str("x")],
        )
        .unwrap();
        op(
            &mut fs,
            0,
            Op::Link,
            &[Value::str("/l/tmp"), Value::str("/l/lock")],
        )
        .unwrap();
        assert_eq!(stat(&mut fs, 2, "/l/lock").unwrap().1, T0);
        // Actor 0 touches the file through its other name; actor 2 shares client A's cache.
        op(
            &mut fs,
            0,
            Op::Utime,
            &[Value::str("/l/tmp"), Value::Int(T0 + 15_000)],
        )
        .unwrap();
        assert_eq!(stat(&mut fs, 2, "/l/lock").unwrap().1, T0 + 15_000);
    }

    #[test]
    fn a_cached_missing_name_is_enoent_without_asking_the_server() {
        let mut fs = two_clients();
        op(
            &mut fs,
            0,
            Op::Write,
            &[Value::str("/l/a"), Value::str("a")],
        )
        .unwrap();
        op(
            &mut fs,
            0,
            Op::Link,
            &[Value::str("/l/a"), Value::str("/l/lock")],
        )
        .unwrap();
        op(&mut fs, 0, Op::Unlink, &[Value::str("/l/lock")]).unwrap();
        // Client B links a new lock file; client A still has "missing" for the name.
        op(
            &mut fs,
            1,
            Op::Write,
            &[Value::str("/l/b"), Value::str("b")],
        )
        .unwrap();
        op(
            &mut fs,
            1,
            Op::Link,
            &[Value::str("/l/b"), Value::str("/l/lock")],
        )
        .unwrap();
        let lock = || [Value::str("/l/lock"), Value::Int(T0 + 1)];
        assert_eq!(op(&mut fs, 2, Op::Utime, &lock()), Err(Errno::ENOENT));
        assert_eq!(
            op(&mut fs, 2, Op::Read, &[Value::str("/l/lock")]),
            Err(Errno::ENOENT)
        );
        assert_eq!(
            op(&mut fs, 2, Op::Unlink, &[Value::str("/l/lock")]),
            Err(Errno::ENOENT)
        );
        assert!(
            fs.observe_exists("/l/lock"),
            "the server's lock file is untouched"
        );
        // Creating goes to the server whatever the client cached.
        assert_eq!(
            op(
                &mut fs,
                2,
                Op::Link,
                &[Value::str("/l/a"), Value::str("/l/lock")]
            ),
            Err(Errno::EEXIST)
        );
        // ... and the reply refreshed the name: now client A sees B's lock.
        assert_eq!(
            op(&mut fs, 2, Op::Read, &[Value::str("/l/lock")]),
            Ok(Value::str("b"))
        );
    }

    #[test]
    fn a_stat_through_a_name_whose_file_is_gone_looks_the_name_up_again() {
        let mut fs = two_clients();
        op(
            &mut fs,
            0,
            Op::Write,
            &[Value::str("/l/a"), Value::str("a")],
        )
        .unwrap();
        assert_eq!(stat(&mut fs, 1, "/l/a").unwrap().0, 1);
        op(&mut fs, 0, Op::Unlink, &[Value::str("/l/a")]).unwrap();
        // Fresh attributes for a file the server has freed: B answers from its cache.
        assert_eq!(stat(&mut fs, 1, "/l/a").unwrap().0, 1);
        // Once they are stale, GETATTR says ESTALE and the kernel looks the name up: ENOENT.
        let later = OpCtx {
            now: T0 + 60_000,
            actor: 1,
        };
        assert_eq!(
            fs.perform(Op::Stat, &[Value::str("/l/a")], &later).unwrap(),
            Err(Errno::ENOENT)
        );
    }
}

//! The model filesystem: names to inodes, contents, link counts, mtimes, and POSIX errno results.

mod descriptors;
mod glob;
mod nfs;
#[cfg(test)]
mod nfs_tests;
mod server;

pub use glob::{glob_matches, split_glob};

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use super::cow::Cow;
use super::world::{OpCtx, Signals, Sql, World};
use racelab_lang::ir::{Errno, Op, Stat, Value};

#[derive(Debug, Clone, PartialEq, Hash)]
enum Kind {
    /// A file's contents, shared: a clone of the filesystem (every schedule, every successor
    /// state) and a `read` copy no bytes.
    File(Arc<str>),
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
    /// Copy-on-write (as `inodes`): a successor state shares them until it changes a file.
    names: Cow<BTreeMap<Arc<str>, usize>>,
    inodes: Cow<Vec<Option<Inode>>>,
    /// Set for `nfs cache D`: the world as NFS clients see it.
    nfs: Option<NfsClients>,
    /// Per actor, the inode the first half of its `stat` or `write` holds for the second half
    /// (the kernel's reference from the lookup, or the open file). A pinned inode outlives its
    /// last name until the second half lets it go, as an open file does.
    pinned: BTreeMap<usize, usize>,
    /// The actors' open descriptors (`open`) and the flocks taken through them.
    open_files: crate::model::fds::OpenFiles,
}

impl ModelFs {
    /// Copies the parts shared with other states (see `Machine::detach`).
    pub fn detach(&mut self) {
        self.names.detach();
        self.inodes.detach();
    }
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
    /// The last contents of removed files that a client still has a name cached for: what a
    /// read through that name may still return (see `ModelFs::through_client`).
    removed: BTreeMap<usize, Arc<str>>,
    /// The other answers the operation just performed could have given, until the machine
    /// takes them (`World::other_answers`); always empty between steps.
    other_answers: Vec<Result<Value, Errno>>,
    /// Flocks released through a client that the server may not have seen released yet:
    /// `(inode, releasing actor)`. Linux's NFSv3 client sends NLM's UNLOCK without waiting for
    /// the reply (fs/lockd/clntproc.c, `nlmclnt_unlock`), so another open file's LOCK can reach
    /// the server first and be refused. Kept until the releasing actor's next operation or the
    /// inode's next grant.
    unlocks_in_flight: Vec<(usize, usize)>,
    /// The inode whose flock was just granted with EAGAIN as the other answer: if the engine
    /// chooses EAGAIN, the grant is undone (`World::answer_taken`).
    refused_grant: Option<usize>,
    /// A stat past the cache's lifetime looked `path` up again for `client`; if the engine
    /// chooses the stale answer, the client had not, and keeps its old entry (`StaleName`).
    stale_name: Option<StaleName>,
}

/// What a client's cache held for a name before a lookup the engine may undo.
#[derive(Debug, Clone, Hash)]
struct StaleName {
    client: usize,
    path: String,
    entry: (i64, Result<usize, Errno>),
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
    if is_normal(path) {
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

/// Whether `path` is already what [`normalize`] makes of it: absolute, and no component empty
/// (`//`, a trailing `/`), `.` or `..`. One pass over the bytes: every filesystem step asks.
fn is_normal(path: &str) -> bool {
    let b = path.as_bytes();
    if b.first() != Some(&b'/') {
        return false;
    }
    if b.len() == 1 {
        return true;
    }
    b[1..]
        .split(|&c| c == b'/')
        .all(|c| !matches!(c, b"" | b"." | b".."))
}

fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

/// Refuses a path whose `..` would climb above the scenario's root (the lowering checks literal
/// paths with the same function).
pub use racelab_lang::paths::check_confined;

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
    path_arg_ref(args, i, op).map(std::borrow::Cow::into_owned)
}

/// [`path_arg`], borrowing the argument when it is normal already (no allocation on the
/// model's hot path; a normal path has no `..`, so it is confined too).
pub fn path_arg_ref(args: &[Value], i: usize, op: Op) -> Result<std::borrow::Cow<'_, str>, String> {
    match args.get(i) {
        Some(Value::Str(s)) if is_normal(s) => Ok(std::borrow::Cow::Borrowed(&**s)),
        Some(Value::Str(s)) => {
            check_confined(s)?;
            Ok(std::borrow::Cow::Owned(normalize(s)))
        }
        Some(v) => Err(format!(
            "{} expects a path (a string), got a {} ({v})",
            op.name(),
            v.type_name()
        )),
        None => Err(format!("{} is missing an argument", op.name())),
    }
}

/// The name table's key for argument `i`, whose normalised path is `path`: the argument's own
/// string when it was normal already (a new name then costs no allocation).
fn path_key(args: &[Value], i: usize, path: &str) -> Arc<str> {
    match args.get(i) {
        Some(Value::Str(s)) if **s == *path => Arc::clone(s),
        _ => path.into(),
    }
}

/// What `write` stores: the data's string itself, or what it displays as.
fn data_arg(v: Option<&Value>) -> Arc<str> {
    match v {
        Some(Value::Str(s)) => Arc::clone(s),
        Some(v) => v.to_string().into(),
        None => "".into(),
    }
}

impl ModelFs {
    pub fn new() -> ModelFs {
        ModelFs::default()
    }

    /// Creates a directory and its parents (for the scenario's initial `fs { ... }` block).
    pub fn mkdir_all(&mut self, path: &str, now: i64) {
        let path = normalize(path);
        if path == "/" || self.names.contains_key(path.as_str()) {
            return;
        }
        self.mkdir_all(parent(&path), now);
        self.insert(path.into(), Kind::Dir, now);
    }

    /// Creates a file with contents (and its parent directories).
    pub fn put_file(&mut self, path: &str, contents: &str, now: i64) {
        let path = normalize(path);
        self.mkdir_all(parent(&path), now);
        if let Some(ino) = self.names.get(path.as_str()).copied() {
            self.unlink_name(&path, ino);
        }
        self.insert(path.into(), Kind::File(contents.into()), now);
    }

    pub fn exists(&self, path: &str) -> bool {
        let p = normalize(path);
        p == "/" || self.names.contains_key(p.as_str())
    }

    pub fn contents(&self, path: &str) -> Option<&str> {
        match &self.inode(&normalize(path))?.kind {
            Kind::File(s) => Some(&**s),
            Kind::Dir => None,
        }
    }

    fn insert(&mut self, path: Arc<str>, kind: Kind, now: i64) {
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
            if let Some(Inode {
                kind: Kind::File(contents),
                ..
            }) = self.inodes[ino].take()
            {
                self.remember_removed(ino, contents);
            }
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
            .range::<str, _>((Bound::Included(prefix.as_str()), Bound::Unbounded))
            .next()
            .is_some_and(|(k, _)| k.starts_with(&prefix))
    }

    fn open_for_write(
        &mut self,
        path: Arc<str>,
        excl: bool,
        data: Option<Arc<str>>,
        now: i64,
    ) -> Result<Value, Errno> {
        self.check_parent(&path)?;
        if &*path == "/" {
            return Err(Errno::EISDIR);
        }
        match self.names.get(&*path).copied() {
            Some(ino) => {
                if excl {
                    return Err(Errno::EEXIST);
                }
                let node = self.inode_mut(ino);
                if node.kind == Kind::Dir {
                    return Err(Errno::EISDIR);
                }
                node.kind = Kind::File(data.unwrap_or_else(|| "".into()));
                node.mtime = now;
            }
            None => self.insert(path, Kind::File(data.unwrap_or_else(|| "".into())), now),
        }
        Ok(Value::None)
    }

    fn rename(&mut self, from: String, to: String) -> Result<Value, Errno> {
        let src = *self.names.get(from.as_str()).ok_or(Errno::ENOENT)?;
        self.check_parent(&to)?;
        if from == to {
            return Ok(Value::None);
        }
        let src_is_dir = self.inode(&from).is_some_and(|n| n.kind == Kind::Dir);
        if src_is_dir && to.starts_with(&format!("{from}/")) {
            return Err(Errno::EINVAL);
        }
        if let Some(dst) = self.names.get(to.as_str()).copied() {
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
        self.names.remove(from.as_str());
        if src_is_dir {
            let prefix = format!("{from}/");
            let moved: Vec<(Arc<str>, usize)> = self
                .names
                .range::<str, _>((Bound::Included(prefix.as_str()), Bound::Unbounded))
                .take_while(|(k, _)| k.starts_with(&prefix))
                .map(|(k, v)| (k.clone(), *v))
                .collect();
            for (k, v) in moved {
                self.names.remove(&k);
                self.names
                    .insert(format!("{to}/{}", &k[prefix.len()..]).into(), v);
            }
        }
        self.names.insert(to.into(), src);
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

    fn answer_taken(&mut self, index: usize) {
        if let Some(stale) = self.nfs.as_mut().and_then(|nfs| nfs.stale_name.take()) {
            if index != 0 {
                // The kernel answered from its stale entry: it did not look the name up.
                if let Some(nfs) = self.nfs.as_mut() {
                    nfs.caches[stale.client]
                        .names
                        .insert(stale.path, stale.entry);
                }
            }
        }
        let Some(ino) = self.nfs.as_mut().and_then(|nfs| nfs.refused_grant.take()) else {
            return;
        };
        if index == 0 {
            // Granted: the server had seen every release of it.
            if let Some(nfs) = self.nfs.as_mut() {
                nfs.unlocks_in_flight.retain(|(i, _)| *i != ino);
            }
        } else {
            self.open_files.drop_lock(ino);
        }
    }

    fn other_answers(&mut self) -> Vec<Result<Value, Errno>> {
        self.nfs
            .as_mut()
            .map(|nfs| std::mem::take(&mut nfs.other_answers))
            .unwrap_or_default()
    }

    fn perform(
        &mut self,
        op: Op,
        args: &[Value],
        cx: &OpCtx,
    ) -> Result<Result<Value, Errno>, String> {
        if let Some(nfs) = self.nfs.as_mut() {
            if nfs.unlocks_in_flight.iter().any(|(_, r)| *r == cx.actor) {
                // The releasing process made another call: its UNLOCK has been answered.
                nfs.unlocks_in_flight.retain(|(_, r)| *r != cx.actor);
            }
        }
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

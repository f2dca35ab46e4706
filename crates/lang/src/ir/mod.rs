//! The IR: one variant of a scenario, resolved and flattened into per-procedure instruction lists.
//!
//! Every world operation is its own [`Instr::Op`], so an actor's state between steps is just a
//! stack of frames (procedure, program counter, registers). That makes the interpreter a step
//! function every engine can drive: shuttle and loom from threads, replay from a plain loop.

use std::sync::Arc;

pub mod sql;
mod value;

pub use sql::DatabaseIr;
pub use value::{format_duration, Errno, Stat, Value};

pub type Reg = u32;
pub type ProcId = u32;
pub type Pc = u32;

/// A world operation: exactly one step and one scheduling point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `create(path)` or `create(path, excl)`: open with O_CREAT|O_TRUNC (and O_EXCL), then close.
    Create {
        excl: bool,
    },
    /// `write(path, data)`: open for writing (creating, truncating), write everything, close.
    Write,
    /// `read(path)`: the whole contents.
    Read,
    Link,
    Unlink,
    Rename,
    Stat,
    /// `utime(path, t)`: set atime and mtime to `t` (ms since the epoch).
    Utime,
    /// `touch(path)`: set atime and mtime to now.
    Touch,
    Mkdir,
    Rmdir,
    /// `glob(pattern)`: how many names in a directory match a pattern (`*`, `?` in its last
    /// component only), as Python's `glob.glob` lists them: one directory read, never an error.
    Glob,
    /// `now`: read the clock.
    Now,
    /// `sleep d`, or `sleep between(lo, hi)` (two arguments): a duration the engines explore
    /// (see [`Program::explores_durations`]).
    Sleep,
    /// `work d`: a critical section that takes `d` of virtual time (like sleep, but busy);
    /// `work between(lo, hi)` as for sleep.
    Work,
    CellGet(u32),
    CellSet(u32),
    /// `set cell[key] = value`: one entry of a cell's list or map replaced, in one step (as a
    /// Python dict or list item assignment is atomic under the GIL).
    CellPut(u32),
    Append(u32),
    /// `acquire L` (or `acquire read L` / `acquire write L` on an rwlock). When the lock is not
    /// available the step leaves the actor blocked on it; it retries once the lock is released.
    Acquire {
        lock: u32,
        mode: LockMode,
    },
    Release {
        lock: u32,
    },
    /// `sql("...", args)`: one statement on the actor's own database connection. Like a
    /// blocked acquire, a statement that waits for another transaction's lock blocks the actor.
    Sql(u32),
    /// `connect(name)`: a new connection to the named database (`database NAME`); its value is
    /// a handle such as `rw_main_master#1`. Connections outlive the actor that opened them, as
    /// a thread-local Store in a thread that lives on does.
    Connect,
    /// `close(handle)`: closes a connection; closing a closed one does nothing (psycopg2's rule).
    Close,
    /// The first half of `stat(path)` as the kernel makes it: the path lookup, which pins the
    /// inode it found (a real backend opens it with O_PATH). Never written in a scenario: the
    /// machine performs `Stat` as `StatLookup` then `StatAttrs` (see [`Program::split_calls`]).
    StatLookup,
    /// The second half of `stat`: the attributes of the inode the lookup pinned, whatever
    /// happened to its names in between (a real backend: `fstat` on the O_PATH descriptor).
    StatAttrs,
    /// The first half of `write(path, data)`: open with O_CREAT|O_TRUNC. The file is now
    /// empty, and a reader sees it so until the second half.
    WriteOpen,
    /// The second half of `write`: the data written through the descriptor the open gave, then
    /// close (even if the name was unlinked or replaced in between).
    WriteData,
    /// `open(path)` or `open(path, creat)`: open(2) with O_RDWR|O_TRUNC|O_NOFOLLOW (and
    /// O_CREAT), the flags filelock's UnixFileLock uses. The value is a file descriptor (an int,
    /// the lowest free number from 3 in the actor's own table); the descriptor refers to the
    /// inode the name had at the open, whatever happens to the name afterwards.
    Open {
        creat: bool,
    },
    /// `flock(fd)`: flock(2) with LOCK_EX|LOCK_NB, which never blocks: `err(EWOULDBLOCK)` when
    /// another open file holds the inode's lock. `flock(fd, un)`: LOCK_UN. The lock belongs to
    /// the inode through the open file, not to the path.
    Flock {
        unlock: bool,
    },
    /// `fstat(fd)`: the attributes of the descriptor's inode (`st.nlink` is 0 once its last name
    /// is gone).
    Fstat,
    /// `close(fd)`: closes a descriptor, dropping its flock. Written `close(...)` like a
    /// database connection's close; an int argument makes it this.
    CloseFd,
}

/// How a lock is taken: every lock kind supports `Exclusive`; only rwlocks take `Shared`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LockMode {
    Exclusive,
    Shared,
}

/// The kinds of named lock a scenario declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockKind {
    /// `lock L`: a mutex such as `threading.Lock`; acquiring it twice from one actor deadlocks.
    Mutex,
    /// `rlock L`: a reentrant lock such as `threading.RLock` or Python 2's import lock.
    Reentrant,
    /// `rwlock L`: many readers or one writer.
    ReadWrite,
}

impl LockKind {
    pub fn keyword(self) -> &'static str {
        match self {
            LockKind::Mutex => "lock",
            LockKind::Reentrant => "rlock",
            LockKind::ReadWrite => "rwlock",
        }
    }
}

/// Signals a fault can deliver; the default action of each terminates the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Signal {
    Term,
    Int,
    Hup,
    Usr1,
    Usr2,
}

impl Signal {
    pub(crate) const ALL: [Signal; 5] = [
        Signal::Term,
        Signal::Int,
        Signal::Hup,
        Signal::Usr1,
        Signal::Usr2,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Signal::Term => "TERM",
            Signal::Int => "INT",
            Signal::Hup => "HUP",
            Signal::Usr1 => "USR1",
            Signal::Usr2 => "USR2",
        }
    }
    pub fn from_name(s: &str) -> Option<Signal> {
        let s = s.strip_prefix("SIG").unwrap_or(s);
        Signal::ALL.into_iter().find(|x| x.name() == s)
    }
}

/// What a fault does to its target when the explorer lets it land.
#[derive(Debug, Clone, PartialEq)]
pub enum FaultKind {
    /// SIGKILL: the actor stops for good. Its files stay; the locks and the database
    /// connection it held are released, as the kernel and the server do for a dead process.
    Crash,
    /// A signal. With a handler installed (`on TERM call handler(...)`) the handler runs at the
    /// actor's next step boundary, as CPython runs Python-level handlers between bytecodes;
    /// without one the actor dies. `kill_after` is a follow-up SIGKILL that lands that much
    /// later if the actor is still alive (Apache's mod_cgi: SIGTERM, three seconds, SIGKILL).
    Signal {
        signal: Signal,
        kill_after: Option<i64>,
    },
    /// The actor is paused for a duration (a GC pause, SIGSTOP, a slow NFS server): time goes
    /// on for everyone else. The only way a holder outlives its lease under discrete-event time.
    Stall { for_ms: i64 },
    /// NFS: the reply to the actor's next `link` is lost and the client retransmits it; the
    /// server has already made the link, so the retransmission fails with EEXIST although the
    /// link succeeded (NFSv3's non-idempotent LINK: the reason Mailman checks st_nlink == 2).
    /// Model only: a real kernel cannot be told to lose a reply.
    Retransmit,
}

/// A fault the explorer may inject: the choice of *when* is part of the schedule.
#[derive(Debug, Clone)]
pub struct FaultIr {
    pub name: String,
    pub target: usize,
    pub kind: FaultKind,
    /// The declaration, for trace tables.
    pub text: String,
}

/// `param NAME in LOW..=HIGH`: the range, and the value a program was compiled with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamIr {
    pub name: String,
    pub low: i64,
    pub high: i64,
    pub value: i64,
}

impl Op {
    /// True for the operations a filesystem (model or real) performs.
    pub fn is_filesystem(self) -> bool {
        matches!(
            self,
            Op::Create { .. }
                | Op::Write
                | Op::Read
                | Op::Link
                | Op::Unlink
                | Op::Rename
                | Op::Stat
                | Op::Utime
                | Op::Touch
                | Op::Mkdir
                | Op::Rmdir
                | Op::Glob
                | Op::StatLookup
                | Op::StatAttrs
                | Op::WriteOpen
                | Op::WriteData
                | Op::Open { .. }
                | Op::Flock { .. }
                | Op::Fstat
                | Op::CloseFd
        )
    }

    /// True for the operations on file descriptors (their first argument is a descriptor, not a path).
    pub fn is_descriptor(self) -> bool {
        matches!(self, Op::Flock { .. } | Op::Fstat | Op::CloseFd)
    }

    pub fn name(self) -> &'static str {
        match self {
            Op::Create { .. } => "create",
            Op::Write => "write",
            Op::Read => "read",
            Op::Link => "link",
            Op::Unlink => "unlink",
            Op::Rename => "rename",
            Op::Stat => "stat",
            Op::Utime => "utime",
            Op::Touch => "touch",
            Op::Mkdir => "mkdir",
            Op::Rmdir => "rmdir",
            Op::Glob => "glob",
            Op::Now => "now",
            Op::Sleep => "sleep",
            Op::Work => "work",
            Op::CellGet(_) => "get",
            Op::CellSet(_) => "set",
            Op::CellPut(_) => "set-item",
            Op::Append(_) => "append",
            Op::Acquire { .. } => "acquire",
            Op::Release { .. } => "release",
            Op::Sql(_) => "sql",
            Op::Connect => "connect",
            Op::Close => "close",
            Op::StatLookup => "stat-lookup",
            Op::StatAttrs => "stat-attrs",
            Op::WriteOpen => "write-open",
            Op::WriteData => "write-data",
            Op::Open { .. } => "open",
            Op::Flock { unlock: false } => "flock",
            Op::Flock { unlock: true } => "flock-un",
            Op::Fstat => "fstat",
            Op::CloseFd => "close-fd",
        }
    }
}

/// Pure functions, free of steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builtin {
    Len,
    Str,
    /// `int(s)`: a decimal integer read from a string (a counter file's contents); `int(none)` is 0.
    Int,
    Contains,
    Min,
    Max,
    /// `first(rows)`: the first column of the first row, or none when there are no rows.
    First,
    /// `push(list, v)`: a new list with `v` at the end.
    Push,
    /// `put(map, k, v)`: a new map with `k` set to `v`; `put(list, i, v)`: a new list with
    /// element `i` replaced.
    Put,
    /// `rest(list)`: the list without its first element (a queue after its head is taken).
    Rest,
    /// `remove(map, k)`: the map without key `k`; `remove(list, v)`: the list without its
    /// first element equal to `v`. Removing what is not there changes nothing.
    Remove,
    /// Not written in scenarios: what `for` goes over (a list itself, a map's keys in order).
    Items,
}

/// Read-only questions about the world, allowed only in invariants (they are not steps).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Query {
    Holders(u32),
    LogCount(u32),
    LogCountMatching(u32),
    Exists,
    Contents,
    Cell(u32),
    Now,
    /// `count(local, value)`: how many actors' thread-local `local` equals `value`.
    LocalCount(u32),
    /// `sql("SELECT ...")` in an invariant: a query on committed data, taking no locks.
    Sql(u32),
    /// `connections(name)`: how many connections to the named database are open (on a real
    /// server: its own list of sessions, such as PostgreSQL's pg_stat_activity).
    Connections,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    And,
    Or,
    /// `x in c`: an element of a list, a key of a map, a substring of a string.
    In,
}

/// A pure expression over registers and constants.
#[derive(Debug, Clone, PartialEq)]
pub enum PExpr {
    Const(Value),
    Reg(Reg),
    /// The running actor's thread-local variable.
    Local(u32),
    SelfName,
    Neg(Box<PExpr>),
    Not(Box<PExpr>),
    Bin(BinOp, Box<PExpr>, Box<PExpr>),
    Field(Box<PExpr>, StatField),
    Concat(Vec<PExpr>),
    IsOk(Reg),
    IsErrno(Reg, Errno),
    ErrName(Reg),
    Call(Builtin, Vec<PExpr>),
    Query(Query, Vec<PExpr>),
    /// `[a, b]`.
    List(Vec<PExpr>),
    /// `map { k: v }`.
    Map(Vec<(PExpr, PExpr)>),
    /// `c[k]`; `at` is the expression as written and its line, for the error when `k` is out
    /// of range or missing.
    Index {
        coll: Box<PExpr>,
        key: Box<PExpr>,
        at: Arc<str>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatField {
    Nlink,
    Mtime,
    Size,
    Ino,
}

/// Why an actor stops with a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailKind {
    /// `assert` did not hold.
    Assertion,
    /// `fail "..."`: the modelled program raised an error it does not handle.
    Raised,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Instr {
    Eval {
        dst: Reg,
        e: PExpr,
    },
    /// A world operation. When `catch` is false, an error result stops the actor as an
    /// unhandled error (what Python's `raise` does); `match` sets `catch`.
    Op {
        dst: Option<Reg>,
        op: Op,
        args: Vec<PExpr>,
        catch: bool,
        label: u32,
    },
    Jump(Pc),
    JumpIfNot(PExpr, Pc),
    Call {
        proc: ProcId,
        args: Vec<PExpr>,
        dst: Option<Reg>,
    },
    Return(Option<PExpr>),
    Enter(u32),
    Leave(u32),
    Fail {
        kind: FailKind,
        msg: PExpr,
        label: u32,
    },
    /// A `match` on an error no arm handles: the actor stops with the error unhandled.
    Unhandled {
        reg: Reg,
        label: u32,
    },
    /// An assignment to a thread-local variable (not a step: no other actor can see it).
    SetLocal {
        local: u32,
        e: PExpr,
    },
    /// `on SIG call handler(args)`: installs a signal handler, its arguments bound now (as
    /// Mailman binds `mlist` through a default argument). `proc: None` restores the default.
    Handle {
        signal: Signal,
        proc: Option<ProcId>,
        args: Vec<PExpr>,
    },
    /// `exit`: the actor ends normally (Python's `sys.exit(0)`), from any depth; the `finally`
    /// blocks it leaves run first.
    Exit,
    /// `try`: from here, a failure, an unhandled error or `exit` runs the `finally` block at
    /// this pc (in this frame) before going on.
    TryEnter(Pc),
    /// The end of a `try` body (or a `break`/`continue`/`return` out of it): its `finally`
    /// block no longer catches; the code that follows runs it inline.
    TryLeave,
    /// The end of a `finally` block: if it ran because of a failure or `exit`, that goes on
    /// (to the next enclosing `finally`, or ends the actor); otherwise the next instruction.
    EndFinally,
}

#[derive(Debug, Clone)]
pub struct Proc {
    pub name: String,
    pub nparams: u32,
    pub nregs: u32,
    pub code: Vec<Instr>,
}

/// One running actor: an instance of an `actor` definition (`qrunner x 3` gives three).
#[derive(Debug, Clone)]
pub struct ActorIr {
    /// `qrunner1`, `qrunner2`, … (or the bare name when the count is 1).
    pub name: Arc<str>,
    pub proc: ProcId,
    /// The NFS client (mount) the actor works through: an index into [`Program::clients`].
    pub client: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    Always,
    AtEnd,
}

#[derive(Debug, Clone)]
pub struct InvariantIr {
    pub name: String,
    pub when: When,
    pub cond: PExpr,
    /// The condition as written, for reports.
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    Violates(Vec<String>),
    Deadlock,
    Holds,
}

#[derive(Debug, Clone)]
pub enum FsInit {
    Dir(String),
    File(String, String),
}

/// Where an operation sits in the source, for trace tables.
#[derive(Debug, Clone)]
pub struct Label {
    pub text: String,
    pub line: u32,
    /// The imported library the operation is written in (`line` is that file's); `None` for
    /// the scenario file itself.
    pub file: Option<String>,
}

/// One variant of a scenario, ready to run.
#[derive(Debug, Clone)]
pub struct Program {
    pub scenario: String,
    pub variant: String,
    pub procs: Vec<Proc>,
    pub actors: Vec<ActorIr>,
    pub cells: Vec<(String, Value)>,
    pub logs: Vec<String>,
    pub sections: Vec<String>,
    /// Thread-local variables: a name and the initial value every actor starts with.
    pub locals: Vec<(String, Value)>,
    pub locks: Vec<(String, LockKind)>,
    pub faults: Vec<FaultIr>,
    /// How many faults may land in one execution.
    pub fault_budget: usize,
    pub database: Option<DatabaseIr>,
    /// `param NAME in LOW..=HIGH`, with the value this program was compiled with.
    pub params: Vec<ParamIr>,
    /// Every SQL statement of the scenario, parsed once; `Op::Sql` and `Query::Sql` index it.
    pub sql: Vec<Arc<sql::Prepared>>,
    /// The clients (mounts of one export) actors work through, `A` first; one unless the
    /// scenario says `actor NAME on B`.
    pub clients: Vec<String>,
    /// `nfs cache D`: the model filesystem behaves as seen through NFS clients whose attribute
    /// cache holds what they fetched for `D` of virtual time. None: a local POSIX filesystem.
    pub nfs_cache_ms: Option<i64>,
    /// `gate "COMMAND"`: the real program every actor runs under `--backend gate`.
    pub gate: Option<String>,
    pub fs: Vec<FsInit>,
    pub invariants: Vec<InvariantIr>,
    pub expected: Option<Expected>,
    /// `expect on real ...`: the expectation for real backends where reality differs from the
    /// model (found by running there); `None`: the same as `expected`.
    pub expected_real: Option<Expected>,
    pub labels: Vec<Label>,
    /// Some `sleep` or `work` takes `between(lo, hi)`: its duration is an engine choice, made
    /// by one more choice index (see `Machine::decision_choice`).
    pub explores_durations: bool,
    /// `stat` and `write` are two steps each, as the kernel makes them (lookup then attributes;
    /// open with truncation then write). True unless the filesystem is the NFS model, whose
    /// clients answer `stat` from their attribute cache.
    pub split_calls: bool,
    /// Identifies this scenario text and variant; replay tokens carry it.
    pub fingerprint: u32,
}

impl Program {
    /// Whether an operation may have several allowed answers that the engines choose among:
    /// under the NFS client model with two or more actors, a `read` or `stat` through a name a
    /// client still caches for a file the server has since unnamed (the server's answer, or the
    /// cached file's), an `fstat` of an open file the server no longer names (ESTALE, `nlink` 0,
    /// or the last attributes the client had), and a `flock` while another actor's release of
    /// it may still be on its way to the server (granted, or EAGAIN). Real clients were measured
    /// giving each (crates/core/src/model/fs/nfs.rs and descriptors.rs say where).
    pub fn explores_answers(&self) -> bool {
        self.nfs_cache_ms.is_some() && (self.clients.len() > 1 || self.actors.len() > 1)
    }

    /// Whether the machine has a decision choice (see `Machine::decision_choice`): the engines
    /// choose durations (`between`) or answers ([`Program::explores_answers`]) digit by digit.
    pub fn has_decision_choice(&self) -> bool {
        self.explores_durations || self.explores_answers()
    }
}

/// Names of the oracles every scenario has without declaring them.
pub mod oracle {
    pub const UNHANDLED_ERROR: &str = "unhandled_error";
    pub const ASSERTION: &str = "assertion";
    pub const DEADLOCK: &str = "deadlock";
    pub const LIVELOCK: &str = "livelock";
    /// Two actors took the same locks in opposite orders, with no common lock guarding both:
    /// a deadlock waiting for a less lucky schedule, reported even when this run did not hang.
    pub const LOCK_ORDER: &str = "lock_order";
    pub(crate) const ALL: &[&str] = &[UNHANDLED_ERROR, ASSERTION, DEADLOCK, LIVELOCK, LOCK_ORDER];
}

//! The IR: one variant of a scenario, resolved and flattened into per-procedure instruction lists.
//!
//! Every world operation is its own [`Instr::Op`], so an actor's state between steps is just a
//! stack of frames (procedure, program counter, registers). That makes the interpreter a step
//! function every engine can drive: shuttle and loom from threads, replay from a plain loop.

use std::fmt;
use std::sync::Arc;

/// A run-time value. Times are integers in milliseconds since the Unix epoch; durations are
/// integers in milliseconds, so `now + 15s` and Mailman's `-1` ("the distant past") just work.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    Str(Arc<str>),
    Stat(Stat),
    /// The failure of a world operation, kept in a register by `match` until an arm inspects it.
    Err(Errno),
}

impl Value {
    pub fn str(s: &str) -> Value {
        Value::Str(Arc::from(s))
    }
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::None => "none",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Str(_) => "string",
            Value::Stat(_) => "stat",
            Value::Err(_) => "error",
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::None => f.write_str("none"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(n) => write!(f, "{n}"),
            Value::Str(s) => f.write_str(s),
            Value::Stat(s) => write!(f, "{{nlink {}, mtime {}, size {}, ino {}}}", s.nlink, s.mtime, s.size, s.ino),
            Value::Err(e) => f.write_str(e.name()),
        }
    }
}

/// The fields of `stat()` a scenario can read: `st.nlink`, `st.mtime`, `st.size`, `st.ino`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Stat {
    pub nlink: i64,
    pub mtime: i64,
    pub size: i64,
    pub ino: i64,
}

macro_rules! errnos {
    ($($name:ident = $code:expr),* $(,)?) => {
        /// The errno values a world operation can fail with (Linux numbering).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[allow(clippy::upper_case_acronyms)]
        pub enum Errno { $($name),* }
        impl Errno {
            pub const ALL: &'static [Errno] = &[$(Errno::$name),*];
            pub fn name(self) -> &'static str { match self { $(Errno::$name => stringify!($name)),* } }
            pub fn code(self) -> i32 { match self { $(Errno::$name => $code),* } }
            pub fn from_name(s: &str) -> Option<Errno> { match s { $(stringify!($name) => Some(Errno::$name),)* _ => None } }
            pub fn from_code(c: i32) -> Option<Errno> { match c { $($code => Some(Errno::$name),)* _ => None } }
        }
    };
}

errnos! {
    EPERM = 1, ENOENT = 2, EINTR = 4, EIO = 5, EBADF = 9, EAGAIN = 11, EACCES = 13, EBUSY = 16,
    EEXIST = 17, EXDEV = 18, ENOTDIR = 20, EISDIR = 21, EINVAL = 22, ENOSPC = 28, EROFS = 30,
    EMLINK = 31, ENAMETOOLONG = 36, ENOTEMPTY = 39, ELOOP = 40, ESTALE = 116,
}

pub type Reg = u32;
pub type ProcId = u32;
pub type Pc = u32;

/// A world operation: exactly one step and one scheduling point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `create(path)` or `create(path, excl)`: open with O_CREAT|O_TRUNC (and O_EXCL), then close.
    Create { excl: bool },
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
    /// `now`: read the clock.
    Now,
    Sleep,
    /// `work d`: a critical section that takes `d` of virtual time (like sleep, but busy).
    Work,
    CellGet(u32),
    CellSet(u32),
    Append(u32),
}

impl Op {
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
            Op::Now => "now",
            Op::Sleep => "sleep",
            Op::Work => "work",
            Op::CellGet(_) => "get",
            Op::CellSet(_) => "set",
            Op::Append(_) => "append",
        }
    }
}

/// Pure functions, free of steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builtin {
    Len,
    Str,
    Contains,
    Min,
    Max,
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
}

/// A pure expression over registers and constants.
#[derive(Debug, Clone, PartialEq)]
pub enum PExpr {
    Const(Value),
    Reg(Reg),
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
    Eval { dst: Reg, e: PExpr },
    /// A world operation. When `catch` is false, an error result stops the actor as an
    /// unhandled error (what Python's `raise` does); `match` sets `catch`.
    Op { dst: Option<Reg>, op: Op, args: Vec<PExpr>, catch: bool, label: u32 },
    Jump(Pc),
    JumpIfNot(PExpr, Pc),
    Call { proc: ProcId, args: Vec<PExpr>, dst: Option<Reg> },
    Return(Option<PExpr>),
    Enter(u32),
    Leave(u32),
    Fail { kind: FailKind, msg: PExpr, label: u32 },
    /// A `match` on an error no arm handles: the actor stops with the error unhandled.
    Unhandled { reg: Reg, label: u32 },
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
    pub fs: Vec<FsInit>,
    pub invariants: Vec<InvariantIr>,
    pub expected: Option<Expected>,
    pub labels: Vec<Label>,
    /// Identifies this scenario text and variant; replay tokens carry it.
    pub fingerprint: u32,
}

/// Names of the oracles every scenario has without declaring them.
pub mod oracle {
    pub const UNHANDLED_ERROR: &str = "unhandled_error";
    pub const ASSERTION: &str = "assertion";
    pub const DEADLOCK: &str = "deadlock";
    pub const LIVELOCK: &str = "livelock";
    pub const ALL: &[&str] = &[UNHANDLED_ERROR, ASSERTION, DEADLOCK, LIVELOCK];
}

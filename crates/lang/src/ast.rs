//! The syntax tree of a scenario file, as written (names unresolved, variants not yet applied).

use super::span::Span;

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Ident {
    pub name: String,
    pub span: Span,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Scenario {
    pub name: Option<Ident>,
    pub about: Option<(String, Span)>,
    pub sources: Vec<(String, Span)>,
    pub items: Vec<Item>,
    pub variants: Vec<Variant>,
    /// Expectations written at the top level apply to the implicit `default` variant.
    pub expects: Vec<Expect>,
    /// The file nests deeper than the parser allows: the tree is cut short, and only the
    /// parser's diagnostic is worth reporting.
    pub too_deep: bool,
    /// An `import` line did not parse: what it should have brought is missing.
    pub broken_import: bool,
    /// `library NAME { ... }`: declarations for scenarios to import, not a scenario.
    pub library: bool,
    /// The `scenario` or `library` keyword that opens the file.
    pub header: Span,
}

#[derive(Debug, Clone)]
pub(crate) enum Item {
    Const {
        name: Ident,
        value: Expr,
    },
    Fs {
        entries: Vec<FsEntry>,
    },
    Cell {
        name: Ident,
        init: Expr,
    },
    Log {
        name: Ident,
    },
    Proc(Proc),
    Actor(Actor),
    Invariant(Invariant),
    /// `local NAME = value`: a thread-local variable; every actor has its own copy.
    Local {
        name: Ident,
        init: Expr,
    },
    /// `lock NAME`, `rlock NAME`, `rwlock NAME`.
    Lock {
        name: Ident,
        kind: crate::ir::LockKind,
    },
    Fault(Fault),
    /// `faults N`: how many faults may land in one execution.
    FaultBudget {
        n: i64,
        span: Span,
    },
    /// `nfs cache 3s`: model the filesystem as seen through caching NFS clients.
    Nfs {
        cache: Expr,
        span: Span,
    },
    /// `database [innodb|postgres] { "CREATE TABLE ..." "INSERT ..." }`.
    Database {
        flavour: Option<Ident>,
        statements: Vec<(String, Span)>,
        span: Span,
    },
    /// `param NAME in LOW..=HIGH`: a constant whose value each exploration draws from the range.
    Param {
        name: Ident,
        low: Expr,
        high: Expr,
        span: Span,
    },
    /// `database NAME`: another database on the same server, with no tables, that actors open
    /// connections to with `connect("NAME")` (Launchpad's read-write master and its replica).
    NamedDatabase {
        name: Ident,
    },
    /// `gate "python3 $SCENARIO_DIR/drivers/x.py $ROOT"`: the real program each actor runs
    /// under racelab's gate (`--backend gate`); `gate none` in a variant that has no real twin.
    Gate {
        command: Option<String>,
        span: Span,
    },
    /// `import "lib/x.race"` or `import "lib/x.race" { lock, unlock }`: a library's
    /// declarations (all of them, or the named ones and what they use), path relative to the
    /// importing file.
    Import(Import),
}

#[derive(Debug, Clone)]
pub(crate) struct Import {
    pub path: String,
    pub path_span: Span,
    /// The names in `{ ... }`; `None` imports every declaration.
    pub names: Option<Vec<Ident>>,
    /// From `import` to the end of the path or of the name list.
    pub span: Span,
}

/// `fault NAME: crash ACTOR`, `fault NAME: stall ACTOR for 30s`,
/// `fault NAME: signal ACTOR TERM [then kill after 3s]`.
#[derive(Debug, Clone)]
pub(crate) struct Fault {
    pub name: Ident,
    pub target: Ident,
    pub kind: FaultSpec,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub(crate) enum FaultSpec {
    Crash,
    Stall(Expr),
    Signal {
        signal: Ident,
        kill_after: Option<Expr>,
    },
    /// `retransmit ACTOR link`.
    Retransmit {
        op: Ident,
    },
}

#[derive(Debug, Clone)]
pub(crate) enum FsEntry {
    Dir { path: Expr },
    File { path: Expr, contents: Expr },
}

#[derive(Debug, Clone)]
pub(crate) struct Proc {
    pub name: Ident,
    pub params: Vec<Ident>,
    pub body: Block,
}

#[derive(Debug, Clone)]
pub(crate) struct Actor {
    pub name: Ident,
    pub count: Option<(i64, Span)>,
    /// `on B`: the NFS client (mount) the actor works through.
    pub client: Option<Ident>,
    pub body: Block,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum When {
    /// Checked after every step.
    Always,
    /// Checked once, when every actor has finished.
    AtEnd,
}

#[derive(Debug, Clone)]
pub(crate) struct Invariant {
    pub name: Ident,
    pub when: When,
    pub cond: Expr,
}

#[derive(Debug, Clone)]
pub(crate) struct Variant {
    pub name: Ident,
    /// `variant NAME extends PARENT`: the variant starts from PARENT's replacements and
    /// expectations.
    pub parent: Option<Ident>,
    /// Constants and procedures that replace the base scenario's of the same name.
    pub items: Vec<Item>,
    pub expects: Vec<Expect>,
}

#[derive(Debug, Clone)]
pub(crate) enum ExpectKind {
    Violates(Vec<Ident>),
    Deadlock,
    Holds,
}

#[derive(Debug, Clone)]
pub(crate) struct Expect {
    pub kind: ExpectKind,
    pub span: Span,
    /// `expect on real ...`: what real systems show, where they differ from the model.
    pub real: bool,
}

pub(crate) type Block = Vec<Stmt>;

#[derive(Debug, Clone)]
pub(crate) struct Stmt {
    pub kind: StmtKind,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub(crate) enum StmtKind {
    Let(Ident, Expr),
    Assign(Ident, Expr),
    /// `set cell = value`: a write to a shared cell (one step).
    Set(Ident, Expr),
    If(Expr, Block, Option<Block>),
    Loop(Block),
    While(Expr, Block),
    Break,
    Continue,
    Return(Option<Expr>),
    Match(Expr, Vec<Arm>),
    Sleep(Expr),
    Work(Expr),
    Append(Ident, Expr),
    Critical(Ident, Block),
    Assert(Expr, Option<Expr>),
    Fail(Expr),
    Expr(Expr),
    /// `acquire L`, `acquire read L`, `acquire write L`.
    Acquire {
        lock: Ident,
        mode: Option<Ident>,
    },
    Release(Ident),
    /// `with L { ... }`: acquire, the body, release (also on break, continue and return).
    With {
        lock: Ident,
        mode: Option<Ident>,
        body: Block,
    },
    /// `on TERM call handler(args)` installs a handler; `on TERM default` removes it.
    On {
        signal: Ident,
        handler: Option<(Ident, Vec<Expr>)>,
    },
    /// `exit`: the actor ends here, from any depth (Python's `sys.exit(0)`).
    Exit,
    /// `unlink(p) ignore ENOENT, EEXIST`: the operation, with those errors expected and
    /// dropped (`match op { ok => {} err(ENOENT) => {} ... }`); any other error is unhandled.
    /// `try { ... } finally { ... }`: the finally block runs however the body is left,
    /// except by a crash (Python's semantics).
    Try {
        body: Block,
        finally: Block,
    },
    Ignore {
        op: Expr,
        errnos: Vec<Ident>,
        /// The `ignore` keyword.
        keyword: Span,
    },
    /// `for x in list { ... }` or `for k in map { ... }` (the keys, in order).
    For {
        var: Ident,
        iter: Expr,
        body: Block,
    },
    /// `name[key] = value`: a variable (or thread-local) gets a copy with one entry replaced.
    AssignAt {
        name: Ident,
        key: Expr,
        value: Expr,
    },
    /// `set cell[key] = value`: one entry of a cell's list or map replaced, in one step.
    SetAt {
        cell: Ident,
        key: Expr,
        value: Expr,
    },
}

#[derive(Debug, Clone)]
pub(crate) struct Arm {
    pub pat: Pattern,
    pub body: Block,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub(crate) enum Pattern {
    /// `ok` or `ok(name)` or `ok(_)`.
    Ok(Option<Ident>),
    /// `err`, `err(EEXIST)` or `err(e)` (a lowercase name binds the errno's name as a string).
    Err(Option<Ident>),
    Lit(Expr),
    Wildcard,
}

#[derive(Debug, Clone)]
pub(crate) struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinOp {
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
    /// `x in c`: membership in a list, map (its keys) or string.
    In,
    /// `x not in c`.
    NotIn,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UnOp {
    Neg,
    Not,
}

#[derive(Debug, Clone)]
pub(crate) enum StrPart {
    Lit(String),
    Expr(Expr),
}

#[derive(Debug, Clone)]
pub(crate) enum ExprKind {
    Int(i64),
    Duration(i64),
    Str(Vec<StrPart>),
    Bool(bool),
    None,
    Name(Ident),
    /// A bare errno name used as a value (`EEXIST`).
    Unary(UnOp, Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    Call(Ident, Vec<Expr>),
    Field(Box<Expr>, Ident),
    /// `[a, b]`.
    List(Vec<Expr>),
    /// `map { k: v, ... }`.
    Map(Vec<(Expr, Expr)>),
    /// `c[k]`.
    Index(Box<Expr>, Box<Expr>),
}

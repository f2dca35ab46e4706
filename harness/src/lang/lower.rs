//! Name resolution and lowering: one variant of the syntax tree to the flat [`Program`] IR.
//!
//! Expressions that contain world operations or procedure calls are flattened: each such call
//! becomes its own instruction writing a temporary register, in evaluation order (left to right),
//! so that every world operation is exactly one step.

mod collections;

use std::collections::HashMap;
use std::sync::Arc;

use super::ast::{self, Expr, ExprKind, Ident, Item, Pattern, Stmt, StmtKind, StrPart};
use super::diag::{Diag, Span};
use crate::eval::{self, Env};
use crate::ir::*;
use crate::model::db;

const FS_OPS: &[(&str, usize)] = &[
    ("create", 1),
    ("write", 2),
    ("read", 1),
    ("link", 2),
    ("unlink", 1),
    ("rename", 2),
    ("stat", 1),
    ("utime", 2),
    ("touch", 1),
    ("mkdir", 1),
    ("rmdir", 1),
    ("glob", 1),
    ("open", 1),
    ("flock", 1),
    ("fstat", 1),
];
const PURE_BUILTINS: &[(&str, Builtin, usize)] = &[
    ("len", Builtin::Len, 1),
    ("str", Builtin::Str, 1),
    ("int", Builtin::Int, 1),
    ("contains", Builtin::Contains, 2),
    ("min", Builtin::Min, 2),
    ("max", Builtin::Max, 2),
    ("first", Builtin::First, 1),
    ("push", Builtin::Push, 2),
    ("put", Builtin::Put, 3),
    ("rest", Builtin::Rest, 1),
    ("remove", Builtin::Remove, 2),
];
const QUERIES: &[&str] = &["holders", "count", "exists", "connections"];

/// Whether a call of `name` is an operation, so that no procedure may take the name.
fn is_operation(name: &str) -> bool {
    FS_OPS.iter().any(|(n, _)| *n == name) || matches!(name, "sql" | "connect" | "close")
}

/// The items of one variant: the base scenario's, with the variant's replacements applied.
pub struct VariantInput<'a> {
    pub scenario: &'a str,
    pub variant: &'a str,
    pub items: Vec<&'a Item>,
    pub expected: Option<Expected>,
    pub fingerprint: u32,
    /// Values for `param` declarations (the rest take their range's low end).
    pub params: &'a std::collections::BTreeMap<String, i64>,
}

/// Lowers one variant; `sources` holds the scenario and its libraries, which every span of
/// `input` points into.
pub fn lower(
    sources: &super::sources::SourceMap,
    input: VariantInput<'_>,
    diags: &mut Vec<Diag>,
) -> Program {
    let mut cx = Cx {
        src: sources.text(),
        sources,
        diags,
        consts: HashMap::new(),
        cells: HashMap::new(),
        logs: HashMap::new(),
        sections: HashMap::new(),
        section_names: vec![],
        procs: HashMap::new(),
        labels: vec![],
        in_const: false,
        locals: HashMap::new(),
        locks: HashMap::new(),
        has_database: false,
        db_flavour: None,
        named_databases: vec![],
        sql: vec![],
        explores_durations: false,
    };
    let mut prog = Program {
        scenario: input.scenario.to_string(),
        variant: input.variant.to_string(),
        procs: vec![],
        actors: vec![],
        cells: vec![],
        logs: vec![],
        sections: vec![],
        locals: vec![],
        locks: vec![],
        faults: vec![],
        fault_budget: 1,
        database: None,
        params: vec![],
        sql: vec![],
        clients: vec!["A".to_string()],
        nfs_cache_ms: None,
        gate: None,
        fs: vec![],
        invariants: vec![],
        expected: input.expected,
        expected_real: None,
        labels: vec![],
        explores_durations: false,
        split_calls: true,
        fingerprint: input.fingerprint,
    };

    // Declarations first, so that procedures and actors may refer to anything in any order.
    let mut proc_defs: Vec<&ast::Proc> = vec![];
    let mut actor_defs: Vec<&ast::Actor> = vec![];
    let mut fault_defs: Vec<&ast::Fault> = vec![];
    let mut named_databases: Vec<Ident> = vec![];
    // `database NAME` may come before or after the scenario's own `database { ... }` block.
    for item in &input.items {
        if let Item::NamedDatabase { name } = item {
            cx.named_databases.push(name.name.clone());
        }
    }
    // Parameters first: constants and everything else may use them.
    for item in &input.items {
        if let Item::Param {
            name,
            low,
            high,
            span,
        } = item
        {
            let (lo, hi) = (cx.const_value(low), cx.const_value(high));
            let (Value::Int(lo), Value::Int(hi)) = (lo, hi) else {
                cx.err(
                    *span,
                    "a parameter ranges over integers or durations",
                    "not a range of numbers",
                    "write `param waiters in 2..=5` or `param lifetime in 1s..=20s`",
                );
                continue;
            };
            if lo > hi {
                cx.err(
                    *span,
                    format!("the range {lo}..={hi} is empty"),
                    "empty range",
                    "write the low end first",
                );
                continue;
            }
            let value = input.params.get(&name.name).copied().unwrap_or(lo);
            if !(lo..=hi).contains(&value) {
                cx.err(name.span, format!("parameter `{}` = {value} is outside its range {lo}..={hi}", name.name), "out of range", "a replay token's parameters must fit the scenario's ranges; explore again for a fresh token");
            }
            if cx
                .consts
                .insert(name.name.clone(), Value::Int(value))
                .is_some()
                || prog.params.iter().any(|p| p.name == name.name)
            {
                cx.dup(name, "parameter");
            }
            prog.params.push(ParamIr {
                name: name.name.clone(),
                low: lo,
                high: hi,
                value,
            });
        }
    }
    for item in &input.items {
        match item {
            Item::Local { name, init } => {
                let v = cx.const_value(init);
                let id = prog.locals.len() as u32;
                if cx.locals.insert(name.name.clone(), id).is_some() {
                    cx.dup(name, "thread-local");
                }
                prog.locals.push((name.name.clone(), v));
            }
            Item::Lock { name, kind } => {
                let id = prog.locks.len() as u32;
                if cx.locks.insert(name.name.clone(), (id, *kind)).is_some() {
                    cx.dup(name, "lock");
                }
                prog.locks.push((name.name.clone(), *kind));
            }
            Item::Param { .. } => {}
            Item::NamedDatabase { name } => {
                if named_databases.iter().any(|n: &Ident| n.name == name.name) {
                    cx.dup(name, "database");
                }
                named_databases.push(name.clone());
            }
            Item::Database {
                flavour,
                statements,
                span,
            } => {
                if cx.has_database {
                    cx.err(*span, "a second `database`", "declared again here", "a scenario has one database; put every table in the same `database { ... }` block");
                }
                cx.has_database = true;
                prog.database = cx.database(flavour.as_ref(), statements);
            }
            Item::Fault(f) => fault_defs.push(f),
            Item::Gate { command, .. } => prog.gate = command.clone(),
            Item::Nfs { cache, span } => match cx.const_value(cache) {
                Value::Int(ms) if ms >= 0 => prog.nfs_cache_ms = Some(ms),
                v => cx.err(
                    *span,
                    format!("expected a duration, found {v}"),
                    "not a duration",
                    "write `nfs cache 3s` (Linux's acregmin is 3 s)",
                ),
            },
            Item::FaultBudget { n, span } => {
                if !(0..=8).contains(n) {
                    cx.err(*span, format!("a fault budget must be between 0 and 8, not {n}"), "out of range", "one or two faults per execution find most bugs; each one multiplies the schedules");
                } else {
                    prog.fault_budget = *n as usize;
                }
            }
            Item::Const { name, value } => {
                let v = cx.const_value(value);
                if cx.consts.insert(name.name.clone(), v).is_some() {
                    cx.dup(name, "constant");
                }
            }
            Item::Cell { name, init } => {
                let v = cx.const_value(init);
                let id = prog.cells.len() as u32;
                if cx.cells.insert(name.name.clone(), id).is_some() {
                    cx.dup(name, "cell");
                }
                prog.cells.push((name.name.clone(), v));
            }
            Item::Log { name } => {
                let id = prog.logs.len() as u32;
                if cx.logs.insert(name.name.clone(), id).is_some() {
                    cx.dup(name, "log");
                }
                prog.logs.push(name.name.clone());
            }
            Item::Fs { entries, .. } => {
                for e in entries {
                    match e {
                        ast::FsEntry::Dir { path } => {
                            if let Some(p) = cx.const_path(path) {
                                prog.fs.push(FsInit::Dir(p));
                            }
                        }
                        ast::FsEntry::File { path, contents } => {
                            let c = cx.const_value(contents);
                            if let Some(p) = cx.const_path(path) {
                                prog.fs.push(FsInit::File(p, c.to_string()));
                            }
                        }
                    }
                }
            }
            Item::Proc(p) => {
                if is_operation(&p.name.name) {
                    cx.err(
                        p.name.span,
                        format!("a procedure cannot be named `{}`: that is an operation", p.name.name),
                        "the name of an operation",
                        format!("calls of `{}` would run the operation, not this procedure; rename it (e.g. `{}_`)", p.name.name, p.name.name),
                    );
                }
                let id = proc_defs.len() as u32;
                if cx
                    .procs
                    .insert(p.name.name.clone(), (id, p.params.len()))
                    .is_some()
                {
                    cx.dup(&p.name, "procedure");
                }
                proc_defs.push(p);
            }
            Item::Actor(a) => actor_defs.push(a),
            Item::Invariant(_) => {}
            // Replaced by the library's declarations before lowering (imports.rs).
            Item::Import(_) => {}
        }
    }

    for p in &proc_defs {
        let params: Vec<&Ident> = p.params.iter().collect();
        let lowered = cx.lower_proc(&p.name.name, &params, &p.body);
        prog.procs.push(lowered);
    }
    let mut actor_names: HashMap<String, Span> = HashMap::new();
    for a in &actor_defs {
        if actor_names
            .insert(a.name.name.clone(), a.name.span)
            .is_some()
        {
            cx.dup(&a.name, "actor");
        }
        let id = prog.procs.len() as u32;
        prog.procs.push(cx.lower_proc(&a.name.name, &[], &a.body));
        let count = match a.count {
            None => 1,
            Some((n, span)) if !(1..=64).contains(&n) => {
                cx.diags.push(
                    Diag::new(
                        span,
                        format!("an actor count must be between 1 and 64, not {n}"),
                        "out of range",
                    )
                    .help("explore with a few actors: races need two or three, not hundreds"),
                );
                1
            }
            Some((n, _)) => n as usize,
        };
        let client = match &a.client {
            None => 0,
            Some(c) => match prog.clients.iter().position(|x| *x == c.name) {
                Some(i) => i as u32,
                None => {
                    prog.clients.push(c.name.clone());
                    prog.clients.len() as u32 - 1
                }
            },
        };
        for i in 1..=count {
            let name = if count == 1 {
                a.name.name.clone()
            } else {
                format!("{}{}", a.name.name, i)
            };
            prog.actors.push(ActorIr {
                name: Arc::from(name.as_str()),
                proc: id,
                client,
            });
        }
    }
    for f in &fault_defs {
        if let Some(fault) = cx.fault(f, &prog) {
            if prog.faults.iter().any(|x| x.name == fault.name) {
                cx.dup(&f.name, "fault");
            }
            prog.faults.push(fault);
        }
    }
    if actor_defs.is_empty() {
        cx.diags.push(
            Diag::new(
                Span::new(0, 0),
                "the scenario has no actors",
                "nothing would run",
            )
            .help("declare at least one actor: `actor worker x 2 { ... }`"),
        );
    }

    for item in &input.items {
        if let Item::Invariant(inv) = item {
            if prog.invariants.iter().any(|i| i.name == inv.name.name)
                || oracle::ALL.contains(&inv.name.name.as_str())
            {
                cx.dup(&inv.name, "invariant");
            }
            let cond = cx.lower_pure(&inv.cond);
            prog.invariants.push(InvariantIr {
                name: inv.name.name.clone(),
                when: match inv.when {
                    ast::When::Always => When::Always,
                    ast::When::AtEnd => When::AtEnd,
                },
                cond,
                text: sources.text()[inv.cond.span.start..inv.cond.span.end].to_string(),
            });
        }
    }
    if !named_databases.is_empty() {
        // Named databases live on the scenario's server: without a `database { ... }` block,
        // that server's own database is an empty one under PostgreSQL's rules.
        let db = prog.database.get_or_insert_with(|| DatabaseIr {
            flavour: db::Flavour::Postgres,
            initial: db::Db::new(db::Flavour::Postgres, &[]).expect("an empty database sets up"),
            setup_text: vec![],
            names: vec![],
        });
        db.names = named_databases.iter().map(|n| n.name.clone()).collect();
    }
    prog.sections = cx.section_names.clone();
    prog.labels = std::mem::take(&mut cx.labels);
    prog.sql = std::mem::take(&mut cx.sql);
    prog.explores_durations = cx.explores_durations;
    prog.split_calls = prog.nfs_cache_ms.is_none();
    prog
}

struct Cx<'a> {
    src: &'a str,
    sources: &'a super::sources::SourceMap,
    diags: &'a mut Vec<Diag>,
    consts: HashMap<String, Value>,
    cells: HashMap<String, u32>,
    logs: HashMap<String, u32>,
    sections: HashMap<String, u32>,
    section_names: Vec<String>,
    procs: HashMap<String, (ProcId, usize)>,
    labels: Vec<Label>,
    /// Set while a constant or initial value is lowered: queries are not constants.
    in_const: bool,
    locals: HashMap<String, u32>,
    locks: HashMap<String, (u32, LockKind)>,
    has_database: bool,
    /// The flavour of the scenario's database, once its block is lowered: SQL is checked
    /// against what that server accepts (isolation levels, SET TRANSACTION spellings).
    db_flavour: Option<db::Flavour>,
    /// `database NAME` declarations, for `connect` and `connections`.
    named_databases: Vec<String>,
    /// Every SQL statement, prepared once (`Op::Sql` and `Query::Sql` index this).
    sql: Vec<Arc<db::Prepared>>,
    /// Some `sleep` or `work` takes `between(lo, hi)`.
    explores_durations: bool,
}

/// How many `finally` blocks a `try` may be nested in (each level doubles the code).
const MAX_TRY_IN_FINALLY: u32 = 4;

/// The function being lowered.
struct Fx {
    code: Vec<Instr>,
    scopes: Vec<Vec<(String, Reg)>>,
    nregs: u32,
    loops: Vec<LoopCx>,
    /// Sections entered and `with` locks taken and not yet left, innermost last: `break`,
    /// `continue` and `return` leave them on the way out.
    open_sections: Vec<Open>,
    /// The `finally` blocks of the open `try`s (indexed by `Open::Try`), with how many scopes
    /// were open at the `try`: a copy of the block sees only the names declared before it.
    finallies: Vec<(ast::Block, usize)>,
    /// Inside a `finally` block: `break`, `continue` and `return` may not leave it.
    in_finally: u32,
}

#[derive(Debug, Clone, Copy)]
enum Open {
    Section(u32),
    /// A `with` lock, and the label of its implicit release.
    Lock(u32, u32),
    /// A `try` whose `finally` block is `Fx::finallies[i]`.
    Try(usize),
}

struct LoopCx {
    start: Pc,
    breaks: Vec<usize>,
    sections_at_entry: usize,
}

struct NoEnv;
impl Env for NoEnv {
    fn reg(&self, _: Reg) -> Value {
        Value::None
    }
    fn self_name(&self) -> Option<&str> {
        None
    }
    fn query(&self, _: Query, _: &[Value]) -> Result<Value, String> {
        Err("not a constant".into())
    }
}

impl Fx {
    fn reg(&mut self) -> Reg {
        self.nregs += 1;
        self.nregs - 1
    }
    fn pc(&self) -> Pc {
        self.code.len() as Pc
    }
    fn emit(&mut self, i: Instr) -> usize {
        self.code.push(i);
        self.code.len() - 1
    }
    fn patch(&mut self, at: usize, target: Pc) {
        match &mut self.code[at] {
            Instr::Jump(t) | Instr::JumpIfNot(_, t) | Instr::TryEnter(t) => *t = target,
            _ => unreachable!("only jumps are patched"),
        }
    }
    fn lookup(&self, name: &str) -> Option<Reg> {
        self.scopes
            .iter()
            .rev()
            .flat_map(|s| s.iter().rev())
            .find(|(n, _)| n == name)
            .map(|(_, r)| *r)
    }
    fn bind(&mut self, name: &str, r: Reg) {
        if let Some(s) = self.scopes.last_mut() {
            s.push((name.to_string(), r));
        }
    }
}

impl<'a> Cx<'a> {
    fn err(
        &mut self,
        span: Span,
        msg: impl Into<String>,
        label: impl Into<String>,
        help: impl Into<String>,
    ) {
        self.diags.push(Diag::new(span, msg, label).help(help));
    }

    fn dup(&mut self, name: &Ident, what: &str) {
        let n = name.name.clone();
        self.err(
            name.span,
            format!("{what} `{n}` is declared twice"),
            "declared again here",
            format!("rename one of the two; names of {what}s must be unique"),
        );
    }

    fn label(&mut self, span: Span) -> u32 {
        let text = self
            .src
            .get(span.start..span.end)
            .unwrap_or("")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let line = self.line_of(span.start);
        let file = self.library_of(span.start);
        self.labels.push(Label { text, line, file });
        self.labels.len() as u32 - 1
    }

    /// The line of `offset` in its own file (the scenario's, or an imported library's).
    fn line_of(&self, offset: usize) -> u32 {
        self.sources.line_of(offset).1
    }

    /// The library `offset` is in, `None` in the scenario file itself.
    fn library_of(&self, offset: usize) -> Option<String> {
        let (file, _) = self.sources.line_of(offset);
        (file > 0).then(|| self.sources.files()[file].name.clone())
    }

    fn const_value(&mut self, e: &Expr) -> Value {
        self.in_const = true;
        let p = self.lower_pure(e);
        self.in_const = false;
        match eval::eval(&p, &NoEnv) {
            Ok(v) => v,
            Err(msg) => {
                self.err(
                    e.span,
                    format!("not a constant value: {msg}"),
                    "must be known before the run",
                    "constants and initial values may use literals, other constants and arithmetic",
                );
                Value::None
            }
        }
    }

    fn const_path(&mut self, e: &Expr) -> Option<String> {
        match self.const_value(e) {
            Value::Str(s) if s.starts_with('/') => match crate::model::fs::check_confined(&s) {
                Ok(()) => Some(s.to_string()),
                Err(msg) => {
                    self.err(
                        e.span,
                        msg,
                        "leaves the scenario's root",
                        "initial files live under the scenario's `/`",
                    );
                    None
                }
            },
            Value::None => None,
            v => {
                self.err(
                    e.span,
                    format!("expected an absolute path, found {v}"),
                    "not an absolute path",
                    "paths are strings starting with `/`; they are relative to the scenario's root",
                );
                None
            }
        }
    }

    /// Prepares the setup statements and runs them on a fresh model database.
    fn database(
        &mut self,
        flavour: Option<&Ident>,
        statements: &[(String, Span)],
    ) -> Option<DatabaseIr> {
        let flavour = match flavour.map(|f| f.name.as_str()) {
            None | Some("postgres") | Some("postgresql") => db::Flavour::Postgres,
            Some("innodb") | Some("mysql") | Some("mariadb") => db::Flavour::InnoDb,
            Some("sqlite") => db::Flavour::Sqlite,
            Some(other) => {
                let span = flavour.map(|f| f.span).unwrap_or_default();
                self.err(span, format!("unknown database flavour `{other}`"), "not a flavour", "write `database { ... }` (PostgreSQL rules, READ COMMITTED by default), `database innodb { ... }` (MySQL/MariaDB InnoDB rules, REPEATABLE READ by default) or `database sqlite { ... }` (SQLite in WAL mode: one writer at a time)");
                return None;
            }
        };
        self.db_flavour = Some(flavour);
        let mut setup = Vec::new();
        for (text, span) in statements {
            match db::prepare(text) {
                Ok(p) => setup.push(p),
                Err(msg) => self.err(*span, format!("bad SQL: {msg}"), "this statement", "the database model supports CREATE TABLE, INSERT, SELECT, UPDATE, DELETE, BEGIN, COMMIT and ROLLBACK"),
            }
        }
        if setup.len() != statements.len() {
            return None;
        }
        match db::Db::new(flavour, &setup) {
            Ok(initial) => Some(DatabaseIr {
                flavour,
                initial,
                setup_text: statements.iter().map(|(t, _)| t.clone()).collect(),
                names: vec![],
            }),
            Err(msg) => {
                let span = statements.first().map(|s| s.1).unwrap_or_default();
                self.err(
                    span,
                    format!("the database setup failed: {msg}"),
                    "in these statements",
                    "check the CREATE TABLE and INSERT statements",
                );
                None
            }
        }
    }

    /// A constant database name given to `connect` or `connections` must be declared.
    fn check_database_name(&mut self, span: Span, v: &Value) {
        let known = match v {
            Value::Str(s) => self.named_databases.iter().any(|n| **n == **s),
            Value::None => return,
            _ => false,
        };
        if !known {
            let names = self
                .named_databases
                .iter()
                .map(|n| format!("\"{n}\""))
                .collect::<Vec<_>>()
                .join(", ");
            self.err(
                span,
                format!("no database is named {v}"),
                "unknown database",
                format!("declared databases: {names}; declare others with `database NAME`"),
            );
        }
    }

    /// Prepares the SQL text of a `sql(...)` call, which must be a constant string.
    fn prepare_sql(&mut self, e: &Expr) -> Option<(u32, usize)> {
        if !self.has_database {
            self.err(
                e.span,
                "`sql` needs a database",
                "no database declared",
                "declare the tables first: `database { \"CREATE TABLE t (...)\" }`",
            );
            return None;
        }
        let text = match self.const_value(e) {
            Value::Str(s) => s,
            Value::None => return None,
            v => {
                self.err(
                    e.span,
                    format!("the SQL text must be a string, not {v}"),
                    "not SQL text",
                    "write `sql(\"SELECT id FROM person WHERE email = ?\", email)`",
                );
                return None;
            }
        };
        let checked =
            db::prepare(&text).and_then(|p| match self.db_flavour.map(|f| p.check_flavour(f)) {
                Some(Err(why)) => Err(why),
                _ => Ok(p),
            });
        match checked {
            Ok(p) => {
                let params = p.params();
                self.sql.push(p);
                Some((self.sql.len() as u32 - 1, params))
            }
            Err(msg) => {
                self.err(
                    e.span,
                    format!("bad SQL: {msg}"),
                    "this statement",
                    "pass values as `?` parameters: `sql(\"... WHERE email = ?\", email)`",
                );
                None
            }
        }
    }

    fn fault(&mut self, f: &ast::Fault, prog: &Program) -> Option<FaultIr> {
        let Some(target) = prog.actors.iter().position(|a| *a.name == f.target.name) else {
            let names: Vec<&str> = prog.actors.iter().map(|a| &*a.name).collect();
            let help = match closest(&f.target.name, names.iter().copied()) {
                Some(c) => format!("did you mean `{c}`? actors: {}", names.join(", ")),
                None => format!("a fault hits one actor instance: {}", names.join(", ")),
            };
            self.err(
                f.target.span,
                format!("no actor is named `{}`", f.target.name),
                "unknown actor",
                help,
            );
            return None;
        };
        let duration = |cx: &mut Self, e: &Expr| match cx.const_value(e) {
            Value::Int(ms) if ms >= 0 => Some(ms),
            v => {
                cx.err(
                    e.span,
                    format!("expected a duration, found {v}"),
                    "not a duration",
                    "write a duration such as `3s` or `500ms`",
                );
                None
            }
        };
        let kind = match &f.kind {
            ast::FaultSpec::Crash => FaultKind::Crash,
            ast::FaultSpec::Retransmit { op } => {
                if op.name != "link" {
                    self.err(op.span, format!("only `link` replies can be lost and retransmitted, not `{}`", op.name), "not modelled", "NFSv3 LINK is the non-idempotent call Mailman's nlink check guards against: write `retransmit ACTOR link`");
                    return None;
                }
                FaultKind::Retransmit
            }
            ast::FaultSpec::Stall(d) => FaultKind::Stall {
                for_ms: duration(self, d)?,
            },
            ast::FaultSpec::Signal { signal, kill_after } => {
                let sig = self.signal(signal)?;
                let kill_after = match kill_after {
                    Some(d) => Some(duration(self, d)?),
                    None => None,
                };
                FaultKind::Signal {
                    signal: sig,
                    kill_after,
                }
            }
        };
        let text = self.src[f.span.start..f.span.end]
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        Some(FaultIr {
            name: f.name.name.clone(),
            target,
            kind,
            text,
        })
    }

    fn signal(&mut self, id: &Ident) -> Option<Signal> {
        let s = Signal::from_name(&id.name);
        if s.is_none() {
            let known: Vec<&str> = Signal::ALL.iter().map(|s| s.name()).collect();
            self.err(
                id.span,
                format!("unknown signal `{}`", id.name),
                "not a signal",
                format!("signals: {}", known.join(", ")),
            );
        }
        s
    }

    fn lock_id(&mut self, id: &Ident, mode: Option<&Ident>) -> Option<(u32, LockMode)> {
        let Some(&(lock, kind)) = self.locks.get(&id.name) else {
            let names: Vec<String> = self.locks.keys().cloned().collect();
            let help = match closest(&id.name, names.iter().map(String::as_str)) {
                Some(c) => format!("did you mean `{c}`?"),
                None => format!(
                    "declare it at the top level: `lock {}`, `rlock {}` or `rwlock {}`",
                    id.name, id.name, id.name
                ),
            };
            self.err(
                id.span,
                format!("unknown lock `{}`", id.name),
                "not a lock",
                help,
            );
            return None;
        };
        let mode = match (mode.map(|m| m.name.as_str()), kind) {
            (None, _) => LockMode::Exclusive,
            (Some("write"), LockKind::ReadWrite) => LockMode::Exclusive,
            (Some("read"), LockKind::ReadWrite) => LockMode::Shared,
            (Some(m), _) => {
                let span = mode.map(|m| m.span).unwrap_or(id.span);
                self.err(
                    span,
                    format!("`{m}` mode on {} `{}`", kind.keyword(), id.name),
                    "only rwlocks have modes",
                    format!(
                        "write `acquire {}`; declare `rwlock {}` for readers and writers",
                        id.name, id.name
                    ),
                );
                return None;
            }
        };
        Some((lock, mode))
    }

    fn section_id(&mut self, name: &str) -> u32 {
        if let Some(id) = self.sections.get(name) {
            return *id;
        }
        let id = self.section_names.len() as u32;
        self.sections.insert(name.to_string(), id);
        self.section_names.push(name.to_string());
        id
    }

    fn lower_proc(&mut self, name: &str, params: &[&Ident], body: &[Stmt]) -> Proc {
        let mut fx = Fx {
            code: vec![],
            scopes: vec![vec![]],
            nregs: 0,
            loops: vec![],
            open_sections: vec![],
            finallies: vec![],
            in_finally: 0,
        };
        for p in params {
            let r = fx.reg();
            fx.bind(&p.name, r);
        }
        self.block(&mut fx, body);
        fx.emit(Instr::Return(None));
        Proc {
            name: name.to_string(),
            nparams: params.len() as u32,
            nregs: fx.nregs,
            code: fx.code,
        }
    }

    fn block(&mut self, fx: &mut Fx, stmts: &[Stmt]) {
        fx.scopes.push(vec![]);
        for s in stmts {
            self.stmt(fx, s);
        }
        fx.scopes.pop();
    }

    /// Leaves what `break`, `continue` or `return` jumps out of, innermost first: sections,
    /// `with` locks, and `try`s, whose `finally` blocks run inline here.
    fn leave_sections(&mut self, fx: &mut Fx, down_to: usize) {
        let leaving: Vec<Open> = fx.open_sections[down_to..].iter().rev().copied().collect();
        for open in leaving {
            match open {
                Open::Section(s) => {
                    fx.emit(Instr::Leave(s));
                }
                Open::Lock(lock, label) => {
                    fx.emit(Instr::Op {
                        dst: None,
                        op: Op::Release { lock },
                        args: vec![],
                        catch: false,
                        label,
                    });
                }
                Open::Try(i) => {
                    fx.emit(Instr::TryLeave);
                    let (block, scopes) = fx.finallies[i].clone();
                    self.finally_block(fx, &block, scopes);
                }
            }
        }
    }

    /// `try { body } finally { fin }`: the body under a `TryEnter`; then `fin` inline for the
    /// normal way out; then the copy a failure or `exit` jumps to, ending in `EndFinally`.
    fn try_stmt(&mut self, fx: &mut Fx, span: Span, body: &[Stmt], fin: &ast::Block) {
        // Every `finally` block is lowered at least twice, so one nested in another's is
        // four times, and so on: the nesting is bounded to keep the code small.
        if fx.in_finally >= MAX_TRY_IN_FINALLY {
            self.err(
                Span::new(span.start, span.start + 3),
                format!("`try` nested inside {MAX_TRY_IN_FINALLY} `finally` blocks"),
                "too deep",
                "each finally block is compiled once per way out of its try; move the inner cleanup into a procedure called from the finally block",
            );
            return;
        }
        let enter = fx.emit(Instr::TryEnter(0));
        let scopes = fx.scopes.len();
        fx.finallies.push((fin.clone(), scopes));
        fx.open_sections.push(Open::Try(fx.finallies.len() - 1));
        self.block(fx, body);
        fx.open_sections.pop();
        fx.emit(Instr::TryLeave);
        self.finally_block(fx, fin, scopes);
        let end = fx.emit(Instr::Jump(0));
        let handler = fx.pc();
        fx.patch(enter, handler);
        self.finally_block(fx, fin, scopes);
        fx.emit(Instr::EndFinally);
        let after = fx.pc();
        fx.patch(end, after);
    }

    /// One copy of a `finally` block, seeing the first `scopes` scopes only, with no loop to
    /// `break` out of.
    fn finally_block(&mut self, fx: &mut Fx, fin: &ast::Block, scopes: usize) {
        let hidden = fx.scopes.split_off(scopes.min(fx.scopes.len()));
        let loops = std::mem::take(&mut fx.loops);
        fx.in_finally += 1;
        self.block(fx, fin);
        fx.in_finally -= 1;
        fx.loops = loops;
        fx.scopes.extend(hidden);
    }

    fn stmt(&mut self, fx: &mut Fx, s: &Stmt) {
        match &s.kind {
            StmtKind::Let(name, e) => {
                let v = self.expr(fx, e);
                let r = fx.reg();
                fx.emit(Instr::Eval { dst: r, e: v });
                fx.bind(&name.name, r);
            }
            StmtKind::Assign(name, e) => {
                let v = self.expr(fx, e);
                match fx.lookup(&name.name) {
                    Some(r) => {
                        fx.emit(Instr::Eval { dst: r, e: v });
                    }
                    None if self.locals.contains_key(&name.name) => {
                        let local = self.locals[&name.name];
                        fx.emit(Instr::SetLocal { local, e: v });
                    }
                    None if self.cells.contains_key(&name.name) => self.err(name.span, format!("`{}` is a shared cell", name.name), "a cell", format!("write a cell with `set {} = ...`; that is a step", name.name)),
                    None => self.err(name.span, format!("assignment to undeclared variable `{}`", name.name), "not declared", format!("declare it first: `let {} = ...`", name.name)),
                }
            }
            StmtKind::Set(name, e) => {
                let v = self.expr(fx, e);
                match self.cells.get(&name.name) {
                    Some(&id) => {
                        let label = self.label(s.span);
                        fx.emit(Instr::Op { dst: None, op: Op::CellSet(id), args: vec![v], catch: false, label });
                    }
                    None => self.err(name.span, format!("unknown cell `{}`", name.name), "not a cell", "declare it at the top level: `cell NAME = initial value`"),
                }
            }
            StmtKind::If(cond, then, els) => {
                let c = self.expr(fx, cond);
                let jif = fx.emit(Instr::JumpIfNot(c, 0));
                self.block(fx, then);
                if let Some(els) = els {
                    let jend = fx.emit(Instr::Jump(0));
                    let pc = fx.pc();
                    fx.patch(jif, pc);
                    self.block(fx, els);
                    let pc = fx.pc();
                    fx.patch(jend, pc);
                } else {
                    let pc = fx.pc();
                    fx.patch(jif, pc);
                }
            }
            StmtKind::Loop(body) => {
                let start = fx.pc();
                fx.loops.push(LoopCx { start, breaks: vec![], sections_at_entry: fx.open_sections.len() });
                self.block(fx, body);
                fx.emit(Instr::Jump(start));
                self.close_loop(fx);
            }
            StmtKind::While(cond, body) => {
                let start = fx.pc();
                let c = self.expr(fx, cond);
                let jif = fx.emit(Instr::JumpIfNot(c, 0));
                fx.loops.push(LoopCx { start, breaks: vec![jif], sections_at_entry: fx.open_sections.len() });
                self.block(fx, body);
                fx.emit(Instr::Jump(start));
                self.close_loop(fx);
            }
            StmtKind::Break | StmtKind::Continue => {
                let is_break = matches!(s.kind, StmtKind::Break);
                let kw = if is_break { "break" } else { "continue" };
                if fx.in_finally > 0 && fx.loops.is_empty() {
                    self.err(s.span, format!("`{kw}` cannot leave a `finally` block"), "leaves the finally block", "a `finally` block runs to its end (it may be running because of a failure that must go on); put the loop inside it, or move the `break` out of it");
                    return;
                }
                let Some(l) = fx.loops.last() else {
                    self.err(s.span, format!("`{kw}` outside of a loop"), "not in a loop", "`break` and `continue` belong inside `loop { ... }` or `while COND { ... }`");
                    return;
                };
                let (start, depth) = (l.start, l.sections_at_entry);
                self.leave_sections(fx, depth);
                if is_break {
                    let j = fx.emit(Instr::Jump(0));
                    if let Some(l) = fx.loops.last_mut() {
                        l.breaks.push(j);
                    }
                } else {
                    fx.emit(Instr::Jump(start));
                }
            }
            StmtKind::Return(e) => {
                if fx.in_finally > 0 {
                    self.err(s.span, "`return` cannot leave a `finally` block", "leaves the finally block", "a `finally` block runs to its end (it may be running because of a failure that must go on); return after the `try`");
                    return;
                }
                let v = e.as_ref().map(|e| self.expr(fx, e));
                self.leave_sections(fx, 0);
                fx.emit(Instr::Return(v));
            }
            StmtKind::Match(scrutinee, arms) => self.match_stmt(fx, scrutinee, arms),
            StmtKind::Sleep(e) | StmtKind::Work(e) => {
                let op = if matches!(s.kind, StmtKind::Sleep(_)) { Op::Sleep } else { Op::Work };
                // `sleep between(lo, hi)`: two arguments, and the engines choose the duration.
                let args = match &e.kind {
                    ExprKind::Call(name, bounds) if name.name == "between" => {
                        if bounds.len() != 2 {
                            self.err(e.span, "`between` takes two durations", "not two arguments", "write `sleep between(10ms, 2010ms)`: the shortest and the longest duration");
                            return;
                        }
                        self.explores_durations = true;
                        vec![self.expr(fx, &bounds[0]), self.expr(fx, &bounds[1])]
                    }
                    _ => vec![self.expr(fx, e)],
                };
                let label = self.label(s.span);
                fx.emit(Instr::Op { dst: None, op, args, catch: false, label });
            }
            StmtKind::Append(log, e) => {
                let v = self.expr(fx, e);
                match self.logs.get(&log.name) {
                    Some(&id) => {
                        let label = self.label(s.span);
                        fx.emit(Instr::Op { dst: None, op: Op::Append(id), args: vec![v], catch: false, label });
                    }
                    None => self.err(log.span, format!("unknown log `{}`", log.name), "not a log", "declare it at the top level: `log NAME`"),
                }
            }
            StmtKind::Critical(name, body) => {
                let id = self.section_id(&name.name);
                fx.emit(Instr::Enter(id));
                fx.open_sections.push(Open::Section(id));
                self.block(fx, body);
                fx.open_sections.pop();
                fx.emit(Instr::Leave(id));
            }
            StmtKind::Assert(cond, msg) => {
                let c = self.expr(fx, cond);
                let text = self.src[cond.span.start..cond.span.end].to_string();
                let msg = match msg {
                    Some(m) => self.expr(fx, m),
                    None => PExpr::Const(Value::str(&format!("assertion failed: {text}"))),
                };
                let j = fx.emit(Instr::JumpIfNot(PExpr::Not(Box::new(c)), 0));
                let label = self.label(s.span);
                fx.emit(Instr::Fail { kind: FailKind::Assertion, msg, label });
                let pc = fx.pc();
                fx.patch(j, pc);
            }
            StmtKind::Fail(e) => {
                let msg = self.expr(fx, e);
                let label = self.label(s.span);
                fx.emit(Instr::Fail { kind: FailKind::Raised, msg, label });
            }
            StmtKind::Acquire { lock, mode } => {
                if let Some((lock, mode)) = self.lock_id(lock, mode.as_ref()) {
                    let label = self.label(s.span);
                    fx.emit(Instr::Op { dst: None, op: Op::Acquire { lock, mode }, args: vec![], catch: false, label });
                }
            }
            StmtKind::Release(lock) => {
                if let Some((lock, _)) = self.lock_id(lock, None) {
                    let label = self.label(s.span);
                    fx.emit(Instr::Op { dst: None, op: Op::Release { lock }, args: vec![], catch: false, label });
                }
            }
            StmtKind::With { lock: name, mode, body } => {
                let Some((lock, lmode)) = self.lock_id(name, mode.as_ref()) else { return };
                let head = Span::new(s.span.start, name.span.end);
                let label = self.label(head);
                fx.emit(Instr::Op { dst: None, op: Op::Acquire { lock, mode: lmode }, args: vec![], catch: false, label });
                let release = self.labels.len() as u32;
                self.labels.push(Label { text: format!("release {} (end of with)", name.name), line: self.line_of(s.span.end.saturating_sub(1)), file: self.library_of(s.span.start) });
                fx.open_sections.push(Open::Lock(lock, release));
                self.block(fx, body);
                fx.open_sections.pop();
                fx.emit(Instr::Op { dst: None, op: Op::Release { lock }, args: vec![], catch: false, label: release });
            }
            StmtKind::On { signal, handler } => {
                let Some(sig) = self.signal(signal) else { return };
                match handler {
                    None => {
                        fx.emit(Instr::Handle { signal: sig, proc: None, args: vec![] });
                    }
                    Some((name, args)) => match self.procs.get(&name.name).copied() {
                        Some((id, arity)) if arity == args.len() => {
                            let vals = args.iter().map(|a| self.expr(fx, a)).collect();
                            fx.emit(Instr::Handle { signal: sig, proc: Some(id), args: vals });
                        }
                        Some((_, arity)) => self.err(name.span, format!("handler `{}` takes {arity} arguments, not {}", name.name, args.len()), "wrong number of arguments", "the arguments are bound when the handler is installed"),
                        None => self.err(name.span, format!("unknown procedure `{}`", name.name), "not a procedure", "a handler is a procedure: `proc handler(args) { ... }`"),
                    },
                }
            }
            StmtKind::Exit => {
                fx.emit(Instr::Exit);
            }
            StmtKind::Ignore { op, errnos, keyword } => self.ignore_stmt(fx, op, errnos, *keyword),
            StmtKind::Try { body, finally } => self.try_stmt(fx, s.span, body, finally),
            StmtKind::For { var, iter, body } => self.for_stmt(fx, var, iter, body),
            StmtKind::AssignAt { name, key, value } => self.assign_at(fx, name, key, value),
            StmtKind::SetAt { cell, key, value } => self.set_at(fx, s, cell, key, value),
            StmtKind::Expr(e) => match &e.kind {
                ExprKind::Call(..) => {
                    self.call(fx, e, false, false);
                }
                ExprKind::Name(n) if n.name == "now" => {
                    self.expr(fx, e);
                }
                _ => self.err(e.span, "this expression does nothing", "value is computed and dropped", "a statement is a call, an operation, or a `let`/`set`; bind the value with `let` to use it"),
            },
        }
    }

    fn close_loop(&mut self, fx: &mut Fx) {
        let l = fx.loops.pop().expect("a loop is open");
        let end = fx.pc();
        for b in l.breaks {
            fx.patch(b, end);
        }
    }

    /// `op ignore E1, E2`: exactly `match op { ok => {} err(E1) => {} err(E2) => {} }`.
    fn ignore_stmt(&mut self, fx: &mut Fx, op: &Expr, errnos: &[Ident], keyword: Span) {
        if !is_fallible_op(op) {
            self.err(
                op.span.to(keyword),
                "`ignore` follows an operation that can fail",
                "not an operation",
                "write it after a call such as `unlink(path) ignore ENOENT` or `sql(\"...\") ignore IntegrityError`",
            );
            return;
        }
        let mut arms = vec![ast::Arm {
            pat: Pattern::Ok(None),
            body: vec![],
            span: keyword,
        }];
        for e in errnos {
            if Errno::from_name(&e.name).is_none() {
                self.unknown_errno(e);
                continue;
            }
            arms.push(ast::Arm {
                pat: Pattern::Err(Some(e.clone())),
                body: vec![],
                span: e.span,
            });
        }
        self.match_stmt(fx, op, &arms);
    }

    fn unknown_errno(&mut self, id: &Ident) {
        let known: Vec<_> = Errno::ALL.iter().map(|e| e.name()).collect();
        let help = match closest(&id.name, known.iter().copied()) {
            Some(best) => format!("did you mean `{best}`? known errnos: {}", known.join(", ")),
            None => format!("known errnos: {}", known.join(", ")),
        };
        self.err(
            id.span,
            format!("unknown errno `{}`", id.name),
            "not an errno",
            help,
        );
    }

    fn match_stmt(&mut self, fx: &mut Fx, scrutinee: &Expr, arms: &[ast::Arm]) {
        let is_op = is_fallible_op(scrutinee);
        let r = if is_op {
            match self.call(fx, scrutinee, true, true) {
                Some(PExpr::Reg(r)) => r,
                _ => return,
            }
        } else {
            let v = self.expr(fx, scrutinee);
            let r = fx.reg();
            fx.emit(Instr::Eval { dst: r, e: v });
            r
        };
        let mut ends = vec![];
        let mut catch_all = false;
        let mut handles_err = false;
        for arm in arms {
            fx.scopes.push(vec![]);
            let test = match &arm.pat {
                Pattern::Wildcard(_) => {
                    catch_all = true;
                    None
                }
                Pattern::Ok(bind) => {
                    if !is_op {
                        self.err(arm.span, "`ok` matches the result of an operation", "not an operation result", "match `ok(x)`/`err(ENOENT)` on calls like `stat(path)`; match plain values with literals");
                    }
                    if let Some(b) = bind.as_ref().filter(|b| b.name != "_") {
                        fx.bind(&b.name, r);
                    }
                    Some(PExpr::IsOk(r))
                }
                Pattern::Err(inner) => {
                    if !is_op {
                        self.err(
                            arm.span,
                            "`err` matches the result of an operation",
                            "not an operation result",
                            "match `ok(x)`/`err(ENOENT)` on calls like `stat(path)`",
                        );
                    }
                    match inner {
                        None => {
                            handles_err = true;
                            Some(PExpr::Not(Box::new(PExpr::IsOk(r))))
                        }
                        Some(id)
                            if id
                                .name
                                .chars()
                                .next()
                                .is_some_and(|c| c.is_ascii_uppercase()) =>
                        {
                            match Errno::from_name(&id.name) {
                                Some(e) => Some(PExpr::IsErrno(r, e)),
                                None => {
                                    self.unknown_errno(id);
                                    None
                                }
                            }
                        }
                        Some(id) => {
                            handles_err = true;
                            let b = fx.reg();
                            fx.emit(Instr::Eval {
                                dst: b,
                                e: PExpr::ErrName(r),
                            });
                            fx.bind(&id.name, b);
                            Some(PExpr::Not(Box::new(PExpr::IsOk(r))))
                        }
                    }
                }
                Pattern::Lit(e) => {
                    let v = self.expr(fx, e);
                    Some(PExpr::Bin(BinOp::Eq, Box::new(PExpr::Reg(r)), Box::new(v)))
                }
            };
            let jnext = test.map(|t| fx.emit(Instr::JumpIfNot(t, 0)));
            self.block(fx, &arm.body);
            ends.push(fx.emit(Instr::Jump(0)));
            if let Some(j) = jnext {
                let pc = fx.pc();
                fx.patch(j, pc);
            }
            fx.scopes.pop();
        }
        if is_op && !catch_all && !handles_err {
            let label = self.label(scrutinee.span);
            fx.emit(Instr::Unhandled { reg: r, label });
        }
        let end = fx.pc();
        for j in ends {
            fx.patch(j, end);
        }
    }

    /// Lowers a call (world operation, procedure or pure builtin) and returns its value.
    fn call(&mut self, fx: &mut Fx, e: &Expr, catch: bool, want_value: bool) -> Option<PExpr> {
        let ExprKind::Call(name, args) = &e.kind else {
            unreachable!("call() is given calls")
        };
        if name.name == "between" {
            self.err(
                e.span,
                "`between(lo, hi)` is a duration the engines choose, not a value",
                "only a duration of `sleep` or `work`",
                "write `sleep between(10ms, 2010ms)` or `work between(1s, 3s)`",
            );
            return None;
        }
        if name.name == "sql" {
            let Some(text) = args.first() else {
                self.err(
                    e.span,
                    "`sql` takes the statement and its parameters",
                    "no statement",
                    "write `sql(\"SELECT id FROM person WHERE email = ?\", email)`",
                );
                return None;
            };
            let (id, params) = self.prepare_sql(text)?;
            if args.len() - 1 != params {
                self.err(
                    e.span,
                    format!(
                        "the statement has {params} parameter{} but {} value{} given",
                        if params == 1 { "" } else { "s" },
                        args.len() - 1,
                        if args.len() == 2 { " is" } else { "s are" }
                    ),
                    "wrong number of values",
                    "pass one value per `?` in the statement, in order",
                );
                return None;
            }
            let vals: Vec<PExpr> = args[1..].iter().map(|a| self.expr(fx, a)).collect();
            let dst = fx.reg();
            let label = self.label(e.span);
            fx.emit(Instr::Op {
                dst: Some(dst),
                op: Op::Sql(id),
                args: vals,
                catch,
                label,
            });
            return Some(PExpr::Reg(dst));
        }
        if name.name == "close" && self.named_databases.is_empty() {
            // No database to close: `close(fd)` closes a descriptor `open` returned.
            if args.len() != 1 {
                self.err(
                    e.span,
                    format!("`close` takes 1 argument, not {}", args.len()),
                    "wrong number of arguments",
                    "write `close(fd)`",
                );
                return None;
            }
            let arg = self.expr(fx, &args[0]);
            let dst = fx.reg();
            let label = self.label(e.span);
            fx.emit(Instr::Op {
                dst: Some(dst),
                op: Op::CloseFd,
                args: vec![arg],
                catch,
                label,
            });
            return Some(PExpr::Reg(dst));
        }
        if name.name == "connect" || name.name == "close" {
            let op = if name.name == "connect" {
                Op::Connect
            } else {
                Op::Close
            };
            if self.named_databases.is_empty() {
                self.err(
                    name.span,
                    format!("`{}` needs a database to connect to", name.name),
                    "no `database NAME` declared",
                    "declare the server's databases first: `database rw_main_master`",
                );
                return None;
            }
            if args.len() != 1 {
                let sig = if op == Op::Connect {
                    "connect(database)"
                } else {
                    "close(connection)"
                };
                self.err(
                    e.span,
                    format!("`{}` takes 1 argument, not {}", name.name, args.len()),
                    "wrong number of arguments",
                    format!("write `{sig}`"),
                );
                return None;
            }
            let arg = self.expr(fx, &args[0]);
            if let (Op::Connect, PExpr::Const(v)) = (op, &arg) {
                self.check_database_name(args[0].span, v);
            }
            let dst = fx.reg();
            let label = self.label(e.span);
            fx.emit(Instr::Op {
                dst: Some(dst),
                op,
                args: vec![arg],
                catch,
                label,
            });
            return Some(PExpr::Reg(dst));
        }
        if let Some(&(_, arity)) = FS_OPS.iter().find(|(n, _)| *n == name.name) {
            let mut op = match name.name.as_str() {
                "create" => Op::Create { excl: false },
                "write" => Op::Write,
                "read" => Op::Read,
                "link" => Op::Link,
                "unlink" => Op::Unlink,
                "rename" => Op::Rename,
                "stat" => Op::Stat,
                "utime" => Op::Utime,
                "touch" => Op::Touch,
                "mkdir" => Op::Mkdir,
                "open" => Op::Open { creat: false },
                "flock" => Op::Flock { unlock: false },
                "fstat" => Op::Fstat,
                "glob" => Op::Glob,
                _ => Op::Rmdir,
            };
            let mut args: &[Expr] = args;
            // A flag as a bare word in second place: `open(path, creat)`, `flock(fd, un)`.
            let flag = match op {
                Op::Open { .. } => Some(("creat", Op::Open { creat: true })),
                Op::Flock { .. } => Some(("un", Op::Flock { unlock: true })),
                _ => None,
            };
            if let (Some((word, flagged)), 2) = (flag, args.len()) {
                if matches!(&args[1].kind, ExprKind::Name(n) if n.name == word) {
                    op = flagged;
                    args = &args[..1];
                } else {
                    self.err(
                        args[1].span,
                        format!(
                            "the second argument of `{}` can only be `{word}`",
                            name.name
                        ),
                        format!("expected `{word}`"),
                        op_signature(&name.name),
                    );
                    return None;
                }
            }
            if op == (Op::Create { excl: false }) && args.len() == 2 {
                if matches!(&args[1].kind, ExprKind::Name(n) if n.name == "excl") {
                    op = Op::Create { excl: true };
                    args = &args[..1];
                } else {
                    self.err(
                        args[1].span,
                        "the second argument of `create` can only be `excl`",
                        "expected `excl`",
                        "write `create(path)` or `create(path, excl)` for O_EXCL",
                    );
                    return None;
                }
            }
            if args.len() != arity {
                self.err(
                    e.span,
                    format!(
                        "`{}` takes {arity} argument{}, not {}",
                        name.name,
                        if arity == 1 { "" } else { "s" },
                        args.len()
                    ),
                    "wrong number of arguments",
                    op_signature(&name.name),
                );
                return None;
            }
            let vals: Vec<PExpr> = args.iter().map(|a| self.expr(fx, a)).collect();
            let path_args = if matches!(op, Op::Link | Op::Rename) {
                2
            } else if op.is_descriptor() {
                0
            } else {
                1
            };
            for (v, a) in vals.iter().zip(args).take(path_args) {
                if let PExpr::Const(Value::Str(p)) = v {
                    if let Err(msg) = crate::model::fs::check_confined(p) {
                        self.err(a.span, msg, "leaves the scenario's root", "write the path from the scenario's `/`; on a real backend `/` is the directory given to --backend fs:DIR");
                    }
                }
            }
            let dst = fx.reg();
            let label = self.label(e.span);
            fx.emit(Instr::Op {
                dst: Some(dst),
                op,
                args: vals,
                catch,
                label,
            });
            return Some(PExpr::Reg(dst));
        }
        if let Some(&(id, arity)) = self.procs.get(&name.name) {
            if args.len() != arity {
                self.err(
                    e.span,
                    format!(
                        "procedure `{}` takes {arity} argument{}, not {}",
                        name.name,
                        if arity == 1 { "" } else { "s" },
                        args.len()
                    ),
                    "wrong number of arguments",
                    "match the procedure's parameters",
                );
                return None;
            }
            let vals: Vec<PExpr> = args.iter().map(|a| self.expr(fx, a)).collect();
            let dst = want_value.then(|| fx.reg());
            fx.emit(Instr::Call {
                proc: id,
                args: vals,
                dst,
            });
            return Some(dst.map_or(PExpr::Const(Value::None), PExpr::Reg));
        }
        if let Some(&(_, b, arity)) = PURE_BUILTINS.iter().find(|(n, _, _)| *n == name.name) {
            if args.len() != arity {
                self.err(
                    e.span,
                    format!(
                        "`{}` takes {arity} argument{}",
                        name.name,
                        if arity == 1 { "" } else { "s" }
                    ),
                    "wrong number of arguments",
                    "see docs/language.md for the built-in functions",
                );
                return None;
            }
            let vals = args.iter().map(|a| self.expr(fx, a)).collect();
            return Some(PExpr::Call(b, vals));
        }
        if QUERIES.contains(&name.name.as_str()) {
            self.err(name.span, format!("`{}` can only be used in invariants", name.name), "not a step", "invariants observe the world without taking a step; inside actors use operations such as `stat(path)`");
            return None;
        }
        self.unknown_call(name);
        None
    }

    fn unknown_call(&mut self, name: &Ident) {
        let mut known: Vec<&str> = FS_OPS.iter().map(|(n, _)| *n).collect();
        if self.has_database {
            known.push("sql");
        }
        if !self.named_databases.is_empty() {
            known.push("connect");
        }
        known.push("close");
        known.extend(PURE_BUILTINS.iter().map(|(n, _, _)| *n));
        let procs: Vec<String> = self.procs.keys().cloned().collect();
        let suggestion = closest(
            &name.name,
            known
                .iter()
                .copied()
                .chain(procs.iter().map(String::as_str)),
        );
        let help = match suggestion {
            Some(s) => format!("did you mean `{s}`? operations: {}", known.join(", ")),
            None => format!(
                "operations: {}; or declare `proc {}(...) {{ ... }}`",
                known.join(", "),
                name.name
            ),
        };
        self.err(
            name.span,
            format!("unknown operation or procedure `{}`", name.name),
            "unknown",
            help,
        );
    }

    /// Lowers an expression inside a procedure or actor; calls become instructions.
    fn expr(&mut self, fx: &mut Fx, e: &Expr) -> PExpr {
        match &e.kind {
            ExprKind::Int(n) | ExprKind::Duration(n) => PExpr::Const(Value::Int(*n)),
            ExprKind::Bool(b) => PExpr::Const(Value::Bool(*b)),
            ExprKind::None => PExpr::Const(Value::None),
            ExprKind::Str(parts) => {
                let ps: Vec<PExpr> = parts
                    .iter()
                    .map(|p| match p {
                        StrPart::Lit(s) => PExpr::Const(Value::str(s)),
                        StrPart::Expr(e) => self.expr(fx, e),
                    })
                    .collect();
                simplify_concat(ps)
            }
            ExprKind::Name(n) => {
                if let Some(r) = fx.lookup(&n.name) {
                    return PExpr::Reg(r);
                }
                match n.name.as_str() {
                    "self" => return PExpr::SelfName,
                    "now" => {
                        let dst = fx.reg();
                        let label = self.label(e.span);
                        fx.emit(Instr::Op {
                            dst: Some(dst),
                            op: Op::Now,
                            args: vec![],
                            catch: false,
                            label,
                        });
                        return PExpr::Reg(dst);
                    }
                    _ => {}
                }
                if let Some(v) = self.consts.get(&n.name) {
                    return PExpr::Const(v.clone());
                }
                if let Some(&id) = self.locals.get(&n.name) {
                    return PExpr::Local(id);
                }
                if let Some(&id) = self.cells.get(&n.name) {
                    let dst = fx.reg();
                    let label = self.label(e.span);
                    fx.emit(Instr::Op {
                        dst: Some(dst),
                        op: Op::CellGet(id),
                        args: vec![],
                        catch: false,
                        label,
                    });
                    return PExpr::Reg(dst);
                }
                self.unknown_name(fx, n);
                PExpr::Const(Value::None)
            }
            ExprKind::Unary(op, inner) => {
                let v = self.expr(fx, inner);
                match op {
                    ast::UnOp::Neg => PExpr::Neg(Box::new(v)),
                    ast::UnOp::Not => PExpr::Not(Box::new(v)),
                }
            }
            ExprKind::Binary(ast::BinOp::Or, ..) if collections::is_fallback(e) => {
                self.fallback(fx, e)
            }
            ExprKind::List(items) => PExpr::List(items.iter().map(|i| self.expr(fx, i)).collect()),
            ExprKind::Map(entries) => PExpr::Map(
                entries
                    .iter()
                    .map(|(k, v)| (self.expr(fx, k), self.expr(fx, v)))
                    .collect(),
            ),
            ExprKind::Index(coll, key) => PExpr::Index {
                coll: Box::new(self.expr(fx, coll)),
                key: Box::new(self.expr(fx, key)),
                at: self.index_at(e.span),
            },
            ExprKind::Binary(op @ (ast::BinOp::And | ast::BinOp::Or), a, b) if has_effects(b) => {
                // Short-circuit: the right side's steps happen only when they would in the program.
                let t = fx.reg();
                let av = self.expr(fx, a);
                fx.emit(Instr::Eval { dst: t, e: av });
                let skip_if = if *op == ast::BinOp::And {
                    PExpr::Reg(t)
                } else {
                    PExpr::Not(Box::new(PExpr::Reg(t)))
                };
                let j = fx.emit(Instr::JumpIfNot(skip_if, 0));
                let bv = self.expr(fx, b);
                fx.emit(Instr::Eval {
                    dst: t,
                    e: PExpr::Not(Box::new(PExpr::Not(Box::new(bv)))),
                });
                let pc = fx.pc();
                fx.patch(j, pc);
                PExpr::Reg(t)
            }
            ExprKind::Binary(op, a, b) => {
                let av = self.expr(fx, a);
                let bv = self.expr(fx, b);
                negate_if_not_in(*op, PExpr::Bin(binop(*op), Box::new(av), Box::new(bv)))
            }
            ExprKind::Call(..) => self
                .call(fx, e, false, true)
                .unwrap_or(PExpr::Const(Value::None)),
            ExprKind::Field(inner, f) => {
                let v = self.expr(fx, inner);
                self.field(v, f)
            }
        }
    }

    fn field(&mut self, v: PExpr, f: &Ident) -> PExpr {
        let field = match f.name.as_str() {
            "nlink" => StatField::Nlink,
            "mtime" => StatField::Mtime,
            "size" => StatField::Size,
            "ino" => StatField::Ino,
            other => {
                self.err(
                    f.span,
                    format!("unknown field `{other}`"),
                    "no such field",
                    "stat results have `nlink`, `mtime`, `size` and `ino`",
                );
                return PExpr::Const(Value::None);
            }
        };
        PExpr::Field(Box::new(v), field)
    }

    fn unknown_name(&mut self, fx: &Fx, n: &Ident) {
        let mut candidates: Vec<String> =
            fx.scopes.iter().flatten().map(|(s, _)| s.clone()).collect();
        candidates.extend(self.consts.keys().cloned());
        candidates.extend(self.cells.keys().cloned());
        let help = match closest(&n.name, candidates.iter().map(String::as_str)) {
            Some(s) => format!("did you mean `{s}`?"),
            None if Errno::from_name(&n.name).is_some() => {
                "errno names are matched with `err(NAME)` in a `match` arm".to_string()
            }
            None => format!(
                "declare it with `let {} = ...`, `const {} = ...` or `cell {} = ...`",
                n.name, n.name, n.name
            ),
        };
        self.err(
            n.span,
            format!("unknown name `{}`", n.name),
            "not declared",
            help,
        );
    }

    /// Lowers an invariant or a constant: no steps; cells and the filesystem are observed directly.
    fn lower_pure(&mut self, e: &Expr) -> PExpr {
        match &e.kind {
            ExprKind::Int(n) | ExprKind::Duration(n) => PExpr::Const(Value::Int(*n)),
            ExprKind::Bool(b) => PExpr::Const(Value::Bool(*b)),
            ExprKind::None => PExpr::Const(Value::None),
            ExprKind::Str(parts) => {
                let ps = parts
                    .iter()
                    .map(|p| match p {
                        StrPart::Lit(s) => PExpr::Const(Value::str(s)),
                        StrPart::Expr(e) => self.lower_pure(e),
                    })
                    .collect();
                simplify_concat(ps)
            }
            ExprKind::Name(n) => {
                if let Some(v) = self.consts.get(&n.name) {
                    return PExpr::Const(v.clone());
                }
                if let Some(&id) = self.cells.get(&n.name) {
                    return PExpr::Query(Query::Cell(id), vec![]);
                }
                if n.name == "now" {
                    return PExpr::Query(Query::Now, vec![]);
                }
                let candidates: Vec<String> = self
                    .consts
                    .keys()
                    .chain(self.cells.keys())
                    .cloned()
                    .collect();
                let help = match closest(&n.name, candidates.iter().map(String::as_str)) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => "invariants and constants may use constants, cells, `now` and queries such as `holders(section)`".into(),
                };
                self.err(
                    n.span,
                    format!("unknown name `{}`", n.name),
                    "not a constant or cell",
                    help,
                );
                PExpr::Const(Value::None)
            }
            ExprKind::Unary(op, inner) => {
                let v = self.lower_pure(inner);
                match op {
                    ast::UnOp::Neg => PExpr::Neg(Box::new(v)),
                    ast::UnOp::Not => PExpr::Not(Box::new(v)),
                }
            }
            ExprKind::Binary(ast::BinOp::Or, ..) if collections::is_fallback(e) => {
                self.fallback_not_here(e);
                PExpr::Const(Value::None)
            }
            ExprKind::List(items) => {
                PExpr::List(items.iter().map(|i| self.lower_pure(i)).collect())
            }
            ExprKind::Map(entries) => PExpr::Map(
                entries
                    .iter()
                    .map(|(k, v)| (self.lower_pure(k), self.lower_pure(v)))
                    .collect(),
            ),
            ExprKind::Index(coll, key) => PExpr::Index {
                coll: Box::new(self.lower_pure(coll)),
                key: Box::new(self.lower_pure(key)),
                at: self.index_at(e.span),
            },
            ExprKind::Binary(op, a, b) => {
                let av = self.lower_pure(a);
                let bv = self.lower_pure(b);
                negate_if_not_in(*op, PExpr::Bin(binop(*op), Box::new(av), Box::new(bv)))
            }
            ExprKind::Field(inner, f) => {
                let v = self.lower_pure(inner);
                self.field(v, f)
            }
            ExprKind::Call(name, args) => self.pure_call(e.span, name, args),
        }
    }

    fn pure_call(&mut self, span: Span, name: &Ident, args: &[Expr]) -> PExpr {
        let by_name = |args: &[Expr], i: usize| -> Option<String> {
            match args.get(i).map(|a| &a.kind) {
                Some(ExprKind::Name(n)) => Some(n.name.clone()),
                _ => None,
            }
        };
        match (name.name.as_str(), args.len()) {
            ("holders", 1) => match by_name(args, 0) {
                Some(s) if self.in_const || self.sections.contains_key(&s) => {
                    let id = self.section_id(&s);
                    PExpr::Query(Query::Holders(id), vec![])
                }
                Some(s) => {
                    let help = match closest(&s, self.section_names.iter().map(String::as_str)) {
                        Some(c) => format!("did you mean `{c}`?"),
                        None => {
                            format!("declare it in an actor or procedure: `critical {s} {{ ... }}`")
                        }
                    };
                    self.err(
                        args[0].span,
                        format!("no critical section is named `{s}`"),
                        "unknown section",
                        help,
                    );
                    PExpr::Const(Value::None)
                }
                None => {
                    self.err(
                        args[0].span,
                        "`holders` takes the name of a critical section",
                        "expected a section name",
                        "write `holders(section)` for `critical section { ... }`",
                    );
                    PExpr::Const(Value::None)
                }
            },
            ("count", 2) if by_name(args, 0).is_some_and(|s| self.locals.contains_key(&s)) => {
                let id = by_name(args, 0)
                    .and_then(|s| self.locals.get(&s).copied())
                    .unwrap_or(0);
                let v = self.lower_pure(&args[1]);
                PExpr::Query(Query::LocalCount(id), vec![v])
            }
            ("sql", n) if n >= 1 => match self.prepare_sql(&args[0]) {
                Some((id, params)) if params == n - 1 => {
                    let vals = args[1..].iter().map(|a| self.lower_pure(a)).collect();
                    PExpr::Query(Query::Sql(id), vals)
                }
                Some((_, params)) => {
                    self.err(
                        span,
                        format!(
                            "the statement has {params} parameters but {} values are given",
                            n - 1
                        ),
                        "wrong number of values",
                        "pass one value per `?`",
                    );
                    PExpr::Const(Value::None)
                }
                None => PExpr::Const(Value::None),
            },
            ("count", 1 | 2) => {
                match by_name(args, 0).and_then(|s| self.logs.get(&s).copied()) {
                    Some(id) if args.len() == 1 => PExpr::Query(Query::LogCount(id), vec![]),
                    Some(id) => {
                        let needle = self.lower_pure(&args[1]);
                        PExpr::Query(Query::LogCountMatching(id), vec![needle])
                    }
                    None => {
                        self.err(args[0].span, "`count` takes the name of a log", "not a log", "write `count(log)` or `count(log, \"text\")` for a `log NAME` declaration");
                        PExpr::Const(Value::None)
                    }
                }
            }
            ("connections", 1) => {
                let db = self.lower_pure(&args[0]);
                if let PExpr::Const(v) = &db {
                    self.check_database_name(args[0].span, v);
                }
                PExpr::Query(Query::Connections, vec![db])
            }
            ("exists", 1) => {
                let p = self.lower_pure(&args[0]);
                PExpr::Query(Query::Exists, vec![p])
            }
            ("read", 1) => {
                let p = self.lower_pure(&args[0]);
                PExpr::Query(Query::Contents, vec![p])
            }
            ("between", _) => {
                self.err(
                    span,
                    "`between(lo, hi)` is a duration the engines choose, not a value",
                    "only a duration of `sleep` or `work`",
                    "write `sleep between(10ms, 2010ms)` or `work between(1s, 3s)`",
                );
                PExpr::Const(Value::None)
            }
            _ => {
                if let Some(&(_, b, arity)) = PURE_BUILTINS.iter().find(|(n, _, _)| *n == name.name)
                {
                    if args.len() == arity {
                        let vals = args.iter().map(|a| self.lower_pure(a)).collect();
                        return PExpr::Call(b, vals);
                    }
                }
                self.err(
                    span,
                    format!("`{}` with {} argument{} cannot be used here", name.name, args.len(), if args.len() == 1 { "" } else { "s" }),
                    "not allowed in an invariant or constant",
                    "invariants may use holders(section), count(log), count(log, text), count(local, value), exists(path), read(path), sql(...), connections(database), len, str, int, contains, min, max, push, put, rest, remove",
                );
                PExpr::Const(Value::None)
            }
        }
    }
}

/// Whether `e` is a call of an operation whose result is `ok` or `err(ERRNO)`.
fn is_fallible_op(e: &Expr) -> bool {
    matches!(&e.kind, ExprKind::Call(name, _) if name.name == "sql" || name.name == "close" || FS_OPS.iter().any(|(n, _)| *n == name.name))
}

fn op_signature(name: &str) -> String {
    let sig = match name {
        "create" => "create(path) or create(path, excl)",
        "write" => "write(path, data)",
        "read" => "read(path)",
        "link" => "link(existing, new)",
        "unlink" => "unlink(path)",
        "rename" => "rename(from, to)",
        "stat" => "stat(path)",
        "utime" => "utime(path, time)",
        "touch" => "touch(path)",
        "mkdir" => "mkdir(path)",
        "open" => "open(path) or open(path, creat)",
        "flock" => "flock(fd) (LOCK_EX|LOCK_NB) or flock(fd, un) (LOCK_UN)",
        "fstat" => "fstat(fd)",
        "glob" => "glob(pattern)",
        _ => "rmdir(path)",
    };
    format!("write `{sig}`")
}

fn binop(op: ast::BinOp) -> BinOp {
    match op {
        ast::BinOp::Add => BinOp::Add,
        ast::BinOp::Sub => BinOp::Sub,
        ast::BinOp::Mul => BinOp::Mul,
        ast::BinOp::Div => BinOp::Div,
        ast::BinOp::Rem => BinOp::Rem,
        ast::BinOp::Eq => BinOp::Eq,
        ast::BinOp::Ne => BinOp::Ne,
        ast::BinOp::Lt => BinOp::Lt,
        ast::BinOp::Le => BinOp::Le,
        ast::BinOp::Gt => BinOp::Gt,
        ast::BinOp::Ge => BinOp::Ge,
        ast::BinOp::And => BinOp::And,
        ast::BinOp::Or => BinOp::Or,
        ast::BinOp::In | ast::BinOp::NotIn => BinOp::In,
    }
}

/// `x not in xs` is `not (x in xs)`.
fn negate_if_not_in(op: ast::BinOp, e: PExpr) -> PExpr {
    if op == ast::BinOp::NotIn {
        PExpr::Not(Box::new(e))
    } else {
        e
    }
}

fn simplify_concat(mut parts: Vec<PExpr>) -> PExpr {
    if parts.len() == 1 {
        if let PExpr::Const(Value::Str(_)) = &parts[0] {
            return parts.pop().unwrap_or(PExpr::Const(Value::None));
        }
    }
    PExpr::Concat(parts)
}

/// True when evaluating `e` takes a step or calls a procedure (so it cannot be hoisted).
fn has_effects(e: &Expr) -> bool {
    match &e.kind {
        ExprKind::Call(name, args) => {
            !PURE_BUILTINS.iter().any(|(n, _, _)| *n == name.name) || args.iter().any(has_effects)
        }
        ExprKind::Name(n) => {
            n.name == "now" || n.name.chars().next().is_some_and(char::is_lowercase)
        }
        ExprKind::Unary(_, a) | ExprKind::Field(a, _) => has_effects(a),
        ExprKind::Binary(_, a, b) | ExprKind::Index(a, b) => has_effects(a) || has_effects(b),
        ExprKind::List(items) => items.iter().any(has_effects),
        ExprKind::Map(entries) => entries
            .iter()
            .any(|(k, v)| has_effects(k) || has_effects(v)),
        ExprKind::Str(parts) => parts
            .iter()
            .any(|p| matches!(p, StrPart::Expr(e) if has_effects(e))),
        _ => false,
    }
}

/// The candidate with the smallest edit distance, when it is close enough to be a typo.
pub(crate) fn closest<'s>(
    name: &str,
    candidates: impl Iterator<Item = &'s str>,
) -> Option<&'s str> {
    candidates
        .map(|c| (levenshtein(name, c), c))
        .filter(|(d, c)| *d <= 2.max(name.len() / 4) && *d < c.len().max(name.len()))
        .min()
        .map(|(_, c)| c)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            cur.push(
                (prev[j] + usize::from(ca != *cb))
                    .min(prev[j + 1] + 1)
                    .min(cur[j] + 1),
            );
        }
        prev = cur;
    }
    prev[b.len()]
}

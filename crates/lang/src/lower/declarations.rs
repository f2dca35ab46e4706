//! The top-level items of a variant: parameters, constants, world declarations, procedures,
//! actors, faults and invariants, lowered in passes so that any item may refer to any other.

use super::{closest, Cx};
use crate::eval::{self, Env};
use crate::ir::*;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::calls::is_operation;
use crate::ast::{self, Expr, Ident, Item};
use crate::diag::{Diag, Span};
use crate::sql as db;

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

/// What the declaration pass collects for the passes after it, in the order written.
#[derive(Default)]
pub(super) struct Declared<'i> {
    pub procs: Vec<&'i ast::Proc>,
    pub actors: Vec<&'i ast::Actor>,
    pub faults: Vec<&'i ast::Fault>,
    /// `database NAME` declarations, to find the same name declared twice.
    pub named_databases: Vec<Ident>,
}

impl Cx<'_> {
    /// `database NAME` may come before or after the scenario's own `database { ... }` block.
    pub(super) fn collect_database_names(&mut self, items: &[&Item]) {
        for item in items {
            if let Item::NamedDatabase { name } = item {
                self.named_databases.push(name.name.clone());
            }
        }
    }

    /// Parameters first: constants and everything else may use them.
    pub(super) fn declare_params(
        &mut self,
        items: &[&Item],
        params: &BTreeMap<String, i64>,
        prog: &mut Program,
    ) {
        for item in items {
            if let Item::Param {
                name,
                low,
                high,
                span,
            } = item
            {
                let (lo, hi) = (self.const_value(low), self.const_value(high));
                let (Value::Int(lo), Value::Int(hi)) = (lo, hi) else {
                    self.err(
                        *span,
                        "a parameter ranges over integers or durations",
                        "not a range of numbers",
                        "write `param waiters in 2..=5` or `param lifetime in 1s..=20s`",
                    );
                    continue;
                };
                if lo > hi {
                    self.err(
                        *span,
                        format!("the range {lo}..={hi} is empty"),
                        "empty range",
                        "write the low end first",
                    );
                    continue;
                }
                let value = params.get(&name.name).copied().unwrap_or(lo);
                if !(lo..=hi).contains(&value) {
                    self.err(name.span, format!("parameter `{}` = {value} is outside its range {lo}..={hi}", name.name), "out of range", "a replay token's parameters must fit the scenario's ranges; explore again for a fresh token");
                }
                if self
                    .consts
                    .insert(name.name.clone(), Value::Int(value))
                    .is_some()
                    || prog.params.iter().any(|p| p.name == name.name)
                {
                    self.dup(name, "parameter");
                }
                prog.params.push(ParamIr {
                    name: name.name.clone(),
                    low: lo,
                    high: hi,
                    value,
                });
            }
        }
    }

    /// Every item but parameters, in the order written: names into the tables of `self`,
    /// initial state into `prog`; procedures, actors and faults are returned for later passes.
    pub(super) fn declare_items<'i>(
        &mut self,
        items: &[&'i Item],
        prog: &mut Program,
    ) -> Declared<'i> {
        let mut declared = Declared::default();
        for &item in items {
            self.declare_item(item, prog, &mut declared);
        }
        declared
    }

    fn declare_item<'i>(
        &mut self,
        item: &'i Item,
        prog: &mut Program,
        declared: &mut Declared<'i>,
    ) {
        match item {
            Item::Local { name, init } => {
                let v = self.const_value(init);
                let id = prog.locals.len() as u32;
                if self.locals.insert(name.name.clone(), id).is_some() {
                    self.dup(name, "thread-local");
                }
                prog.locals.push((name.name.clone(), v));
            }
            Item::Lock { name, kind } => {
                let id = prog.locks.len() as u32;
                if self.locks.insert(name.name.clone(), (id, *kind)).is_some() {
                    self.dup(name, "lock");
                }
                prog.locks.push((name.name.clone(), *kind));
            }
            Item::Param { .. } => {}
            Item::NamedDatabase { name } => {
                if declared
                    .named_databases
                    .iter()
                    .any(|n: &Ident| n.name == name.name)
                {
                    self.dup(name, "database");
                }
                declared.named_databases.push(name.clone());
            }
            Item::Database {
                flavour,
                statements,
                span,
            } => {
                if self.has_database {
                    self.err(*span, "a second `database`", "declared again here", "a scenario has one database; put every table in the same `database { ... }` block");
                }
                self.has_database = true;
                prog.database = self.database(flavour.as_ref(), statements);
            }
            Item::Fault(f) => declared.faults.push(f),
            Item::Gate { command, .. } => prog.gate = command.clone(),
            Item::Nfs { cache, span } => match self.const_value(cache) {
                Value::Int(ms) if ms >= 0 => prog.nfs_cache_ms = Some(ms),
                v => self.err(
                    *span,
                    format!("expected a duration, found {v}"),
                    "not a duration",
                    "write `nfs cache 3s` (Linux's acregmin is 3 s)",
                ),
            },
            Item::FaultBudget { n, span } => {
                if !(0..=8).contains(n) {
                    self.err(*span, format!("a fault budget must be between 0 and 8, not {n}"), "out of range", "one or two faults per execution find most bugs; each one multiplies the schedules");
                } else {
                    prog.fault_budget = *n as usize;
                }
            }
            Item::Const { name, value } => {
                let v = self.const_value(value);
                if self.consts.insert(name.name.clone(), v).is_some() {
                    self.dup(name, "constant");
                }
            }
            Item::Cell { name, init } => {
                let v = self.const_value(init);
                let id = prog.cells.len() as u32;
                if self.cells.insert(name.name.clone(), id).is_some() {
                    self.dup(name, "cell");
                }
                prog.cells.push((name.name.clone(), v));
            }
            Item::Log { name } => {
                let id = prog.logs.len() as u32;
                if self.logs.insert(name.name.clone(), id).is_some() {
                    self.dup(name, "log");
                }
                prog.logs.push(name.name.clone());
            }
            Item::Fs { entries, .. } => self.declare_fs(entries, prog),
            Item::Proc(p) => self.declare_proc(p, declared),
            Item::Actor(a) => declared.actors.push(a),
            Item::Invariant(_) => {}
            // Replaced by the library's declarations before lowering (imports.rs).
            Item::Import(_) => {}
        }
    }

    /// `fs { ... }`: the initial directories and files.
    fn declare_fs(&mut self, entries: &[ast::FsEntry], prog: &mut Program) {
        for e in entries {
            match e {
                ast::FsEntry::Dir { path } => {
                    if let Some(p) = self.const_path(path) {
                        prog.fs.push(FsInit::Dir(p));
                    }
                }
                ast::FsEntry::File { path, contents } => {
                    let c = self.const_value(contents);
                    if let Some(p) = self.const_path(path) {
                        prog.fs.push(FsInit::File(p, c.to_string()));
                    }
                }
            }
        }
    }

    /// A procedure's name and arity, so that calls anywhere may refer to it.
    fn declare_proc<'i>(&mut self, p: &'i ast::Proc, declared: &mut Declared<'i>) {
        if is_operation(&p.name.name) {
            self.err(
                p.name.span,
                format!("a procedure cannot be named `{}`: that is an operation", p.name.name),
                "the name of an operation",
                format!("calls of `{}` would run the operation, not this procedure; rename it (e.g. `{}_`)", p.name.name, p.name.name),
            );
        }
        let id = declared.procs.len() as u32;
        if self
            .procs
            .insert(p.name.name.clone(), (id, p.params.len()))
            .is_some()
        {
            self.dup(&p.name, "procedure");
        }
        declared.procs.push(p);
    }

    pub(super) fn lower_procs(&mut self, procs: &[&ast::Proc], prog: &mut Program) {
        for p in procs {
            let params: Vec<&Ident> = p.params.iter().collect();
            let lowered = self.lower_proc(&p.name.name, &params, &p.body);
            prog.procs.push(lowered);
        }
    }

    /// Each actor's body as a procedure, and its instances (`x N`) on their client.
    pub(super) fn lower_actors(&mut self, actors: &[&ast::Actor], prog: &mut Program) {
        let mut actor_names: HashMap<String, Span> = HashMap::new();
        for a in actors {
            if actor_names
                .insert(a.name.name.clone(), a.name.span)
                .is_some()
            {
                self.dup(&a.name, "actor");
            }
            let id = prog.procs.len() as u32;
            prog.procs.push(self.lower_proc(&a.name.name, &[], &a.body));
            let count = match a.count {
                None => 1,
                Some((n, span)) if !(1..=64).contains(&n) => {
                    self.diags.push(
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
    }

    /// Faults name actor instances, so they come after the actors.
    pub(super) fn lower_faults(&mut self, faults: &[&ast::Fault], prog: &mut Program) {
        for f in faults {
            if let Some(fault) = self.fault(f, prog) {
                if prog.faults.iter().any(|x| x.name == fault.name) {
                    self.dup(&f.name, "fault");
                }
                prog.faults.push(fault);
            }
        }
    }

    pub(super) fn lower_invariants(&mut self, items: &[&Item], prog: &mut Program) {
        for item in items {
            if let Item::Invariant(inv) = item {
                if prog.invariants.iter().any(|i| i.name == inv.name.name)
                    || oracle::ALL.contains(&inv.name.name.as_str())
                {
                    self.dup(&inv.name, "invariant");
                }
                let cond = self.lower_pure(&inv.cond);
                prog.invariants.push(InvariantIr {
                    name: inv.name.name.clone(),
                    when: match inv.when {
                        ast::When::Always => When::Always,
                        ast::When::AtEnd => When::AtEnd,
                    },
                    cond,
                    text: self.sources.text()[inv.cond.span.start..inv.cond.span.end].to_string(),
                });
            }
        }
    }
}

/// Named databases live on the scenario's server: without a `database { ... }` block, that
/// server's own database is an empty one under PostgreSQL's rules.
pub(super) fn add_named_databases(named_databases: &[Ident], prog: &mut Program) {
    let db = prog.database.get_or_insert_with(|| DatabaseIr {
        flavour: db::Flavour::Postgres,
        setup: vec![],
        setup_text: vec![],
        names: vec![],
    });
    db.names = named_databases.iter().map(|n| n.name.clone()).collect();
}

impl Cx<'_> {
    pub(super) fn const_value(&mut self, e: &Expr) -> Value {
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

    pub(super) fn const_path(&mut self, e: &Expr) -> Option<String> {
        match self.const_value(e) {
            Value::Str(s) if s.starts_with('/') => match crate::paths::check_confined(&s) {
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
    pub(super) fn database(
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
        match (self.setup)(flavour, &setup) {
            // The model runs the setup again for each machine (`Db::initial`).
            Ok(_) => Some(DatabaseIr {
                flavour,
                setup,
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

    pub(super) fn fault(&mut self, f: &ast::Fault, prog: &Program) -> Option<FaultIr> {
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
}

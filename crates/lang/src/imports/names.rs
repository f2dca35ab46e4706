//! The names a library item declares and the names it mentions: what `import ... { names }`
//! selects, and what a selected item drags in with it.

use std::collections::HashSet;

use super::super::ast::{Block, Expr, ExprKind, Ident, Item, Pattern, Stmt, StmtKind, StrPart};

/// The kind and name a declaration introduces (kinds as the lowering keeps them apart).
pub(super) fn declared(item: &Item) -> Option<(&'static str, &Ident)> {
    Some(match item {
        Item::Const { name, .. } | Item::Param { name, .. } => ("constant", name),
        Item::Cell { name, .. } => ("cell", name),
        Item::Log { name } => ("log", name),
        Item::Proc(p) => ("procedure", &p.name),
        Item::Local { name, .. } => ("thread-local", name),
        Item::Lock { name, .. } => ("lock", name),
        Item::Invariant(i) => ("invariant", &i.name),
        Item::Actor(a) => ("actor", &a.name),
        Item::Fault(f) => ("fault", &f.name),
        Item::NamedDatabase { name } => ("database", name),
        Item::Fs { .. }
        | Item::FaultBudget { .. }
        | Item::Nfs { .. }
        | Item::Database { .. }
        | Item::Gate { .. }
        | Item::Import(_) => return None,
    })
}

/// Every name a declaration mentions (variables, calls, cells, logs, locks, sections): what a
/// selective import must bring along from the library.
pub(super) fn mentions(item: &Item, out: &mut HashSet<String>) {
    let mut m = Mentions(out);
    match item {
        Item::Const { value: e, .. } | Item::Cell { init: e, .. } | Item::Local { init: e, .. } => {
            m.expr(e)
        }
        Item::Proc(p) => m.block(&p.body),
        Item::Invariant(i) => m.expr(&i.cond),
        Item::Fs { entries, .. } => {
            for e in entries {
                match e {
                    super::super::ast::FsEntry::Dir { path } => m.expr(path),
                    super::super::ast::FsEntry::File { path, contents } => {
                        m.expr(path);
                        m.expr(contents);
                    }
                }
            }
        }
        _ => {}
    }
}

struct Mentions<'a>(&'a mut HashSet<String>);

impl Mentions<'_> {
    fn name(&mut self, i: &Ident) {
        self.0.insert(i.name.clone());
    }

    fn block(&mut self, b: &Block) {
        for s in b {
            self.stmt(s);
        }
    }

    fn stmt(&mut self, s: &Stmt) {
        match &s.kind {
            StmtKind::Let(_, e) | StmtKind::Sleep(e) | StmtKind::Work(e) | StmtKind::Fail(e) => {
                self.expr(e)
            }
            StmtKind::Expr(e) => self.expr(e),
            StmtKind::Assign(n, e) | StmtKind::Set(n, e) | StmtKind::Append(n, e) => {
                self.name(n);
                self.expr(e);
            }
            StmtKind::If(c, a, b) => {
                self.expr(c);
                self.block(a);
                if let Some(b) = b {
                    self.block(b);
                }
            }
            StmtKind::Loop(b) => self.block(b),
            StmtKind::While(c, b) => {
                self.expr(c);
                self.block(b);
            }
            StmtKind::Break | StmtKind::Continue | StmtKind::Exit => {}
            StmtKind::Return(e) => {
                if let Some(e) = e {
                    self.expr(e);
                }
            }
            StmtKind::Match(e, arms) => {
                self.expr(e);
                for a in arms {
                    if let Pattern::Lit(p) = &a.pat {
                        self.expr(p);
                    }
                    self.block(&a.body);
                }
            }
            StmtKind::Critical(n, b) => {
                self.name(n);
                self.block(b);
            }
            StmtKind::Assert(c, msg) => {
                self.expr(c);
                if let Some(m) = msg {
                    self.expr(m);
                }
            }
            StmtKind::Acquire { lock, .. } | StmtKind::Release(lock) => self.name(lock),
            StmtKind::With { lock, body, .. } => {
                self.name(lock);
                self.block(body);
            }
            StmtKind::On { handler, .. } => {
                if let Some((h, args)) = handler {
                    self.name(h);
                    for a in args {
                        self.expr(a);
                    }
                }
            }
            StmtKind::Try { body, finally } => {
                self.block(body);
                self.block(finally);
            }
            StmtKind::Ignore { op, .. } => self.expr(op),
            StmtKind::For { iter, body, .. } => {
                self.expr(iter);
                self.block(body);
            }
            StmtKind::AssignAt { name, key, value }
            | StmtKind::SetAt {
                cell: name,
                key,
                value,
            } => {
                self.name(name);
                self.expr(key);
                self.expr(value);
            }
        }
    }

    fn expr(&mut self, e: &Expr) {
        match &e.kind {
            ExprKind::Int(_) | ExprKind::Duration(_) | ExprKind::Bool(_) | ExprKind::None => {}
            ExprKind::Str(parts) => {
                for p in parts {
                    if let StrPart::Expr(e) = p {
                        self.expr(e);
                    }
                }
            }
            ExprKind::Name(n) => self.name(n),
            ExprKind::Unary(_, a) | ExprKind::Field(a, _) => self.expr(a),
            ExprKind::Binary(_, a, b) | ExprKind::Index(a, b) => {
                self.expr(a);
                self.expr(b);
            }
            ExprKind::List(items) => items.iter().for_each(|e| self.expr(e)),
            ExprKind::Map(entries) => {
                for (k, v) in entries {
                    self.expr(k);
                    self.expr(v);
                }
            }
            ExprKind::Call(n, args) => {
                self.name(n);
                for a in args {
                    self.expr(a);
                }
            }
        }
    }
}

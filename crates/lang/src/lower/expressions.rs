//! Expressions: in procedures and actors, where calls become instructions, and pure ones for
//! invariants and constants, which observe the world without taking a step.

use super::calls::PURE_BUILTINS;
use super::collections;
use super::{closest, Cx, Fx};
use crate::ast::{self, Expr, ExprKind, Ident, StrPart};
use crate::diag::Span;
use crate::ir::*;

impl Cx<'_> {
    /// Lowers an expression inside a procedure or actor; calls become instructions.
    pub(super) fn expr(&mut self, fx: &mut Fx, e: &Expr) -> PExpr {
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
            ExprKind::Name(n) => self.name_expr(fx, e, n),
            ExprKind::Unary(op, inner) => {
                let v = self.expr(fx, inner);
                match op {
                    ast::UnOp::Neg => negate(v),
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
                self.short_circuit(fx, *op, a, b)
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

    /// A name in an actor: a variable, `self`, `now` (a step), a constant, a thread-local, or a
    /// cell (reading it is a step).
    fn name_expr(&mut self, fx: &mut Fx, e: &Expr, n: &Ident) -> PExpr {
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

    /// `a and b` / `a or b` where `b` takes steps: they happen only when they would in the program.
    fn short_circuit(&mut self, fx: &mut Fx, op: ast::BinOp, a: &Expr, b: &Expr) -> PExpr {
        let t = fx.reg();
        let av = self.expr(fx, a);
        fx.emit(Instr::Eval { dst: t, e: av });
        let skip_if = if op == ast::BinOp::And {
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

    /// `holders(section)`: who is inside a critical section.
    fn holders_query(&mut self, args: &[Expr]) -> PExpr {
        match name_arg(args, 0) {
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
        }
    }

    pub(super) fn field(&mut self, v: PExpr, f: &Ident) -> PExpr {
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

    pub(super) fn unknown_name(&mut self, fx: &Fx, n: &Ident) {
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
    pub(super) fn lower_pure(&mut self, e: &Expr) -> PExpr {
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
                    ast::UnOp::Neg => negate(v),
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

    pub(super) fn pure_call(&mut self, span: Span, name: &Ident, args: &[Expr]) -> PExpr {
        match (name.name.as_str(), args.len()) {
            ("holders", 1) => self.holders_query(args),
            ("count", 2) if name_arg(args, 0).is_some_and(|s| self.locals.contains_key(&s)) => {
                let id = name_arg(args, 0)
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
                match name_arg(args, 0).and_then(|s| self.logs.get(&s).copied()) {
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

/// The `i`-th argument when it is a bare name (a section, a log or a thread-local).
fn name_arg(args: &[Expr], i: usize) -> Option<String> {
    match args.get(i).map(|a| &a.kind) {
        Some(ExprKind::Name(n)) => Some(n.name.clone()),
        _ => None,
    }
}

/// `-v`; of an integer literal (Mailman's `-1`), the constant itself, so that evaluating it
/// builds nothing at run time. Wrapping, as the evaluator negates.
fn negate(v: PExpr) -> PExpr {
    match v {
        PExpr::Const(Value::Int(n)) => PExpr::Const(Value::Int(n.wrapping_neg())),
        v => PExpr::Neg(Box::new(v)),
    }
}

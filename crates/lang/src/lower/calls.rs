//! Calls in procedures and actors: world operations (files, descriptors, SQL, connections),
//! procedure calls and pure builtins, each checked against its signature.

use super::{closest, Cx, Fx};
use crate::ast::{Expr, ExprKind, Ident};
use crate::ir::*;

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
pub(super) const PURE_BUILTINS: &[(&str, Builtin, usize)] = &[
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
pub(super) fn is_operation(name: &str) -> bool {
    FS_OPS.iter().any(|(n, _)| *n == name) || matches!(name, "sql" | "connect" | "close")
}

impl Cx<'_> {
    /// Lowers a call (world operation, procedure or pure builtin) and returns its value.
    pub(super) fn call(
        &mut self,
        fx: &mut Fx,
        e: &Expr,
        catch: bool,
        want_value: bool,
    ) -> Option<PExpr> {
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
            return self.sql_call(fx, e, args, catch);
        }
        if name.name == "close" && self.named_databases.is_empty() {
            return self.close_fd(fx, e, args, catch);
        }
        if name.name == "connect" || name.name == "close" {
            return self.connection_call(fx, e, name, args, catch);
        }
        if let Some(&(_, arity)) = FS_OPS.iter().find(|(n, _)| *n == name.name) {
            return self.fs_call(fx, e, name, args, arity, catch);
        }
        if let Some(&(id, arity)) = self.procs.get(&name.name) {
            return self.proc_call(fx, e, name, args, (id, arity), want_value);
        }
        if let Some(&(_, b, arity)) = PURE_BUILTINS.iter().find(|(n, _, _)| *n == name.name) {
            return self.builtin_call(fx, e, name, args, b, arity);
        }
        if QUERIES.contains(&name.name.as_str()) {
            self.err(name.span, format!("`{}` can only be used in invariants", name.name), "not a step", "invariants observe the world without taking a step; inside actors use operations such as `stat(path)`");
            return None;
        }
        self.unknown_call(name);
        None
    }

    /// `sql("...", args)`: a statement prepared once, run as one step.
    fn sql_call(&mut self, fx: &mut Fx, e: &Expr, args: &[Expr], catch: bool) -> Option<PExpr> {
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
        Some(PExpr::Reg(dst))
    }

    /// `close(fd)` when the scenario has no databases: closes a descriptor `open` returned.
    fn close_fd(&mut self, fx: &mut Fx, e: &Expr, args: &[Expr], catch: bool) -> Option<PExpr> {
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
        Some(PExpr::Reg(dst))
    }

    /// `connect(database)` or `close(connection)`.
    fn connection_call(
        &mut self,
        fx: &mut Fx,
        e: &Expr,
        name: &Ident,
        args: &[Expr],
        catch: bool,
    ) -> Option<PExpr> {
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
        Some(PExpr::Reg(dst))
    }

    /// A filesystem or descriptor operation, with its bare-word flag (`excl`, `creat`, `un`).
    fn fs_call(
        &mut self,
        fx: &mut Fx,
        e: &Expr,
        name: &Ident,
        args: &[Expr],
        arity: usize,
        catch: bool,
    ) -> Option<PExpr> {
        let mut op = fs_op_named(&name.name);
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
                if let Err(msg) = crate::paths::check_confined(p) {
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
        Some(PExpr::Reg(dst))
    }

    /// A procedure call; its value is kept only when `want_value`.
    fn proc_call(
        &mut self,
        fx: &mut Fx,
        e: &Expr,
        name: &Ident,
        args: &[Expr],
        (id, arity): (ProcId, usize),
        want_value: bool,
    ) -> Option<PExpr> {
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
        Some(dst.map_or(PExpr::Const(Value::None), PExpr::Reg))
    }

    /// A pure builtin: an expression, no step.
    fn builtin_call(
        &mut self,
        fx: &mut Fx,
        e: &Expr,
        name: &Ident,
        args: &[Expr],
        b: Builtin,
        arity: usize,
    ) -> Option<PExpr> {
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
        Some(PExpr::Call(b, vals))
    }

    pub(super) fn unknown_call(&mut self, name: &Ident) {
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
}

/// Whether `e` is a call of an operation whose result is `ok` or `err(ERRNO)`.
pub(super) fn is_fallible_op(e: &Expr) -> bool {
    matches!(&e.kind, ExprKind::Call(name, _) if name.name == "sql" || name.name == "close" || FS_OPS.iter().any(|(n, _)| *n == name.name))
}

/// The operation a filesystem call names (without its flag).
fn fs_op_named(name: &str) -> Op {
    match name {
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
    }
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

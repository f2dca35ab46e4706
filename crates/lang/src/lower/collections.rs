//! Lowering of lists and maps (literals, indexing, `for`, entry assignment) and of `OP or FALLBACK`.

use std::sync::Arc;

use super::calls::is_fallible_op;
use super::{Cx, Fx, LoopCx};
use crate::ast::{self, Expr, ExprKind, Ident, Stmt};
use crate::diag::Span;
use crate::ir::*;

impl Cx<'_> {
    /// The expression at `span` as written, with its line, for a failed index's message.
    pub(super) fn index_at(&self, span: Span) -> Arc<str> {
        let text: Vec<&str> = self
            .src
            .get(span.start..span.end)
            .unwrap_or("")
            .split_whitespace()
            .collect();
        let line = self.line_of(span.start);
        Arc::from(match self.library_of(span.start) {
            Some(file) => format!("{} (line {line} of {file})", text.join(" ")),
            None => format!("{} (line {line})", text.join(" ")),
        })
    }

    /// `for var in iter { body }`: `iter` is evaluated once, before the first round (a later
    /// change to the variable it came from does not change the rounds); a map gives its keys.
    pub(super) fn for_stmt(&mut self, fx: &mut Fx, var: &Ident, iter: &Expr, body: &[Stmt]) {
        let coll = self.expr(fx, iter);
        let items = fx.reg();
        fx.emit(Instr::Eval {
            dst: items,
            e: PExpr::Call(Builtin::Items, vec![coll]),
        });
        let i = fx.reg();
        fx.emit(Instr::Eval {
            dst: i,
            e: PExpr::Const(Value::Int(-1)),
        });
        // The counter moves at the top, so `continue` (a jump to the start) moves it too.
        let start = fx.pc();
        fx.emit(Instr::Eval {
            dst: i,
            e: PExpr::Bin(
                BinOp::Add,
                Box::new(PExpr::Reg(i)),
                Box::new(PExpr::Const(Value::Int(1))),
            ),
        });
        let more = PExpr::Bin(
            BinOp::Lt,
            Box::new(PExpr::Reg(i)),
            Box::new(PExpr::Call(Builtin::Len, vec![PExpr::Reg(items)])),
        );
        let done = fx.emit(Instr::JumpIfNot(more, 0));
        fx.loops.push(LoopCx {
            start,
            breaks: vec![done],
            sections_at_entry: fx.open_sections.len(),
        });
        fx.scopes.push(vec![]);
        let x = fx.reg();
        fx.emit(Instr::Eval {
            dst: x,
            e: PExpr::Index {
                coll: Box::new(PExpr::Reg(items)),
                key: Box::new(PExpr::Reg(i)),
                at: self.index_at(iter.span),
            },
        });
        fx.bind(&var.name, x);
        self.block(fx, body);
        fx.scopes.pop();
        fx.emit(Instr::Jump(start));
        self.close_loop(fx);
    }

    /// `name[key] = value` on a variable or a thread-local: it gets a copy with the entry
    /// replaced (`name = put(name, key, value)`), no step.
    pub(super) fn assign_at(&mut self, fx: &mut Fx, name: &Ident, key: &Expr, value: &Expr) {
        let k = self.expr(fx, key);
        let v = self.expr(fx, value);
        let put = |coll| PExpr::Call(Builtin::Put, vec![coll, k, v]);
        if let Some(r) = fx.lookup(&name.name) {
            fx.emit(Instr::Eval {
                dst: r,
                e: put(PExpr::Reg(r)),
            });
        } else if let Some(&local) = self.locals.get(&name.name) {
            fx.emit(Instr::SetLocal {
                local,
                e: put(PExpr::Local(local)),
            });
        } else if self.cells.contains_key(&name.name) {
            self.err(
                name.span,
                format!("`{}` is a shared cell", name.name),
                "a cell",
                format!(
                    "write an entry of a cell with `set {}[key] = ...`; that is one step",
                    name.name
                ),
            );
        } else {
            self.err(
                name.span,
                format!("assignment to undeclared variable `{}`", name.name),
                "not declared",
                format!(
                    "declare it first: `let {} = map {{}}` or `let {} = []`",
                    name.name, name.name
                ),
            );
        }
    }

    /// `set cell[key] = value`: one step that replaces one entry of the cell's list or map.
    pub(super) fn set_at(&mut self, fx: &mut Fx, s: &Stmt, cell: &Ident, key: &Expr, value: &Expr) {
        let k = self.expr(fx, key);
        let v = self.expr(fx, value);
        match self.cells.get(&cell.name) {
            Some(&id) => {
                let label = self.label(s.span);
                fx.emit(Instr::Op {
                    dst: None,
                    op: Op::CellPut(id),
                    args: vec![k, v],
                    catch: false,
                    label,
                });
            }
            None => self.err(
                cell.span,
                format!("unknown cell `{}`", cell.name),
                "not a cell",
                "declare it at the top level: `cell NAME = map {}`; a variable's entry is set with `NAME[key] = value`",
            ),
        }
    }

    /// `OP or FALLBACK` (`read(p) or ""`): the operation, caught; when it failed with any
    /// error, the fallback's value instead. A chain `OP1 or OP2 or X` tries each in turn: every
    /// operation but the last alternative is caught.
    pub(super) fn fallback(&mut self, fx: &mut Fx, e: &Expr) -> PExpr {
        let mut alternatives = Vec::new();
        flatten_or(e, &mut alternatives);
        let Some(PExpr::Reg(r)) = self.call(fx, alternatives[0], true, true) else {
            return PExpr::Const(Value::None);
        };
        let mut to_end = Vec::new();
        let last = alternatives.len() - 1;
        for (n, alt) in alternatives.iter().enumerate().skip(1) {
            let failed = PExpr::Not(Box::new(PExpr::IsOk(r)));
            to_end.push(fx.emit(Instr::JumpIfNot(failed, 0)));
            let v = if n < last && is_fallible_op(alt) {
                self.call(fx, alt, true, true)
                    .unwrap_or(PExpr::Const(Value::None))
            } else {
                self.expr(fx, alt)
            };
            fx.emit(Instr::Eval { dst: r, e: v });
        }
        let end = fx.pc();
        for j in to_end {
            fx.patch(j, end);
        }
        PExpr::Reg(r)
    }

    /// `read(p) or ""` in an invariant or constant: not available (a query does not fail).
    pub(super) fn fallback_not_here(&mut self, e: &Expr) {
        self.err(
            e.span,
            "a fallback `OP or VALUE` belongs in an actor or procedure",
            "not in an invariant or constant",
            "in an invariant `read(path)` is `none` when there is no file: compare with `none`, or use `int(read(path))` (0 for none)",
        );
    }
}

/// Whether `e` is `OP or ...`: an operation with a fallback (not a boolean `or`).
pub(super) fn is_fallback(e: &Expr) -> bool {
    match &e.kind {
        ExprKind::Binary(ast::BinOp::Or, a, _) => is_fallible_op(a) || is_fallback(a),
        _ => false,
    }
}

/// `a or b or c` (parsed `(a or b) or c`) as `[a, b, c]`.
fn flatten_or<'e>(e: &'e Expr, out: &mut Vec<&'e Expr>) {
    match &e.kind {
        ExprKind::Binary(ast::BinOp::Or, a, b) if is_fallback(e) => {
            flatten_or(a, out);
            out.push(b);
        }
        _ => out.push(e),
    }
}

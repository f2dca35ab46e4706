//! Statements of procedures and actors: control flow, sections, locks, `try`/`finally`,
//! `match` on operation results, and the steps that statements are.

use super::calls::is_fallible_op;
use super::{Cx, Fx, LoopCx, Open};
use crate::ast::{self, Expr, ExprKind, Ident, Pattern, Stmt, StmtKind};
use crate::diag::Span;
use crate::ir::*;

/// How many `finally` blocks a `try` may be nested in (each level doubles the code).
const MAX_TRY_IN_FINALLY: u32 = 4;

impl Cx<'_> {
    pub(super) fn lower_proc(&mut self, name: &str, params: &[&Ident], body: &[Stmt]) -> Proc {
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

    pub(super) fn block(&mut self, fx: &mut Fx, stmts: &[Stmt]) {
        fx.scopes.push(vec![]);
        for s in stmts {
            self.stmt(fx, s);
        }
        fx.scopes.pop();
    }

    /// Leaves what `break`, `continue` or `return` jumps out of, innermost first: sections,
    /// `with` locks, and `try`s, whose `finally` blocks run inline here.
    pub(super) fn leave_sections(&mut self, fx: &mut Fx, down_to: usize) {
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
    pub(super) fn try_stmt(&mut self, fx: &mut Fx, span: Span, body: &[Stmt], fin: &ast::Block) {
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
    pub(super) fn finally_block(&mut self, fx: &mut Fx, fin: &ast::Block, scopes: usize) {
        let hidden = fx.scopes.split_off(scopes.min(fx.scopes.len()));
        let loops = std::mem::take(&mut fx.loops);
        fx.in_finally += 1;
        self.block(fx, fin);
        fx.in_finally -= 1;
        fx.loops = loops;
        fx.scopes.extend(hidden);
    }

    pub(super) fn stmt(&mut self, fx: &mut Fx, s: &Stmt) {
        match &s.kind {
            StmtKind::Let(name, e) => {
                let v = self.expr(fx, e);
                let r = fx.reg();
                fx.emit(Instr::Eval { dst: r, e: v });
                fx.bind(&name.name, r);
            }
            StmtKind::Assign(name, e) => self.assign_stmt(fx, name, e),
            StmtKind::Set(name, e) => self.set_stmt(fx, s, name, e),
            StmtKind::If(cond, then, els) => self.if_stmt(fx, cond, then, els.as_deref()),
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
            StmtKind::Break | StmtKind::Continue => self.break_or_continue(fx, s),
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
            StmtKind::Sleep(e) | StmtKind::Work(e) => self.sleep_or_work(fx, s, e),
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
            StmtKind::Assert(cond, msg) => self.assert_stmt(fx, s, cond, msg.as_ref()),
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
            StmtKind::With { lock: name, mode, body } => self.with_stmt(fx, s, name, mode.as_ref(), body),
            StmtKind::On { signal, handler } => self.on_stmt(fx, signal, handler.as_ref()),
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

    /// `name = e`: a variable of the procedure, or a thread-local.
    fn assign_stmt(&mut self, fx: &mut Fx, name: &Ident, e: &Expr) {
        let v = self.expr(fx, e);
        match fx.lookup(&name.name) {
            Some(r) => {
                fx.emit(Instr::Eval { dst: r, e: v });
            }
            None if self.locals.contains_key(&name.name) => {
                let local = self.locals[&name.name];
                fx.emit(Instr::SetLocal { local, e: v });
            }
            None if self.cells.contains_key(&name.name) => self.err(
                name.span,
                format!("`{}` is a shared cell", name.name),
                "a cell",
                format!(
                    "write a cell with `set {} = ...`; that is a step",
                    name.name
                ),
            ),
            None => self.err(
                name.span,
                format!("assignment to undeclared variable `{}`", name.name),
                "not declared",
                format!("declare it first: `let {} = ...`", name.name),
            ),
        }
    }

    /// `set cell = e`: a step.
    fn set_stmt(&mut self, fx: &mut Fx, s: &Stmt, name: &Ident, e: &Expr) {
        let v = self.expr(fx, e);
        match self.cells.get(&name.name) {
            Some(&id) => {
                let label = self.label(s.span);
                fx.emit(Instr::Op {
                    dst: None,
                    op: Op::CellSet(id),
                    args: vec![v],
                    catch: false,
                    label,
                });
            }
            None => self.err(
                name.span,
                format!("unknown cell `{}`", name.name),
                "not a cell",
                "declare it at the top level: `cell NAME = initial value`",
            ),
        }
    }

    /// `if cond { then } else { els }`.
    fn if_stmt(&mut self, fx: &mut Fx, cond: &Expr, then: &[Stmt], els: Option<&[Stmt]>) {
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

    /// `break` or `continue`: leaves the sections opened inside the loop, then jumps.
    fn break_or_continue(&mut self, fx: &mut Fx, s: &Stmt) {
        let is_break = matches!(s.kind, StmtKind::Break);
        let kw = if is_break { "break" } else { "continue" };
        if fx.in_finally > 0 && fx.loops.is_empty() {
            self.err(s.span, format!("`{kw}` cannot leave a `finally` block"), "leaves the finally block", "a `finally` block runs to its end (it may be running because of a failure that must go on); put the loop inside it, or move the `break` out of it");
            return;
        }
        let Some(l) = fx.loops.last() else {
            self.err(
                s.span,
                format!("`{kw}` outside of a loop"),
                "not in a loop",
                "`break` and `continue` belong inside `loop { ... }` or `while COND { ... }`",
            );
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

    /// `sleep D` or `work D`, D a duration or `between(lo, hi)`: a step.
    fn sleep_or_work(&mut self, fx: &mut Fx, s: &Stmt, e: &Expr) {
        let op = if matches!(s.kind, StmtKind::Sleep(_)) {
            Op::Sleep
        } else {
            Op::Work
        };
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
        fx.emit(Instr::Op {
            dst: None,
            op,
            args,
            catch: false,
            label,
        });
    }

    /// `assert cond, msg`: fails the actor with the message (or the condition as written).
    fn assert_stmt(&mut self, fx: &mut Fx, s: &Stmt, cond: &Expr, msg: Option<&Expr>) {
        let c = self.expr(fx, cond);
        let text = self.src[cond.span.start..cond.span.end].to_string();
        let msg = match msg {
            Some(m) => self.expr(fx, m),
            None => PExpr::Const(Value::str(&format!("assertion failed: {text}"))),
        };
        let j = fx.emit(Instr::JumpIfNot(PExpr::Not(Box::new(c)), 0));
        let label = self.label(s.span);
        fx.emit(Instr::Fail {
            kind: FailKind::Assertion,
            msg,
            label,
        });
        let pc = fx.pc();
        fx.patch(j, pc);
    }

    /// `with lock { body }`: acquire, the body, and a release on every way out.
    fn with_stmt(
        &mut self,
        fx: &mut Fx,
        s: &Stmt,
        name: &Ident,
        mode: Option<&Ident>,
        body: &[Stmt],
    ) {
        let Some((lock, lmode)) = self.lock_id(name, mode) else {
            return;
        };
        let head = Span::new(s.span.start, name.span.end);
        let label = self.label(head);
        fx.emit(Instr::Op {
            dst: None,
            op: Op::Acquire { lock, mode: lmode },
            args: vec![],
            catch: false,
            label,
        });
        let release = self.labels.len() as u32;
        self.labels.push(Label {
            text: format!("release {} (end of with)", name.name),
            line: self.line_of(s.span.end.saturating_sub(1)),
            file: self.library_of(s.span.start),
        });
        fx.open_sections.push(Open::Lock(lock, release));
        self.block(fx, body);
        fx.open_sections.pop();
        fx.emit(Instr::Op {
            dst: None,
            op: Op::Release { lock },
            args: vec![],
            catch: false,
            label: release,
        });
    }

    /// `on SIGNAL call handler(args)` or `on SIGNAL default`.
    fn on_stmt(&mut self, fx: &mut Fx, signal: &Ident, handler: Option<&(Ident, Vec<Expr>)>) {
        let Some(sig) = self.signal(signal) else {
            return;
        };
        match handler {
            None => {
                fx.emit(Instr::Handle {
                    signal: sig,
                    proc: None,
                    args: vec![],
                });
            }
            Some((name, args)) => match self.procs.get(&name.name).copied() {
                Some((id, arity)) if arity == args.len() => {
                    let vals = args.iter().map(|a| self.expr(fx, a)).collect();
                    fx.emit(Instr::Handle {
                        signal: sig,
                        proc: Some(id),
                        args: vals,
                    });
                }
                Some((_, arity)) => self.err(
                    name.span,
                    format!(
                        "handler `{}` takes {arity} arguments, not {}",
                        name.name,
                        args.len()
                    ),
                    "wrong number of arguments",
                    "the arguments are bound when the handler is installed",
                ),
                None => self.err(
                    name.span,
                    format!("unknown procedure `{}`", name.name),
                    "not a procedure",
                    "a handler is a procedure: `proc handler(args) { ... }`",
                ),
            },
        }
    }

    pub(super) fn close_loop(&mut self, fx: &mut Fx) {
        let l = fx.loops.pop().expect("a loop is open");
        let end = fx.pc();
        for b in l.breaks {
            fx.patch(b, end);
        }
    }

    /// `op ignore E1, E2`: exactly `match op { ok => {} err(E1) => {} err(E2) => {} }`.
    pub(super) fn ignore_stmt(&mut self, fx: &mut Fx, op: &Expr, errnos: &[Ident], keyword: Span) {
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

    pub(super) fn match_stmt(&mut self, fx: &mut Fx, scrutinee: &Expr, arms: &[ast::Arm]) {
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
                Pattern::Wildcard => {
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
}

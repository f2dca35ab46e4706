//! Statements and blocks, with recovery to the next statement after an error.

use super::{PResult, Parser};
use crate::ast::*;
use crate::lexer::Tok;

impl Parser<'_> {
    pub(super) fn block(&mut self) -> PResult<Block> {
        let open = self.peek().span;
        self.enter(open)?;
        let b = self.block_inner();
        self.leave();
        b
    }

    pub(super) fn block_inner(&mut self) -> PResult<Block> {
        self.expect_punct("{", "a block is written in braces")?;
        let mut stmts = Vec::new();
        let mut failed = false;
        while !self.at_punct("}") && !self.at_eof() {
            let before = self.pos;
            match self.stmt() {
                Ok(s) => stmts.push(s),
                Err(()) => {
                    failed = true;
                    self.sync_stmt(before);
                }
            }
            if self.at_punct(";") {
                self.bump();
            }
        }
        if self.at_eof() {
            let span = self.peek().span;
            self.error(
                span,
                "unexpected end of file",
                "a block is not closed",
                "add the missing `}`",
            );
            return Err(());
        }
        self.bump();
        // An error inside was reported already; the block itself is well-formed.
        let _ = failed;
        Ok(stmts)
    }

    /// After an error in a statement, skips to the start of the next line or the closing brace.
    pub(super) fn sync_stmt(&mut self, start: usize) {
        if self.pos == start && !self.at_punct("}") {
            self.bump();
        }
        let mut depth = 0i32;
        loop {
            let t = self.peek().clone();
            match &t.tok {
                Tok::Eof => return,
                Tok::Punct("{") | Tok::Punct("(") => depth += 1,
                Tok::Punct("}") | Tok::Punct(")") => {
                    if depth == 0 {
                        return;
                    }
                    depth -= 1;
                }
                _ if depth == 0 && t.nl_before && self.pos != start => return,
                _ => {}
            }
            self.bump();
        }
    }

    pub(super) fn stmt(&mut self) -> PResult<Stmt> {
        let t = self.peek().clone();
        let start = t.span;
        let kw = if let Tok::Ident(s) = &t.tok {
            s.clone()
        } else {
            String::new()
        };
        let kind = match kw.as_str() {
            "let" => {
                self.bump();
                let name = self.ident("a variable name")?;
                self.expect_punct("=", "write `let NAME = value`")?;
                StmtKind::Let(name, self.expr()?)
            }
            "set" => self.set_stmt()?,
            "for" if self.next_is_word_on_same_line() => self.for_stmt()?,
            "if" => self.if_stmt()?,
            "loop" => {
                self.bump();
                StmtKind::Loop(self.block()?)
            }
            "while" => {
                self.bump();
                let cond = self.expr()?;
                StmtKind::While(cond, self.block()?)
            }
            "break" => {
                self.bump();
                StmtKind::Break
            }
            "continue" => {
                self.bump();
                StmtKind::Continue
            }
            "return" => self.return_stmt()?,
            "match" => self.match_stmt()?,
            "sleep" => {
                self.bump();
                StmtKind::Sleep(self.expr()?)
            }
            "work" => {
                self.bump();
                StmtKind::Work(self.expr()?)
            }
            "append" => {
                self.bump();
                let log = self.ident("a log name")?;
                StmtKind::Append(log, self.expr()?)
            }
            "critical" => {
                self.bump();
                let name = self.ident("a section name")?;
                StmtKind::Critical(name, self.block()?)
            }
            "assert" => {
                self.bump();
                let cond = self.expr()?;
                let msg = if self.at_punct(",") {
                    self.bump();
                    Some(self.expr()?)
                } else {
                    None
                };
                StmtKind::Assert(cond, msg)
            }
            "fail" => {
                self.bump();
                StmtKind::Fail(self.expr()?)
            }
            // Lock and signal statements are recognised by their shape, so that `release` or
            // `with` stay usable as variable names (`let release = releasetime()`).
            "acquire" | "release" | "with" if self.next_is_word_on_same_line() => {
                self.lock_stmt(&kw)?
            }
            "on" if self.next_is_word_on_same_line() => self.on_stmt()?,
            "try" if matches!(self.peek_at(1).tok, Tok::Punct("{")) => self.try_stmt()?,
            "exit" if self.next_ends_statement() => {
                self.bump();
                StmtKind::Exit
            }
            _ if matches!(t.tok, Tok::Ident(_))
                && matches!(self.peek_at(1).tok, Tok::Punct("=")) =>
            {
                let name = self.ident("a variable name")?;
                self.bump();
                StmtKind::Assign(name, self.expr()?)
            }
            _ => {
                let e = self.expr()?;
                if self.at_kw("ignore") && !self.peek().nl_before {
                    self.ignore(e)?
                } else if self.at_punct("=") && !self.peek().nl_before {
                    self.assign_at(e)?
                } else {
                    StmtKind::Expr(e)
                }
            }
        };
        Ok(Stmt {
            kind,
            span: start.to(self.prev_span()),
        })
    }

    /// `set CELL = value` or `set CELL[key] = value`.
    fn set_stmt(&mut self) -> PResult<StmtKind> {
        self.bump();
        let name = self.ident("a cell name")?;
        if self.at_punct("[") && !self.peek().nl_before {
            let (key, _) = self.index_key()?;
            self.expect_punct("=", "write `set CELL[key] = value`")?;
            Ok(StmtKind::SetAt {
                cell: name,
                key,
                value: self.expr()?,
            })
        } else {
            self.expect_punct("=", "write `set CELL = value` or `set CELL[key] = value`")?;
            Ok(StmtKind::Set(name, self.expr()?))
        }
    }

    /// `return` or `return value`: a value only on the same line.
    fn return_stmt(&mut self) -> PResult<StmtKind> {
        self.bump();
        let next = self.peek();
        let value =
            if next.nl_before || matches!(next.tok, Tok::Punct("}") | Tok::Punct(";") | Tok::Eof) {
                None
            } else {
                Some(self.expr()?)
            };
        Ok(StmtKind::Return(value))
    }

    /// `acquire [MODE] LOCK`, `release LOCK` or `with [MODE] LOCK { ... }`; `kw` says which.
    fn lock_stmt(&mut self, kw: &str) -> PResult<StmtKind> {
        self.bump();
        let mode = if kw != "release"
            && matches!(&self.peek().tok, Tok::Ident(m) if m == "read" || m == "write")
            && matches!(self.peek_at(1).tok, Tok::Ident(_))
        {
            Some(self.ident("a lock mode")?)
        } else {
            None
        };
        let lock = self.ident("a lock name")?;
        Ok(match kw {
            "acquire" => StmtKind::Acquire { lock, mode },
            "release" => StmtKind::Release(lock),
            _ => StmtKind::With {
                lock,
                mode,
                body: self.block()?,
            },
        })
    }

    /// `on SIGNAL call handler(args)` or `on SIGNAL default`.
    fn on_stmt(&mut self) -> PResult<StmtKind> {
        self.bump();
        let signal = self.ident("a signal name such as TERM")?;
        if self.at_kw("default") {
            self.bump();
            Ok(StmtKind::On {
                signal,
                handler: None,
            })
        } else if self.at_kw("call") {
            self.bump();
            let name = self.ident("a handler procedure")?;
            self.expect_punct("(", "write `on TERM call handler(args)`")?;
            let mut args = Vec::new();
            while !self.at_punct(")") {
                args.push(self.expr()?);
                if !self.at_punct(")") {
                    self.expect_punct(",", "separate arguments with commas")?;
                }
            }
            self.bump();
            Ok(StmtKind::On {
                signal,
                handler: Some((name, args)),
            })
        } else {
            let t = self.peek().clone();
            self.error(
                t.span,
                format!(
                    "expected `call` or `default`, found {}",
                    Self::describe(&t.tok)
                ),
                "expected a handler",
                "write `on TERM call handler(args)` or `on TERM default`",
            );
            Err(())
        }
    }

    /// `try { ... } finally { ... }`.
    fn try_stmt(&mut self) -> PResult<StmtKind> {
        self.bump();
        let body = self.block()?;
        if !self.at_kw("finally") {
            let t = self.peek().clone();
            self.error(
                t.span,
                format!("expected `finally` after the `try` block, found {}", Self::describe(&t.tok)),
                "expected `finally { ... }`",
                "write `try { ... } finally { ... }`: the finally block runs however the try block is left, except by a crash",
            );
            return Err(());
        }
        self.bump();
        Ok(StmtKind::Try {
            body,
            finally: self.block()?,
        })
    }

    /// `OP ignore ENOENT, EEXIST` after the operation `op`.
    pub(super) fn ignore(&mut self, op: Expr) -> PResult<StmtKind> {
        let keyword = self.bump().span;
        let mut errnos = Vec::new();
        loop {
            let t = self.peek().clone();
            match &t.tok {
                Tok::Ident(name) if !t.nl_before => {
                    self.bump();
                    errnos.push(Ident {
                        name: name.clone(),
                        span: t.span,
                    });
                }
                other => {
                    self.error(
                        if t.nl_before { keyword } else { t.span },
                        format!(
                            "expected an errno such as ENOENT after `ignore`, found {}",
                            if t.nl_before {
                                "the end of the line".to_string()
                            } else {
                                Self::describe(other)
                            }
                        ),
                        "expected the errors to ignore",
                        "write `unlink(path) ignore ENOENT` or `link(a, b) ignore EEXIST, ENOENT`",
                    );
                    return Err(());
                }
            }
            if !self.at_punct(",") || self.peek().nl_before {
                break;
            }
            self.bump();
        }
        Ok(StmtKind::Ignore {
            op,
            errnos,
            keyword,
        })
    }

    /// True when the token after the current one is a name on the same line.
    pub(super) fn next_is_word_on_same_line(&self) -> bool {
        let next = self.peek_at(1);
        matches!(next.tok, Tok::Ident(_)) && !next.nl_before
    }

    /// True when the current token is the whole statement (a line, `}` or `;` follows).
    pub(super) fn next_ends_statement(&self) -> bool {
        let next = self.peek_at(1);
        next.nl_before || matches!(next.tok, Tok::Punct("}") | Tok::Punct(";") | Tok::Eof)
    }

    pub(super) fn if_stmt(&mut self) -> PResult<StmtKind> {
        self.bump();
        let cond = self.expr()?;
        let then = self.block()?;
        let els = if self.at_kw("else") {
            self.bump();
            if self.at_kw("if") {
                let start = self.peek().span;
                // `else if` chains nest in the tree, so they count as nesting too.
                self.enter(start)?;
                let kind = self.if_stmt();
                self.leave();
                let kind = kind?;
                Some(vec![Stmt {
                    kind,
                    span: start.to(self.prev_span()),
                }])
            } else {
                Some(self.block()?)
            }
        } else {
            None
        };
        Ok(StmtKind::If(cond, then, els))
    }

    pub(super) fn match_stmt(&mut self) -> PResult<StmtKind> {
        let start = self.bump().span;
        // An arm's body may be a bare statement (`ok => match ...`), which nests without a block.
        self.enter(start)?;
        let m = self.match_inner();
        self.leave();
        m
    }

    pub(super) fn match_inner(&mut self) -> PResult<StmtKind> {
        let scrutinee = self.expr()?;
        self.expect_punct(
            "{",
            "write `match EXPR { ok(x) => ..., err(ENOENT) => ... }`",
        )?;
        let mut arms = Vec::new();
        while !self.at_punct("}") && !self.at_eof() {
            let start = self.peek().span;
            let before = self.pos;
            let arm = (|| -> PResult<Arm> {
                let pat = self.pattern()?;
                self.expect_punct("=>", "each arm is written `PATTERN => { ... }`")?;
                let body = if self.at_punct("{") {
                    self.block()?
                } else {
                    vec![self.stmt()?]
                };
                Ok(Arm {
                    pat,
                    body,
                    span: start.to(self.prev_span()),
                })
            })();
            match arm {
                Ok(a) => arms.push(a),
                Err(()) => self.sync_stmt(before),
            }
            if self.at_punct(",") {
                self.bump();
            }
        }
        self.expect_punct("}", "close the match")?;
        Ok(StmtKind::Match(scrutinee, arms))
    }

    pub(super) fn pattern(&mut self) -> PResult<Pattern> {
        let t = self.peek().clone();
        match &t.tok {
            Tok::Ident(s) if s == "_" => {
                self.bump();
                Ok(Pattern::Wildcard)
            }
            Tok::Ident(s) if s == "ok" || s == "err" => {
                let is_ok = s == "ok";
                self.bump();
                let inner = if self.at_punct("(") {
                    self.bump();
                    let id = self.ident(if is_ok {
                        "a name for the value"
                    } else {
                        "an errno such as ENOENT, or a name"
                    })?;
                    self.expect_punct(")", "close the pattern")?;
                    Some(id)
                } else {
                    None
                };
                Ok(if is_ok {
                    Pattern::Ok(inner)
                } else {
                    Pattern::Err(inner)
                })
            }
            _ => Ok(Pattern::Lit(self.unary()?)),
        }
    }
}

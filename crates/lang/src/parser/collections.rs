//! Parsing of lists, maps, indexing, `for` and entry assignment (`t[k] = v`).

use super::{PResult, Parser, STATEMENT_KEYWORDS};
use crate::ast::*;
use crate::diag::Span;
use crate::lexer::Tok;

impl Parser<'_> {
    /// `for NAME in EXPR { ... }`.
    pub(super) fn for_stmt(&mut self) -> PResult<StmtKind> {
        self.bump();
        let var = self.ident("a loop variable")?;
        if !self.at_kw("in") {
            let t = self.peek().clone();
            self.error(
                t.span,
                format!("expected `in`, found {}", Self::describe(&t.tok)),
                "expected `in`",
                "write `for x in list { ... }` or `for key in map { ... }`",
            );
            return Err(());
        }
        self.bump();
        let iter = self.expr()?;
        Ok(StmtKind::For {
            var,
            iter,
            body: self.block()?,
        })
    }

    /// `target = value` where `target` (already parsed) must be `name[key]`.
    pub(super) fn assign_at(&mut self, target: Expr) -> PResult<StmtKind> {
        let eq = self.bump().span;
        let ExprKind::Index(coll, key) = target.kind else {
            self.error(
                target.span.to(eq),
                "only a variable or one entry of it can be assigned",
                "not assignable",
                "write `name = value` or `name[key] = value`",
            );
            return Err(());
        };
        let ExprKind::Name(name) = coll.kind else {
            let (msg, help) = if matches!(coll.kind, ExprKind::Index(..)) {
                (
                    "only one level of a variable's entries can be assigned",
                    "take the inner value out, change it, and put it back: `let row = t[a]` `row[b] = v` `t[a] = row`",
                )
            } else {
                (
                    "only an entry of a variable can be assigned",
                    "bind the value first: `let t = ...` then `t[key] = value`",
                )
            };
            self.error(coll.span, msg, "not a variable", help);
            return Err(());
        };
        Ok(StmtKind::AssignAt {
            name,
            key: *key,
            value: self.expr()?,
        })
    }

    /// `[ key ]` after a list or map, and the key's height.
    pub(super) fn index_key(&mut self) -> PResult<(Expr, usize)> {
        let open = self.bump().span;
        if self.at_punct("]") {
            let t = self.peek().clone();
            self.error(
                open.to(t.span),
                "empty index `[]`",
                "expected an index or a key",
                "write `list[0]` or `table[pid]`",
            );
            return Err(());
        }
        self.enter(open)?;
        let key = self.expr();
        self.leave();
        let key = key?;
        let height = self.height;
        self.expect_punct("]", "close the index with `]`: `list[i]`, `table[key]`")?;
        Ok((key, height))
    }

    /// `[a, b, c]` (the `[` is next): a list literal; elements may span lines, with an
    /// optional trailing comma.
    pub(super) fn list_literal(&mut self) -> PResult<Expr> {
        let open = self.bump().span;
        self.enter(open)?;
        let items = self.comma_list(open, "]", "a list's elements", |p| p.expr());
        self.leave();
        let (items, height) = items?;
        self.height = height + 1;
        Ok(Expr {
            kind: ExprKind::List(items),
            span: open.to(self.prev_span()),
        })
    }

    /// `map { key: value, ... }` (the `map` is next): a map literal.
    pub(super) fn map_literal(&mut self) -> PResult<Expr> {
        let kw = self.bump().span;
        self.expect_punct(
            "{",
            "a map is written `map { key: value, ... }`; `map {}` is the empty map",
        )?;
        self.enter(kw)?;
        let entries = self.comma_list(kw, "}", "a map's entries", |p| {
            let key = p.expr()?;
            let h = p.height;
            p.expect_punct(":", "a map's entries are written `key: value`")?;
            let value = p.expr()?;
            p.height = p.height.max(h);
            Ok((key, value))
        });
        self.leave();
        let (entries, height) = entries?;
        self.height = height + 1;
        Ok(Expr {
            kind: ExprKind::Map(entries),
            span: kw.to(self.prev_span()),
        })
    }

    /// Items separated by commas (a trailing one allowed) up to and including `close`, and the
    /// tallest item's height.
    pub(super) fn comma_list<T>(
        &mut self,
        open: Span,
        close: &str,
        what: &str,
        mut item: impl FnMut(&mut Self) -> PResult<T>,
    ) -> PResult<(Vec<T>, usize)> {
        let mut items = Vec::new();
        let mut height = 0;
        while !self.at_punct(close) {
            if self.at_eof() {
                let span = self.peek().span;
                self.error(
                    span,
                    "unexpected end of file",
                    format!("{what} are not closed"),
                    format!("add the `{close}`"),
                );
                return Err(());
            }
            let ok = match item(self) {
                Ok(x) => {
                    items.push(x);
                    height = height.max(self.height);
                    if self.at_punct(close) || self.at_punct(",") {
                        if self.at_punct(",") {
                            self.bump();
                        }
                        true
                    } else {
                        self.unclosed(open, close, what);
                        false
                    }
                }
                Err(()) => false,
            };
            if !ok {
                self.skip_to_close(close);
                return Err(());
            }
        }
        self.bump();
        Ok((items, height))
    }

    /// An element of a literal is followed by neither `,` nor `close`: a new line that starts a
    /// statement means the literal was never closed (said at its start), anything else a
    /// missing comma.
    pub(super) fn unclosed(&mut self, open: Span, close: &str, what: &str) {
        let t = self.peek().clone();
        let new_statement = t.nl_before
            && matches!(&t.tok, Tok::Ident(s) if STATEMENT_KEYWORDS.contains(&s.as_str()))
            || matches!(t.tok, Tok::Eof | Tok::Punct("}" | ")" | "]"));
        if new_statement {
            self.error(
                open,
                format!("{what} are never closed"),
                format!("no `{close}` closes this"),
                format!(
                    "close them with `{close}` before {}",
                    Self::describe(&t.tok)
                ),
            );
        } else {
            self.error(
                t.span,
                format!(
                    "expected `,` or `{close}`, found {}",
                    Self::describe(&t.tok)
                ),
                format!("expected `,` or `{close}` here"),
                format!("separate {what} with commas, and close them with `{close}`"),
            );
        }
    }

    /// After an error inside a list or map literal, skips past its `close`, so that statement
    /// recovery does not take the literal's `}` for the end of the block. Stops early at a
    /// closing bracket it did not see open, or at a statement starting a line (the literal was
    /// never closed).
    pub(super) fn skip_to_close(&mut self, close: &str) {
        let mut depth = 0usize;
        loop {
            let t = self.peek().clone();
            match &t.tok {
                Tok::Eof => return,
                Tok::Punct("{" | "(" | "[") => depth += 1,
                Tok::Punct(p @ ("}" | ")" | "]")) => {
                    if depth == 0 {
                        if *p == close {
                            self.bump();
                        }
                        return;
                    }
                    depth -= 1;
                }
                Tok::Ident(s)
                    if depth == 0 && t.nl_before && STATEMENT_KEYWORDS.contains(&s.as_str()) =>
                {
                    return
                }
                _ => {}
            }
            self.bump();
        }
    }
}

//! Expressions: operators by precedence, postfix calls and fields, literals, and interpolation
//! inside strings (parsed by a sub-parser over the braces' text).

use super::{PResult, Parser, KEYWORDS};
use crate::ast::*;
use crate::lexer::{lex, Tok};
use crate::span::Span;

impl Parser<'_> {
    pub(crate) fn expr(&mut self) -> PResult<Expr> {
        self.binary(0)
    }

    pub(super) fn binop(&self) -> Option<(BinOp, u8)> {
        let t = &self.peek().tok;
        Some(match t {
            Tok::Ident(s) if s == "or" => (BinOp::Or, 1),
            Tok::Ident(s) if s == "and" => (BinOp::And, 2),
            Tok::Ident(s) if s == "in" => (BinOp::In, 3),
            // `x not in xs`, Python's spelling; `not` anywhere else starts an operand.
            Tok::Ident(s)
                if s == "not" && matches!(&self.peek_at(1).tok, Tok::Ident(w) if w == "in") =>
            {
                (BinOp::NotIn, 3)
            }
            Tok::Punct("==") => (BinOp::Eq, 3),
            Tok::Punct("!=") => (BinOp::Ne, 3),
            Tok::Punct("<") => (BinOp::Lt, 3),
            Tok::Punct("<=") => (BinOp::Le, 3),
            Tok::Punct(">") => (BinOp::Gt, 3),
            Tok::Punct(">=") => (BinOp::Ge, 3),
            Tok::Punct("+") => (BinOp::Add, 4),
            Tok::Punct("-") => (BinOp::Sub, 4),
            Tok::Punct("*") => (BinOp::Mul, 5),
            Tok::Punct("/") => (BinOp::Div, 5),
            Tok::Punct("%") => (BinOp::Rem, 5),
            _ => return None,
        })
    }

    pub(super) fn binary(&mut self, min: u8) -> PResult<Expr> {
        let mut lhs = self.unary()?;
        let mut lhs_height = self.height;
        while let Some((op, prec)) = self.binop() {
            if prec <= min {
                break;
            }
            let mut op_span = self.bump().span;
            if op == BinOp::NotIn {
                op_span = op_span.to(self.bump().span);
            }
            let rhs = self.binary(prec)?;
            // A chain `a + b + c ...` grows the tree's height without recursing here.
            lhs_height = lhs_height.max(self.height) + 1;
            self.check_nesting(op_span, lhs_height)?;
            let span = lhs.span.to(rhs.span);
            lhs = Expr {
                kind: ExprKind::Binary(op, Box::new(lhs), Box::new(rhs)),
                span,
            };
        }
        if self.at_kw("not") && !self.peek().nl_before && min < 3 {
            // `x not y`: an operand then `not` on one line is a half-written `not in`.
            let t = self.peek().clone();
            self.error(
                t.span,
                "`not` after a value: only `not in` can follow one",
                "expected `not in`",
                "write `x not in xs` for membership, or `not x` to negate",
            );
            return Err(());
        }
        self.height = lhs_height;
        Ok(lhs)
    }

    pub(super) fn unary(&mut self) -> PResult<Expr> {
        let t = self.peek().clone();
        if matches!(t.tok, Tok::Punct("-")) {
            self.bump();
            self.enter(t.span)?;
            let e = self.unary();
            self.leave();
            let e = e?;
            self.height += 1;
            let span = t.span.to(e.span);
            return Ok(Expr {
                kind: ExprKind::Unary(UnOp::Neg, Box::new(e)),
                span,
            });
        }
        if matches!(&t.tok, Tok::Ident(s) if s == "not") {
            self.bump();
            // `not` binds looser than comparisons: `not a == b` is `not (a == b)`.
            self.enter(t.span)?;
            let e = self.binary(2);
            self.leave();
            let e = e?;
            self.height += 1;
            let span = t.span.to(e.span);
            return Ok(Expr {
                kind: ExprKind::Unary(UnOp::Not, Box::new(e)),
                span,
            });
        }
        self.postfix()
    }

    pub(super) fn postfix(&mut self) -> PResult<Expr> {
        let mut e = self.primary()?;
        let mut height = self.height;
        loop {
            if self.at_punct(".") {
                let dot = self.bump().span;
                height += 1;
                self.check_nesting(dot, height)?;
                let field = self.ident("a field name")?;
                let span = e.span.to(field.span);
                e = Expr {
                    kind: ExprKind::Field(Box::new(e), field),
                    span,
                };
            } else if self.at_punct("[") && !self.peek().nl_before {
                // On the same line only: a `[` that starts a line begins a list, not an index.
                let (key, key_height) = self.index_key()?;
                height = height.max(key_height) + 1;
                self.check_nesting(key.span, height)?;
                let span = e.span.to(self.prev_span());
                e = Expr {
                    kind: ExprKind::Index(Box::new(e), Box::new(key)),
                    span,
                };
            } else {
                break;
            }
        }
        self.height = height;
        Ok(e)
    }

    pub(super) fn primary(&mut self) -> PResult<Expr> {
        let t = self.peek().clone();
        self.height = 1;
        let kind = match &t.tok {
            Tok::Int(n) => ExprKind::Int(*n),
            Tok::Duration(ms) => ExprKind::Duration(*ms),
            Tok::Str(_) => {
                self.bump();
                let parts = self.interpolate(t.span)?;
                let inner = parts
                    .iter()
                    .map(|p| match p {
                        StrPart::Expr(e) => expr_height(e),
                        StrPart::Lit(_) => 0,
                    })
                    .max()
                    .unwrap_or(0);
                self.height = inner + 1;
                self.check_nesting(t.span, self.height)?;
                return Ok(Expr {
                    kind: ExprKind::Str(parts),
                    span: t.span,
                });
            }
            Tok::Punct("[") => return self.list_literal(),
            Tok::Ident(s) if s == "map" => return self.map_literal(),
            Tok::Punct("(") => {
                self.bump();
                self.enter(t.span)?;
                let e = self.expr();
                self.leave();
                let e = e?;
                self.expect_punct(")", "close the parenthesis")?;
                return Ok(Expr {
                    kind: e.kind,
                    span: t.span.to(self.prev_span()),
                });
            }
            Tok::Ident(s) => match s.as_str() {
                "true" => ExprKind::Bool(true),
                "false" => ExprKind::Bool(false),
                "none" => ExprKind::None,
                s if KEYWORDS.contains(&s) => {
                    self.error(
                        t.span,
                        format!("expected an expression, found keyword `{s}`"),
                        "expected an expression",
                        "statements such as `let` or `if` start a line of their own",
                    );
                    return Err(());
                }
                _ => {
                    let name = self.ident("a name")?;
                    if self.at_punct("(") && self.peek().span.start == name.span.end {
                        self.bump();
                        self.enter(name.span)?;
                        let args = self.call_args();
                        self.leave();
                        let (args, height) = args?;
                        self.height = height + 1;
                        let span = name.span.to(self.prev_span());
                        return Ok(Expr {
                            kind: ExprKind::Call(name, args),
                            span,
                        });
                    }
                    return Ok(Expr {
                        span: name.span,
                        kind: ExprKind::Name(name),
                    });
                }
            },
            other => {
                self.error(t.span, format!("expected an expression, found {}", Self::describe(other)), "expected an expression", "an expression is a value, a name, a call like `stat(path)`, or an operation on those");
                return Err(());
            }
        };
        self.bump();
        Ok(Expr { kind, span: t.span })
    }

    /// A call's arguments after its `(`, through the `)`, and the tallest argument's height.
    pub(super) fn call_args(&mut self) -> PResult<(Vec<Expr>, usize)> {
        let mut args = Vec::new();
        let mut height = 0;
        while !self.at_punct(")") {
            args.push(self.expr()?);
            height = height.max(self.height);
            if !self.at_punct(")") {
                self.expect_punct(",", "separate arguments with commas")?;
            }
        }
        self.bump();
        Ok((args, height))
    }

    /// Splits a string literal into text and `{expr}` parts, parsing each expression in place.
    pub(super) fn interpolate(&mut self, span: Span) -> PResult<Vec<StrPart>> {
        let raw_start = span.start + 1;
        let raw_end = if span.end > raw_start && self.src[..span.end].ends_with('"') {
            span.end - 1
        } else {
            span.end
        };
        let raw = &self.src[raw_start..raw_end.max(raw_start)];
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut i = 0;
        let bytes = raw.as_bytes();
        while i < bytes.len() {
            match bytes[i] {
                b'{' if bytes.get(i + 1) == Some(&b'{') => {
                    lit.push('{');
                    i += 2;
                }
                b'}' if bytes.get(i + 1) == Some(&b'}') => {
                    lit.push('}');
                    i += 2;
                }
                b'{' => {
                    let Some(close) = raw[i..].find('}') else {
                        let s = Span::new(raw_start + i, raw_start + i + 1);
                        self.error(
                            s,
                            "unclosed `{` in string",
                            "interpolation starts here",
                            "close it with `}`, or write `{{` for a literal brace",
                        );
                        return Err(());
                    };
                    let inner_start = raw_start + i + 1;
                    let inner_end = raw_start + i + close;
                    if !lit.is_empty() {
                        parts.push(StrPart::Lit(std::mem::take(&mut lit)));
                    }
                    parts.push(StrPart::Expr(self.sub_expr(inner_start, inner_end)?));
                    i += close + 1;
                }
                b'\\' => {
                    let next = raw[i + 1..].chars().next();
                    match next {
                        Some('n') => lit.push('\n'),
                        Some('t') => lit.push('\t'),
                        Some(c) => lit.push(c),
                        None => {}
                    }
                    i += 1 + next.map_or(0, char::len_utf8);
                }
                _ => {
                    let c = raw[i..].chars().next().unwrap_or('\0');
                    lit.push(c);
                    i += c.len_utf8().max(1);
                }
            }
        }
        if !lit.is_empty() || parts.is_empty() {
            parts.push(StrPart::Lit(lit));
        }
        Ok(parts)
    }

    pub(super) fn sub_expr(&mut self, start: usize, end: usize) -> PResult<Expr> {
        let mut inner_diags = Vec::new();
        let mut toks = lex(&self.src[start..end], &mut inner_diags);
        for t in &mut toks {
            t.span = Span::new(t.span.start + start, t.span.end + start);
        }
        for d in &mut inner_diags {
            d.span = Span::new(d.span.start + start, d.span.end + start);
        }
        self.diags.extend(inner_diags);
        if toks.len() == 1 {
            self.error(
                Span::new(start.saturating_sub(1), end + 1),
                "empty interpolation `{}`",
                "nothing inside",
                "put an expression inside, or write `{{}}` for literal braces",
            );
            return Err(());
        }
        let mut sub = Parser {
            src: self.src,
            toks,
            pos: 0,
            diags: self.diags,
            depth: self.depth + 1,
            height: 0,
            too_deep: false,
        };
        let e = sub.expr();
        if sub.too_deep {
            self.too_deep = true;
            self.pos = self.toks.len() - 1;
        }
        let e = e?;
        if !sub.at_eof() {
            let t = sub.peek().clone();
            sub.error(
                t.span,
                "unexpected text in interpolation",
                "expected `}`",
                "an interpolation holds one expression",
            );
            return Err(());
        }
        Ok(e)
    }
}

/// The height of an expression's tree (a name is 1). Only used on trees the parser has bounded.
fn expr_height(e: &Expr) -> usize {
    1 + match &e.kind {
        ExprKind::Unary(_, a) | ExprKind::Field(a, _) => expr_height(a),
        ExprKind::Binary(_, a, b) | ExprKind::Index(a, b) => expr_height(a).max(expr_height(b)),
        ExprKind::Call(_, args) | ExprKind::List(args) => {
            args.iter().map(expr_height).max().unwrap_or(0)
        }
        ExprKind::Map(entries) => entries
            .iter()
            .map(|(k, v)| expr_height(k).max(expr_height(v)))
            .max()
            .unwrap_or(0),
        ExprKind::Str(parts) => parts
            .iter()
            .map(|p| match p {
                StrPart::Expr(e) => expr_height(e),
                StrPart::Lit(_) => 0,
            })
            .max()
            .unwrap_or(0),
        _ => 0,
    }
}

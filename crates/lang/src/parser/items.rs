//! Items: the scenario or library itself, imports, declarations, variants and expectations.

use super::{PResult, Parser, ITEM_KEYWORDS};
use crate::ast::*;
use crate::lexer::Tok;

impl Parser<'_> {
    pub(super) fn scenario(&mut self) -> Scenario {
        let mut sc = Scenario::default();
        if !self.at_kw("scenario") && !self.at_kw("library") {
            let t = self.peek().clone();
            self.error(
                t.span,
                format!("expected `scenario`, found {}", Self::describe(&t.tok)),
                "a scenario file starts here",
                "a scenario file is `scenario NAME { ... }` (a library is `library NAME { ... }`)",
            );
            return sc;
        }
        sc.library = self.at_kw("library");
        sc.header = self.bump().span;
        let what = if sc.library { "library" } else { "scenario" };
        sc.name = self.compound_name(&format!("a {what} name")).ok();
        if self
            .expect_punct("{", &format!("the {what}'s body is written in braces"))
            .is_err()
        {
            return sc;
        }
        while !self.at_punct("}") && !self.at_eof() {
            let before = self.pos;
            if self.item(&mut sc).is_err() {
                self.sync_item(before);
            }
        }
        if self.at_eof() {
            let span = self.peek().span;
            self.error(
                span,
                "unexpected end of file",
                format!("the {what} is not closed"),
                format!("add the `}}` that closes `{what} {{ ... }}`"),
            );
            return sc;
        }
        self.bump();
        if !self.at_eof() {
            let t = self.peek().clone();
            self.error(
                t.span,
                format!("text after the end of the {what}"),
                "unexpected",
                format!("a file holds exactly one `{what} {{ ... }}`"),
            );
        }
        sc
    }

    /// After an error in an item, skips to the next item keyword that starts a line at depth 0.
    pub(super) fn sync_item(&mut self, start: usize) {
        if self.pos == start {
            self.bump();
        }
        let mut depth = 0i32;
        loop {
            let t = self.peek().clone();
            match &t.tok {
                Tok::Eof => return,
                Tok::Punct("{") => depth += 1,
                Tok::Punct("}") => {
                    if depth == 0 {
                        return;
                    }
                    depth -= 1;
                }
                Tok::Ident(s)
                    if depth == 0 && t.nl_before && ITEM_KEYWORDS.contains(&s.as_str()) =>
                {
                    return
                }
                _ => {}
            }
            self.bump();
        }
    }

    pub(super) fn item(&mut self, sc: &mut Scenario) -> PResult<()> {
        let t = self.peek().clone();
        let kw = match &t.tok {
            Tok::Ident(s) => s.clone(),
            other => {
                self.error(
                    t.span,
                    format!("expected a declaration, found {}", Self::describe(other)),
                    "not a declaration",
                    format!("a scenario holds {}", ITEM_KEYWORDS.join(", ")),
                );
                return Err(());
            }
        };
        match kw.as_str() {
            "import" => match self.import() {
                Ok(i) => sc.items.push(Item::Import(i)),
                Err(()) => {
                    sc.broken_import = true;
                    return Err(());
                }
            },
            "about" => {
                self.bump();
                let s = self.string("the description")?;
                if sc.about.is_some() {
                    self.error(
                        s.1,
                        "`about` is given twice",
                        "second `about`",
                        "keep one description",
                    );
                }
                sc.about = Some(s);
            }
            "source" => {
                self.bump();
                let s = self.string("the source")?;
                sc.sources.push(s);
            }
            "variant" => {
                let v = self.variant()?;
                sc.variants.push(v);
            }
            "expect" => {
                let e = self.expect()?;
                sc.expects.push(e);
            }
            _ => {
                let item = self.common_item(&kw, true)?;
                sc.items.push(item);
            }
        }
        Ok(())
    }

    /// `import "PATH"` or `import "PATH" { name, name }`.
    pub(super) fn import(&mut self) -> PResult<Import> {
        let start = self.bump().span;
        let (path, path_span) = self.string("the path of the library to import")?;
        let mut span = start.to(path_span);
        let mut names = None;
        // The name list belongs to the import only on the same line: a `{` on the next line
        // would be the start of something else.
        if self.at_punct("{") && !self.peek().nl_before {
            self.bump();
            let mut list = Vec::new();
            while !self.at_punct("}") {
                let ok = match self.ident("a name to import") {
                    Ok(name) => {
                        list.push(name);
                        true
                    }
                    Err(()) => false,
                };
                if ok && self.at_punct(",") {
                    self.bump();
                } else if !ok || !self.at_punct("}") {
                    if ok {
                        let t = self.peek().clone();
                        self.error(
                            t.span,
                            format!("expected `,` or `}}`, found {}", Self::describe(&t.tok)),
                            "expected `,` or `}`",
                            "list the names to import: `import \"lib/x.race\" { lock, unlock }`",
                        );
                    }
                    // Skip the rest of the list, so that its `}` does not end the scenario.
                    while !self.at_eof() && !self.peek().nl_before && !self.at_punct("}") {
                        self.bump();
                    }
                    if self.at_punct("}") && !self.peek().nl_before {
                        self.bump();
                    }
                    return Err(());
                }
            }
            span = span.to(self.bump().span);
            if list.is_empty() {
                self.error(
                    span,
                    "an import lists no names",
                    "nothing to import",
                    "name what to import, or drop the braces to import every declaration",
                );
                return Err(());
            }
            names = Some(list);
        }
        Ok(Import {
            path,
            path_span,
            names,
            span,
        })
    }

    /// Items allowed both at the top level and (`const`, `proc`) inside a variant.
    pub(super) fn common_item(&mut self, kw: &str, top: bool) -> PResult<Item> {
        let t = self.peek().clone();
        match kw {
            "param" if top => self.param(),
            "const" => {
                self.bump();
                let name = self.ident("a constant name")?;
                self.expect_punct("=", "constants are written `const NAME = value`")?;
                let value = self.expr()?;
                Ok(Item::Const { name, value })
            }
            "proc" => {
                self.bump();
                Ok(Item::Proc(self.proc()?))
            }
            "fs" if top => {
                self.bump();
                self.fs()
            }
            "cell" if top => {
                self.bump();
                let name = self.ident("a cell name")?;
                self.expect_punct(
                    "=",
                    "cells are declared with an initial value: `cell NAME = 0`",
                )?;
                let init = self.expr()?;
                Ok(Item::Cell { name, init })
            }
            "log" if top => {
                self.bump();
                Ok(Item::Log {
                    name: self.ident("a log name")?,
                })
            }
            "local" if top => {
                self.bump();
                let name = self.ident("a thread-local name")?;
                self.expect_punct(
                    "=",
                    "thread-locals are declared with an initial value: `local NAME = none`",
                )?;
                let init = self.expr()?;
                Ok(Item::Local { name, init })
            }
            "lock" | "rlock" | "rwlock" if top => {
                self.bump();
                let kind = match kw {
                    "lock" => crate::ir::LockKind::Mutex,
                    "rlock" => crate::ir::LockKind::Reentrant,
                    _ => crate::ir::LockKind::ReadWrite,
                };
                Ok(Item::Lock {
                    name: self.ident("a lock name")?,
                    kind,
                })
            }
            "database" if top => {
                self.bump();
                self.database(t.span)
            }
            "fault" => {
                self.bump();
                self.fault(t.span)
            }
            "gate" => self.gate(t.span),
            "nfs" => self.nfs(t.span),
            "faults" => self.fault_budget(),
            "actor" if top => self.actor(),
            "invariant" if top => self.invariant(),
            _ => {
                let allowed = if top {
                    ITEM_KEYWORDS.join(", ")
                } else {
                    "const, proc, fault, faults, nfs, expect".to_string()
                };
                self.error(
                    t.span,
                    format!("unknown declaration `{kw}`"),
                    if top {
                        "not a declaration"
                    } else {
                        "not allowed in a variant"
                    },
                    format!("expected one of: {allowed}"),
                );
                Err(())
            }
        }
    }

    /// `param NAME in LOW..=HIGH`.
    fn param(&mut self) -> PResult<Item> {
        self.bump();
        let name = self.ident("a parameter name")?;
        let t = self.peek().clone();
        if !matches!(&t.tok, Tok::Ident(w) if w == "in") {
            self.error(
                t.span,
                format!("expected `in`, found {}", Self::describe(&t.tok)),
                "expected `in`",
                "write `param waiters in 2..=5` or `param lifetime in 1s..=20s`",
            );
            return Err(());
        }
        self.bump();
        let low = self.expr()?;
        self.expect_punct(
            "..=",
            "a parameter's range is written `LOW..=HIGH`, both ends included",
        )?;
        let high = self.expr()?;
        let span = t.span.to(high.span);
        Ok(Item::Param {
            name,
            low,
            high,
            span,
        })
    }

    /// `actor NAME [x COUNT] [on CLIENT] { ... }`.
    fn actor(&mut self) -> PResult<Item> {
        self.bump();
        let name = self.ident("an actor name")?;
        let mut count = None;
        if self.at_kw("x") {
            self.bump();
            let c = self.peek().clone();
            match c.tok {
                Tok::Int(n) => {
                    self.bump();
                    count = Some((n, c.span));
                }
                ref other => {
                    self.error(
                        c.span,
                        format!("expected a count, found {}", Self::describe(other)),
                        "expected a number",
                        "write `actor NAME x 3 { ... }`",
                    );
                    return Err(());
                }
            }
        }
        let client = if self.at_kw("on") {
            self.bump();
            Some(self.ident("a client name such as B")?)
        } else {
            None
        };
        let body = self.block()?;
        Ok(Item::Actor(Actor {
            name,
            count,
            client,
            body,
        }))
    }

    /// `invariant NAME: always EXPR` or `invariant NAME: at end EXPR`.
    fn invariant(&mut self) -> PResult<Item> {
        self.bump();
        let name = self.ident("an invariant name")?;
        self.expect_punct(
            ":",
            "invariants are written `invariant NAME: always EXPR` or `invariant NAME: at end EXPR`",
        )?;
        let when = if self.at_kw("always") {
            self.bump();
            When::Always
        } else if self.at_kw("at") && matches!(&self.peek_at(1).tok, Tok::Ident(s) if s == "end") {
            self.bump();
            self.bump();
            When::AtEnd
        } else {
            let t = self.peek().clone();
            self.error(t.span, "expected `always` or `at end`", "say when the invariant is checked", "`always` checks after every step; `at end` checks once when all actors have finished");
            return Err(());
        };
        let cond = self.expr()?;
        Ok(Item::Invariant(Invariant { name, when, cond }))
    }

    pub(super) fn proc(&mut self) -> PResult<Proc> {
        let name = self.ident("a procedure name")?;
        self.expect_punct(
            "(",
            "procedures are written `proc NAME(param, ...) { ... }`",
        )?;
        let mut params = Vec::new();
        while !self.at_punct(")") {
            params.push(self.ident("a parameter name")?);
            if !self.at_punct(")") {
                self.expect_punct(",", "separate parameters with commas")?;
            }
        }
        self.bump();
        let body = self.block()?;
        Ok(Proc { name, params, body })
    }

    pub(super) fn variant(&mut self) -> PResult<Variant> {
        self.bump();
        let name = self.compound_name("a variant name")?;
        let parent = if self.at_kw("extends") {
            self.bump();
            Some(self.compound_name("the name of the variant it extends")?)
        } else {
            None
        };
        self.expect_punct(
            "{",
            "a variant's body is written in braces: `variant NAME [extends OTHER] { ... }`",
        )?;
        let mut v = Variant {
            name,
            parent,
            items: vec![],
            expects: vec![],
        };
        while !self.at_punct("}") && !self.at_eof() {
            let before = self.pos;
            let t = self.peek().clone();
            let r = match &t.tok {
                Tok::Ident(s) if s == "expect" => self.expect().map(|e| v.expects.push(e)),
                Tok::Ident(s) => {
                    let s = s.clone();
                    self.common_item(&s, false).map(|i| v.items.push(i))
                }
                other => {
                    self.error(
                        t.span,
                        format!(
                            "expected `const`, `proc` or `expect`, found {}",
                            Self::describe(other)
                        ),
                        "not allowed in a variant",
                        "a variant replaces constants and procedures and states its expectations",
                    );
                    Err(())
                }
            };
            if r.is_err() {
                self.sync_item(before);
            }
        }
        self.expect_punct("}", "close the variant")?;
        Ok(v)
    }

    pub(super) fn expect(&mut self) -> PResult<Expect> {
        let start = self.bump().span;
        let real = self.at_kw("on") && matches!(&self.peek_at(1).tok, Tok::Ident(s) if s == "real");
        if real {
            self.bump();
            self.bump();
        }
        let t = self.peek().clone();
        let kind = match &t.tok {
            Tok::Ident(s) if s == "violates" => {
                self.bump();
                let mut names = vec![self.ident("an invariant name")?];
                while self.at_punct(",") {
                    self.bump();
                    names.push(self.ident("an invariant name")?);
                }
                ExpectKind::Violates(names)
            }
            Tok::Ident(s) if s == "deadlock" => {
                self.bump();
                ExpectKind::Deadlock
            }
            Tok::Ident(s) if s == "holds" => {
                self.bump();
                ExpectKind::Holds
            }
            other => {
                self.error(
                    t.span,
                    format!(
                        "expected `violates`, `deadlock` or `holds`, found {}",
                        Self::describe(other)
                    ),
                    "unknown expectation",
                    "write `expect violates INVARIANT`, `expect deadlock` or `expect holds`",
                );
                return Err(());
            }
        };
        Ok(Expect {
            kind,
            span: start.to(self.prev_span()),
            real,
        })
    }
}

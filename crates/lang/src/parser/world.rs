//! Declarations of the world the actors share: the initial filesystem, the database, and faults.

use super::{PResult, Parser};
use crate::ast::*;
use crate::lexer::Tok;
use crate::span::Span;

impl Parser<'_> {
    pub(super) fn fs(&mut self) -> PResult<Item> {
        self.expect_punct(
            "{",
            "write `fs { dir \"/path\"  file \"/path\" = \"contents\" }`",
        )?;
        let mut entries = Vec::new();
        while !self.at_punct("}") && !self.at_eof() {
            if self.at_kw("dir") {
                self.bump();
                entries.push(FsEntry::Dir { path: self.expr()? });
            } else if self.at_kw("file") {
                self.bump();
                let path = self.expr()?;
                let contents = if self.at_punct("=") {
                    self.bump();
                    self.expr()?
                } else {
                    Expr {
                        kind: ExprKind::Str(vec![]),
                        span: path.span,
                    }
                };
                entries.push(FsEntry::File { path, contents });
            } else {
                let t = self.peek().clone();
                self.error(
                    t.span,
                    format!("expected `dir` or `file`, found {}", Self::describe(&t.tok)),
                    "not a filesystem entry",
                    "write `dir \"/path\"` or `file \"/path\" = \"contents\"`",
                );
                return Err(());
            }
        }
        self.expect_punct("}", "close the `fs` block")?;
        Ok(Item::Fs { entries })
    }

    pub(super) fn database(&mut self, start: Span) -> PResult<Item> {
        // `database NAME` (no block) names another database on the server; `database innodb {`
        // gives the flavour of the scenario's own database.
        if matches!(self.peek().tok, Tok::Ident(_))
            && !matches!(&self.peek_at(1).tok, Tok::Punct(p) if *p == "{")
        {
            return Ok(Item::NamedDatabase {
                name: self.ident("a database name")?,
            });
        }
        let flavour = if matches!(self.peek().tok, Tok::Ident(_)) {
            Some(self.ident("a database flavour")?)
        } else {
            None
        };
        self.expect_punct(
            "{",
            "write `database innodb { \"CREATE TABLE ...\" \"INSERT ...\" }`",
        )?;
        let mut statements = Vec::new();
        while !self.at_punct("}") && !self.at_eof() {
            statements.push(self.string("an SQL statement")?);
            if self.at_punct(";") || self.at_punct(",") {
                self.bump();
            }
        }
        let end = self.expect_punct("}", "close the `database` block")?;
        Ok(Item::Database {
            flavour,
            statements,
            span: start.to(end),
        })
    }

    pub(super) fn fault(&mut self, start: Span) -> PResult<Item> {
        let name = self.ident("a fault name")?;
        self.expect_punct(":", "faults are written `fault NAME: crash ACTOR`, `fault NAME: stall ACTOR for 30s` or `fault NAME: signal ACTOR TERM`")?;
        let t = self.peek().clone();
        let kind_word = if let Tok::Ident(s) = &t.tok {
            s.clone()
        } else {
            String::new()
        };
        let help = "a fault is `crash ACTOR`, `stall ACTOR for DURATION`, `signal ACTOR SIGNAL [then kill after DURATION]` or `retransmit ACTOR link`";
        if !matches!(
            kind_word.as_str(),
            "crash" | "stall" | "signal" | "retransmit"
        ) {
            self.error(
                t.span,
                format!(
                    "expected `crash`, `stall`, `signal` or `retransmit`, found {}",
                    Self::describe(&t.tok)
                ),
                "unknown fault",
                help,
            );
            return Err(());
        }
        self.bump();
        let target = self.compound_name("the actor the fault hits")?;
        let kind = match kind_word.as_str() {
            "crash" => FaultSpec::Crash,
            "retransmit" => FaultSpec::Retransmit {
                op: self.ident("the operation whose reply is lost (`link`)")?,
            },
            "stall" => {
                if !self.at_kw("for") {
                    let t = self.peek().clone();
                    self.error(
                        t.span,
                        format!("expected `for`, found {}", Self::describe(&t.tok)),
                        "expected `for DURATION`",
                        "write `stall ACTOR for 30s`",
                    );
                    return Err(());
                }
                self.bump();
                FaultSpec::Stall(self.expr()?)
            }
            _ => {
                let signal = self.ident("a signal name such as TERM")?;
                let kill_after = if self.at_kw("then") {
                    self.bump();
                    for word in ["kill", "after"] {
                        if !self.at_kw(word) {
                            let t = self.peek().clone();
                            self.error(
                                t.span,
                                format!("expected `{word}`, found {}", Self::describe(&t.tok)),
                                "expected `then kill after DURATION`",
                                "write `signal cgi TERM then kill after 3s`",
                            );
                            return Err(());
                        }
                        self.bump();
                    }
                    Some(self.expr()?)
                } else {
                    None
                };
                FaultSpec::Signal { signal, kill_after }
            }
        };
        Ok(Item::Fault(Fault {
            name,
            target,
            kind,
            span: start.to(self.prev_span()),
        }))
    }

    /// `gate "COMMAND"` or `gate none`.
    pub(super) fn gate(&mut self, start: Span) -> PResult<Item> {
        self.bump();
        if self.at_kw("none") {
            let span = self.bump().span;
            return Ok(Item::Gate {
                command: None,
                span: start.to(span),
            });
        }
        let (command, span) = self.string("the command each actor runs under the gate")?;
        Ok(Item::Gate {
            command: Some(command),
            span: start.to(span),
        })
    }

    /// `nfs cache DURATION`.
    pub(super) fn nfs(&mut self, start: Span) -> PResult<Item> {
        self.bump();
        if !self.at_kw("cache") {
            let t = self.peek().clone();
            self.error(
                t.span,
                format!("expected `cache`, found {}", Self::describe(&t.tok)),
                "expected `cache DURATION`",
                "write `nfs cache 3s`: clients keep the attributes they fetched for 3 s",
            );
            return Err(());
        }
        self.bump();
        let cache = self.expr()?;
        Ok(Item::Nfs {
            span: start.to(cache.span),
            cache,
        })
    }

    /// `faults N`: how many faults may land in one execution.
    pub(super) fn fault_budget(&mut self) -> PResult<Item> {
        self.bump();
        let c = self.peek().clone();
        match c.tok {
            Tok::Int(n) => {
                self.bump();
                Ok(Item::FaultBudget { n, span: c.span })
            }
            ref other => {
                self.error(
                    c.span,
                    format!("expected a number, found {}", Self::describe(other)),
                    "expected the fault budget",
                    "write `faults 2`: at most two faults land in one execution",
                );
                Err(())
            }
        }
    }
}

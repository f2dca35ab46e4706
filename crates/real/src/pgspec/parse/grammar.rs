//! The spec's syntax: setup, teardown, sessions with their steps, and permutations (with
//! step markers), stopping at the first error as isolationtester's parser does.

use super::lex::Tok;
use super::{Session, Step};
use racelab_core::lang::diag::{Diag, Span};

pub(super) struct Parser {
    pub(super) toks: Vec<(Tok, Span)>,
    pub(super) pos: usize,
}

/// A parsed name with where it was written.
#[derive(Debug, Clone)]
pub(super) struct Name {
    pub(super) text: String,
    pub(super) span: Span,
}

pub(super) struct RawPermStep {
    pub(super) name: Name,
    pub(super) blockers: Vec<(Option<Name>, Option<u32>, Span)>,
}

impl Parser {
    fn peek(&self) -> &Tok {
        &self.toks[self.pos].0
    }
    pub(super) fn span(&self) -> Span {
        self.toks[self.pos].1
    }
    fn bump(&mut self) -> (Tok, Span) {
        let t = self.toks[self.pos].clone();
        if self.pos + 1 < self.toks.len() {
            self.pos += 1;
        }
        t
    }
    fn at_keyword(&self, k: &str) -> bool {
        matches!(self.peek(), Tok::Keyword(w) if *w == k)
    }
    pub(super) fn unexpected(&self, wanted: &str) -> Diag {
        let t = self.peek();
        Diag::new(
            self.span(),
            format!("expected {wanted}, found {}", t.describe()),
            format!("expected {wanted}"),
        )
    }
    pub(super) fn name(&mut self, what: &str) -> Result<Name, Diag> {
        match self.peek().clone() {
            Tok::Ident(text) => {
                let (_, span) = self.bump();
                Ok(Name { text, span })
            }
            Tok::Keyword(k) => Err(Diag::new(
                self.span(),
                format!("`{k}` is a keyword, not a {what}"),
                format!("expected a {what}"),
            )
            .help(format!("quote it to use it as a name: `\"{k}\"`"))),
            _ => Err(self.unexpected(&format!("a {what}"))),
        }
    }
    pub(super) fn sql(&mut self, after: &str) -> Result<String, Diag> {
        match self.peek().clone() {
            Tok::Sql(s) => {
                self.bump();
                Ok(s)
            }
            _ => Err(self.unexpected(&format!("an SQL block `{{ ... }}` after `{after}`"))),
        }
    }
}

/// The syntax: stops at the first error, as isolationtester's bison parser does (a spec has
/// no line structure to resynchronise on: an SQL block spans lines).
pub(super) fn parse_tokens(p: &mut Parser) -> Result<Parsed, Diag> {
    let mut setup = Vec::new();
    while p.at_keyword("setup") {
        p.bump();
        setup.push(p.sql("setup")?);
    }
    let mut teardown = None;
    if p.at_keyword("teardown") {
        p.bump();
        teardown = Some(p.sql("teardown")?);
    }
    let mut sessions = Vec::new();
    while p.at_keyword("session") {
        p.bump();
        let name = p.name("session name")?;
        let mut session = Session {
            name: name.text.clone(),
            setup: None,
            steps: vec![],
            teardown: None,
        };
        if p.at_keyword("setup") {
            p.bump();
            session.setup = Some(p.sql("setup")?);
        }
        let mut step_names = Vec::new();
        while p.at_keyword("step") {
            p.bump();
            let step = p.name("step name")?;
            let sql_span = p.span();
            let sql = p.sql("step")?;
            session.steps.push(Step {
                name: step.text.clone(),
                sql,
                span: step.span.to(sql_span),
            });
            step_names.push(step);
        }
        if session.steps.is_empty() {
            let mut d = p.unexpected("`step NAME { SQL }`");
            if p.at_keyword("setup") {
                d = d.help("a session has at most one `setup`, before its steps");
            } else {
                d = d.help(format!("session `{}` needs at least one step", name.text));
            }
            return Err(d);
        }
        if p.at_keyword("teardown") {
            p.bump();
            session.teardown = Some(p.sql("teardown")?);
        }
        sessions.push((name, session, step_names));
    }
    if sessions.is_empty() {
        let mut d = p.unexpected("`session NAME`");
        if p.at_keyword("setup") && teardown.is_some() {
            d = d.help("every `setup` block comes before the `teardown` block");
        } else if p.at_keyword("teardown") {
            d = d.help("a spec has at most one global `teardown`");
        } else {
            d = d.help("a spec needs at least one `session NAME` with steps");
        }
        return Err(d);
    }
    let mut perms = Vec::new();
    while p.at_keyword("permutation") {
        let (_, start) = p.bump();
        let mut steps = Vec::new();
        while matches!(p.peek(), Tok::Ident(_)) {
            let name = p.name("step name")?;
            let mut blockers = Vec::new();
            if p.peek() == &Tok::Punct('(') {
                p.bump();
                loop {
                    let bstart = p.span();
                    if p.peek() == &Tok::Punct('*') {
                        p.bump();
                        blockers.push((None, None, bstart));
                    } else {
                        let other = p.name("step name, `*` or `STEP notices N`")?;
                        let mut count = None;
                        if p.at_keyword("notices") {
                            p.bump();
                            match p.peek().clone() {
                                Tok::Int(n) => {
                                    p.bump();
                                    count = Some(n);
                                }
                                _ => return Err(p.unexpected("a number of notices")),
                            }
                        }
                        let end = p.toks[p.pos - 1].1;
                        blockers.push((Some(other), count, bstart.to(end)));
                    }
                    match p.peek() {
                        Tok::Punct(',') => {
                            p.bump();
                        }
                        Tok::Punct(')') => {
                            p.bump();
                            break;
                        }
                        _ => return Err(p.unexpected("`,` or `)`")),
                    }
                }
            }
            steps.push(RawPermStep { name, blockers });
        }
        if steps.is_empty() {
            return Err(p
                .unexpected("a step name")
                .help("a permutation lists at least one step"));
        }
        let end = p.toks[p.pos - 1].1;
        perms.push((steps, start.to(end)));
    }
    if p.peek() != &Tok::Eof {
        let mut d = p.unexpected("`permutation` or the end of the file");
        if p.at_keyword("session") {
            d = d.help("sessions come before the permutations");
        } else if p.at_keyword("setup") || p.at_keyword("teardown") {
            d = d.help("the order is: setup blocks, teardown, sessions, permutations");
        }
        return Err(d);
    }
    Ok((setup, teardown, sessions, perms))
}

pub(super) type Parsed = (
    Vec<String>,
    Option<String>,
    Vec<(Name, Session, Vec<Name>)>,
    Vec<(Vec<RawPermStep>, Span)>,
);

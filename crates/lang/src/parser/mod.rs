//! The parser: tokens to a [`Scenario`] syntax tree, recovering after each error so all are reported.
//!
//! The parser is split by what it reads: `items` (the scenario, its declarations, variants and
//! expectations), `world` (the filesystem, database, faults and other world settings),
//! `statements`, `expressions` and `collections`; the token cursor and errors live here.

mod collections;
mod expressions;
mod items;
mod statements;
mod world;

use super::ast::*;
use super::diag::{Diag, Span};
use super::lexer::{lex, Tok, Token};

/// Reserved words: never names (docs/language.md, section 2).
pub const KEYWORDS: &[&str] = &[
    "let", "set", "if", "else", "loop", "while", "break", "continue", "return", "match", "sleep",
    "work", "append", "critical", "assert", "fail", "true", "false", "none", "and", "or", "not",
    "for", "in", "map",
];

/// Keywords that start a statement: where recovery inside an unclosed literal stops.
const STATEMENT_KEYWORDS: &[&str] = &[
    "let", "set", "if", "loop", "while", "for", "break", "continue", "return", "match", "sleep",
    "work", "append", "critical", "assert", "fail",
];

/// Words that start a scenario's items (and are names elsewhere).
pub const ITEM_KEYWORDS: &[&str] = &[
    "import",
    "about",
    "source",
    "const",
    "param",
    "fs",
    "nfs",
    "cell",
    "local",
    "log",
    "lock",
    "rlock",
    "rwlock",
    "database",
    "gate",
    "proc",
    "actor",
    "invariant",
    "fault",
    "faults",
    "variant",
    "expect",
];

/// How deeply blocks, parentheses, operators and calls may nest, all counted together. Every
/// pass after the parser (lowering, constant evaluation, the machine's expression evaluator,
/// dropping the tree) recurses over the tree, so bounding its height here bounds their stack
/// use too; scenarios written by hand nest well under 20.
pub(crate) const MAX_NESTING: usize = 100;

/// Parses a whole scenario file. The tree is returned even when there were errors, so that later
/// passes can report theirs too; callers must treat a non-empty `diags` as failure. A file that
/// nests deeper than [`MAX_NESTING`] is reported once and its tree marked `too_deep`.
pub(crate) fn parse(src: &str, diags: &mut Vec<Diag>) -> Scenario {
    parse_at(src, 0, diags)
}

/// [`parse`] of the file that starts at byte `base` of `full` (a [`super::sources::SourceMap`]'s
/// text, the file running to its end): spans are offsets in `full`.
pub(crate) fn parse_at(full: &str, base: usize, diags: &mut Vec<Diag>) -> Scenario {
    let src = full;
    let mut lexed = Vec::new();
    let mut toks = lex(&full[base..], &mut lexed);
    for t in &mut toks {
        t.span = Span::new(t.span.start + base, t.span.end + base);
        t.content_start += base;
    }
    for d in &mut lexed {
        d.span = Span::new(d.span.start + base, d.span.end + base);
    }
    diags.extend(lexed);
    let mut p = Parser {
        src,
        toks,
        pos: 0,
        diags,
        depth: 0,
        height: 0,
        too_deep: false,
    };
    let mut sc = p.scenario();
    sc.too_deep = p.too_deep;
    sc
}

struct Parser<'a> {
    src: &'a str,
    toks: Vec<Token>,
    pos: usize,
    diags: &'a mut Vec<Diag>,
    /// How many blocks, parentheses, unary operators and calls enclose the current token.
    depth: usize,
    /// The height of the expression the last expression function returned.
    height: usize,
    /// Set once the nesting limit was hit: the rest of the file is skipped, and no further
    /// (consequential) errors are reported.
    too_deep: bool,
}

type PResult<T> = Result<T, ()>;

impl<'a> Parser<'a> {
    fn peek(&self) -> &Token {
        &self.toks[self.pos.min(self.toks.len() - 1)]
    }
    fn peek_at(&self, n: usize) -> &Token {
        &self.toks[(self.pos + n).min(self.toks.len() - 1)]
    }
    fn bump(&mut self) -> Token {
        let t = self.peek().clone();
        if self.pos < self.toks.len() - 1 {
            self.pos += 1;
        }
        t
    }
    fn at_punct(&self, p: &str) -> bool {
        matches!(&self.peek().tok, Tok::Punct(q) if *q == p)
    }
    fn at_kw(&self, kw: &str) -> bool {
        matches!(&self.peek().tok, Tok::Ident(s) if s == kw)
    }
    fn at_eof(&self) -> bool {
        matches!(self.peek().tok, Tok::Eof)
    }
    fn prev_span(&self) -> Span {
        self.toks[self.pos.saturating_sub(1)].span
    }

    fn error(
        &mut self,
        span: Span,
        msg: impl Into<String>,
        label: impl Into<String>,
        help: impl Into<String>,
    ) {
        if !self.too_deep {
            self.diags.push(Diag::new(span, msg, label).help(help));
        }
    }

    /// Enters one level of nesting at `span`; past [`MAX_NESTING`] reports it (once) and gives
    /// up on the file, so that nothing recurses deeper.
    fn enter(&mut self, span: Span) -> PResult<()> {
        self.depth += 1;
        self.check_nesting(span, 0)
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    /// Fails when an expression of `height` at the current depth would nest too deeply.
    fn check_nesting(&mut self, span: Span, height: usize) -> PResult<()> {
        if self.too_deep {
            return Err(());
        }
        if self.depth + height <= MAX_NESTING {
            return Ok(());
        }
        self.error(
            span,
            format!("nested too deeply: more than {MAX_NESTING} levels of blocks, parentheses, operators and calls"),
            "too deep here",
            "split the code into procedures, or name intermediate values with `let`",
        );
        self.too_deep = true;
        // Skip the rest of the file: every enclosing level sees the end and returns.
        self.pos = self.toks.len() - 1;
        Err(())
    }

    fn describe(t: &Tok) -> String {
        match t {
            Tok::Ident(s) => format!("`{s}`"),
            Tok::Int(n) => format!("number `{n}`"),
            Tok::Duration(_) => "a duration".into(),
            Tok::Str(_) => "a string".into(),
            Tok::Punct(p) => format!("`{p}`"),
            Tok::Eof => "end of file".into(),
        }
    }

    fn expect_punct(&mut self, p: &str, help: &str) -> PResult<Span> {
        if self.at_punct(p) {
            return Ok(self.bump().span);
        }
        let t = self.peek().clone();
        self.error(
            t.span,
            format!("expected `{p}`, found {}", Self::describe(&t.tok)),
            format!("expected `{p}` here"),
            help,
        );
        Err(())
    }

    fn ident(&mut self, what: &str) -> PResult<Ident> {
        let t = self.peek().clone();
        if let Tok::Ident(s) = &t.tok {
            if KEYWORDS.contains(&s.as_str()) {
                self.error(
                    t.span,
                    format!("`{s}` is a keyword and cannot be used as {what}"),
                    "keyword",
                    "pick another name",
                );
                return Err(());
            }
            self.bump();
            return Ok(Ident {
                name: s.clone(),
                span: t.span,
            });
        }
        self.error(
            t.span,
            format!("expected {what}, found {}", Self::describe(&t.tok)),
            format!("expected {what}"),
            "names start with a letter or `_` and contain letters, digits and `_`",
        );
        Err(())
    }

    /// Scenario and variant names may contain dashes and dots (`mailman-2.1`): a run of adjacent tokens.
    fn compound_name(&mut self, what: &str) -> PResult<Ident> {
        let first = self.peek().clone();
        match &first.tok {
            Tok::Ident(_) | Tok::Int(_) => {}
            Tok::Str(s) => {
                self.bump();
                return Ok(Ident {
                    name: s.clone(),
                    span: first.span,
                });
            }
            other => {
                self.error(
                    first.span,
                    format!("expected {what}, found {}", Self::describe(other)),
                    format!("expected {what}"),
                    "names are like `mailman-lockfile` or `mailman-2.1`",
                );
                return Err(());
            }
        }
        self.bump();
        let mut span = first.span;
        loop {
            let t = self.peek();
            let adjacent = t.span.start == span.end;
            let ok = adjacent
                && match &t.tok {
                    Tok::Ident(_) | Tok::Int(_) => true,
                    Tok::Punct(p) => {
                        (*p == "-" || *p == ".")
                            && matches!(self.peek_at(1).tok, Tok::Ident(_) | Tok::Int(_))
                            && self.peek_at(1).span.start == t.span.end
                    }
                    _ => false,
                };
            if !ok {
                break;
            }
            span = span.to(self.bump().span);
        }
        Ok(Ident {
            name: self.src[span.start..span.end].to_string(),
            span,
        })
    }

    fn string(&mut self, what: &str) -> PResult<(String, Span)> {
        let t = self.peek().clone();
        if let Tok::Str(s) = &t.tok {
            self.bump();
            return Ok((s.clone(), t.span));
        }
        self.error(
            t.span,
            format!(
                "expected {what} (a string), found {}",
                Self::describe(&t.tok)
            ),
            "expected a string",
            "strings are written in double quotes",
        );
        Err(())
    }
}

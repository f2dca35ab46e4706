//! The parser: tokens to a [`Scenario`] syntax tree, recovering after each error so all are reported.

mod collections;

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
pub const MAX_NESTING: usize = 100;

/// Parses a whole scenario file. The tree is returned even when there were errors, so that later
/// passes can report theirs too; callers must treat a non-empty `diags` as failure. A file that
/// nests deeper than [`MAX_NESTING`] is reported once and its tree marked `too_deep`.
pub fn parse(src: &str, diags: &mut Vec<Diag>) -> Scenario {
    parse_at(src, 0, diags)
}

/// [`parse`] of the file that starts at byte `base` of `full` (a [`super::sources::SourceMap`]'s
/// text, the file running to its end): spans are offsets in `full`.
pub fn parse_at(full: &str, base: usize, diags: &mut Vec<Diag>) -> Scenario {
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

    // ---------------------------------------------------------------- items

    fn scenario(&mut self) -> Scenario {
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
    fn sync_item(&mut self, start: usize) {
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

    fn item(&mut self, sc: &mut Scenario) -> PResult<()> {
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
    fn import(&mut self) -> PResult<Import> {
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
    fn common_item(&mut self, kw: &str, top: bool) -> PResult<Item> {
        let t = self.peek().clone();
        match kw {
            "param" if top => {
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
                self.fs(t.span)
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
            "gate" => {
                self.bump();
                if self.at_kw("none") {
                    let span = self.bump().span;
                    return Ok(Item::Gate {
                        command: None,
                        span: t.span.to(span),
                    });
                }
                let (command, span) = self.string("the command each actor runs under the gate")?;
                Ok(Item::Gate {
                    command: Some(command),
                    span: t.span.to(span),
                })
            }
            "nfs" => {
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
                    span: t.span.to(cache.span),
                    cache,
                })
            }
            "faults" => {
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
            "actor" if top => {
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
            "invariant" if top => {
                self.bump();
                let name = self.ident("an invariant name")?;
                self.expect_punct(":", "invariants are written `invariant NAME: always EXPR` or `invariant NAME: at end EXPR`")?;
                let when = if self.at_kw("always") {
                    self.bump();
                    When::Always
                } else if self.at_kw("at")
                    && matches!(&self.peek_at(1).tok, Tok::Ident(s) if s == "end")
                {
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

    fn fs(&mut self, start: Span) -> PResult<Item> {
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
        let end = self.expect_punct("}", "close the `fs` block")?;
        Ok(Item::Fs {
            entries,
            span: start.to(end),
        })
    }

    fn database(&mut self, start: Span) -> PResult<Item> {
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

    fn fault(&mut self, start: Span) -> PResult<Item> {
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

    fn proc(&mut self) -> PResult<Proc> {
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

    fn variant(&mut self) -> PResult<Variant> {
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

    fn expect(&mut self) -> PResult<Expect> {
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

    // ---------------------------------------------------------------- statements

    fn block(&mut self) -> PResult<Block> {
        let open = self.peek().span;
        self.enter(open)?;
        let b = self.block_inner();
        self.leave();
        b
    }

    fn block_inner(&mut self) -> PResult<Block> {
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
    fn sync_stmt(&mut self, start: usize) {
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

    fn stmt(&mut self) -> PResult<Stmt> {
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
            "set" => {
                self.bump();
                let name = self.ident("a cell name")?;
                if self.at_punct("[") && !self.peek().nl_before {
                    let (key, _) = self.index_key()?;
                    self.expect_punct("=", "write `set CELL[key] = value`")?;
                    StmtKind::SetAt {
                        cell: name,
                        key,
                        value: self.expr()?,
                    }
                } else {
                    self.expect_punct("=", "write `set CELL = value` or `set CELL[key] = value`")?;
                    StmtKind::Set(name, self.expr()?)
                }
            }
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
            "return" => {
                self.bump();
                let next = self.peek();
                let value = if next.nl_before
                    || matches!(next.tok, Tok::Punct("}") | Tok::Punct(";") | Tok::Eof)
                {
                    None
                } else {
                    Some(self.expr()?)
                };
                StmtKind::Return(value)
            }
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
                match kw.as_str() {
                    "acquire" => StmtKind::Acquire { lock, mode },
                    "release" => StmtKind::Release(lock),
                    _ => StmtKind::With {
                        lock,
                        mode,
                        body: self.block()?,
                    },
                }
            }
            "on" if self.next_is_word_on_same_line() => {
                self.bump();
                let signal = self.ident("a signal name such as TERM")?;
                if self.at_kw("default") {
                    self.bump();
                    StmtKind::On {
                        signal,
                        handler: None,
                    }
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
                    StmtKind::On {
                        signal,
                        handler: Some((name, args)),
                    }
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
                    return Err(());
                }
            }
            "try" if matches!(self.peek_at(1).tok, Tok::Punct("{")) => {
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
                StmtKind::Try {
                    body,
                    finally: self.block()?,
                }
            }
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

    /// `OP ignore ENOENT, EEXIST` after the operation `op`.
    fn ignore(&mut self, op: Expr) -> PResult<StmtKind> {
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
    fn next_is_word_on_same_line(&self) -> bool {
        let next = self.peek_at(1);
        matches!(next.tok, Tok::Ident(_)) && !next.nl_before
    }

    /// True when the current token is the whole statement (a line, `}` or `;` follows).
    fn next_ends_statement(&self) -> bool {
        let next = self.peek_at(1);
        next.nl_before || matches!(next.tok, Tok::Punct("}") | Tok::Punct(";") | Tok::Eof)
    }

    fn if_stmt(&mut self) -> PResult<StmtKind> {
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

    fn match_stmt(&mut self) -> PResult<StmtKind> {
        let start = self.bump().span;
        // An arm's body may be a bare statement (`ok => match ...`), which nests without a block.
        self.enter(start)?;
        let m = self.match_inner();
        self.leave();
        m
    }

    fn match_inner(&mut self) -> PResult<StmtKind> {
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

    fn pattern(&mut self) -> PResult<Pattern> {
        let t = self.peek().clone();
        match &t.tok {
            Tok::Ident(s) if s == "_" => {
                self.bump();
                Ok(Pattern::Wildcard(t.span))
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

    // ---------------------------------------------------------------- expressions

    pub(crate) fn expr(&mut self) -> PResult<Expr> {
        self.binary(0)
    }

    fn binop(&self) -> Option<(BinOp, u8)> {
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

    fn binary(&mut self, min: u8) -> PResult<Expr> {
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

    fn unary(&mut self) -> PResult<Expr> {
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

    fn postfix(&mut self) -> PResult<Expr> {
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

    fn primary(&mut self) -> PResult<Expr> {
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
    fn call_args(&mut self) -> PResult<(Vec<Expr>, usize)> {
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
    fn interpolate(&mut self, span: Span) -> PResult<Vec<StrPart>> {
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

    fn sub_expr(&mut self, start: usize, end: usize) -> PResult<Expr> {
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

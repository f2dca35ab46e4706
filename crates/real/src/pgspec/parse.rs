//! Reads PostgreSQL isolation specs (`*.spec`, isolationtester's format) into a [`Spec`], with
//! every problem reported as a [`Diag`] (file:line:col and a caret), as for `.race` files.
//!
//! The grammar is isolationtester's (specparse.y, specscanner.l): `setup { SQL }`* then an
//! optional `teardown { SQL }`, one or more `session NAME` (optional setup, one or more
//! `step NAME { SQL }`, optional teardown), then `permutation STEP[(MARKERS)] ...`*. A marker is
//! `*`, `OTHERSTEP`, or `OTHERSTEP notices N`. `#` starts a comment outside SQL blocks; names are
//! plain (`[A-Za-z_\x80-\xff][A-Za-z0-9_$\x80-\xff]*`, case kept) or double-quoted; an SQL block
//! is taken verbatim except for spaces and tabs (not newlines) right after `{` and before `}`.

use racelab_core::lang::diag::{Diag, Span};

/// A parsed and checked spec.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    /// `setup` blocks, each run as one submission on the control connection.
    pub setup: Vec<String>,
    pub teardown: Option<String>,
    pub sessions: Vec<Session>,
    /// The listed permutations; empty means every interleaving of the sessions' steps.
    pub permutations: Vec<Permutation>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    pub name: String,
    pub setup: Option<String>,
    pub steps: Vec<Step>,
    pub teardown: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub name: String,
    pub sql: String,
    pub span: Span,
}

/// One permutation line: steps in launch order, each with its completion markers.
#[derive(Debug, Clone, PartialEq)]
pub struct Permutation {
    pub steps: Vec<PermStep>,
    pub span: Span,
}

/// A step of a permutation: which step (session, index in it) and its markers.
#[derive(Debug, Clone, PartialEq)]
pub struct PermStep {
    pub session: usize,
    pub step: usize,
    pub blockers: Vec<Blocker>,
}

/// A completion marker (README "Dealing with race conditions").
#[derive(Debug, Clone, PartialEq)]
pub enum Blocker {
    /// `*`: reported as waiting as soon as it is launched.
    Once,
    /// `other`: not reported complete while step `other` (session, step) is active.
    Step { session: usize, step: usize },
    /// `other notices N`: not reported complete until other's session sent N more notices.
    Notices {
        session: usize,
        step: usize,
        count: u32,
    },
}

impl Spec {
    /// The step a permutation step names.
    pub fn step(&self, p: &PermStep) -> &Step {
        &self.sessions[p.session].steps[p.step]
    }

    /// Every permutation to run: the listed ones, or every interleaving of the sessions' steps
    /// (each session's steps in order), in isolationtester's order.
    pub fn permutations_to_run(&self) -> Vec<Vec<PermStep>> {
        if !self.permutations.is_empty() {
            return self.permutations.iter().map(|p| p.steps.clone()).collect();
        }
        self.interleavings()
    }

    /// Every interleaving of the sessions' steps, depth first with the lowest session first
    /// (isolationtester's recursion, written with an explicit stack: a spec with thousands of
    /// steps must not overflow the thread's stack).
    fn interleavings(&self) -> Vec<Vec<PermStep>> {
        let sessions = self.sessions.len();
        let mut out = Vec::new();
        let mut piles = vec![0usize; sessions];
        let mut current: Vec<PermStep> = Vec::new();
        // For each level of `current` (and one more): the next session to try there.
        let mut next_try = vec![0usize];
        while let Some(from) = next_try.last().copied() {
            let open = (from..sessions).find(|&s| piles[s] < self.sessions[s].steps.len());
            if let Some(s) = open {
                *next_try.last_mut().expect("not empty") = s + 1;
                current.push(PermStep {
                    session: s,
                    step: piles[s],
                    blockers: vec![],
                });
                piles[s] += 1;
                next_try.push(0);
                continue;
            }
            if from == 0 {
                // No session has a step left: one whole interleaving.
                out.push(current.clone());
            }
            next_try.pop();
            if let Some(done) = current.pop() {
                piles[done.session] -= 1;
            }
        }
        out
    }

    /// Whether the spec's SQL (setup, teardown, steps) mentions table `name` (as its last,
    /// unquoted part, case-insensitively): the tables an exploration's outcome lists.
    pub fn names_table(&self, name: &str) -> bool {
        let name = name
            .rsplit('.')
            .next()
            .unwrap_or(name)
            .trim_matches('"')
            .to_lowercase();
        let texts = self
            .setup
            .iter()
            .chain(&self.teardown)
            .chain(self.sessions.iter().flat_map(|s| {
                s.setup
                    .iter()
                    .chain(&s.teardown)
                    .chain(s.steps.iter().map(|t| &t.sql))
            }));
        texts.into_iter().any(|sql| {
            sql.to_lowercase()
                .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .any(|w| w == name)
        })
    }

    /// How many permutations [`Spec::permutations_to_run`] yields, without building them
    /// (the multinomial coefficient when none are listed), saturating.
    pub fn permutation_count(&self) -> u64 {
        if !self.permutations.is_empty() {
            return self.permutations.len() as u64;
        }
        let mut total: u64 = 0;
        let mut count: u64 = 1;
        for s in &self.sessions {
            for k in 1..=s.steps.len() as u64 {
                total += 1;
                count = count.saturating_mul(total) / k;
            }
        }
        count
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Sql(String),
    Int(u32),
    Keyword(&'static str),
    Punct(char),
    Eof,
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => format!("name `{s}`"),
            Tok::Sql(_) => "an SQL block `{ ... }`".into(),
            Tok::Int(n) => format!("number {n}"),
            Tok::Keyword(k) => format!("keyword `{k}`"),
            Tok::Punct(c) => format!("`{c}`"),
            Tok::Eof => "the end of the file".into(),
        }
    }
}

const KEYWORDS: [&str; 6] = [
    "notices",
    "permutation",
    "session",
    "setup",
    "step",
    "teardown",
];

fn ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

fn ident_cont(b: u8) -> bool {
    ident_start(b) || b.is_ascii_digit() || b == b'$'
}

/// Splits the source into tokens; an error ends the scan (isolationtester's scanner stops at
/// the first one too, and the rest of the file cannot be tokenized reliably).
fn lex(src: &str) -> Result<Vec<(Tok, Span)>, Diag> {
    let b = src.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    while i < b.len() {
        let c = b[i];
        let start = i;
        match c {
            b'\n' | b' ' | b'\t' | b'\r' | 0x0c => i += 1,
            b'#' => {
                while i < b.len() && b[i] != b'\n' && b[i] != b'\r' {
                    i += 1;
                }
            }
            b'"' => {
                i += 1;
                let mut name = Vec::new();
                loop {
                    match b.get(i) {
                        None => {
                            return Err(Diag::new(
                                Span::new(start, start + 1),
                                "unterminated quoted identifier",
                                "this quote is never closed",
                            )
                            .help("close the name with `\"`"))
                        }
                        Some(b'\n') => {
                            return Err(Diag::new(
                                Span::new(start, i),
                                "unexpected newline in quoted identifier",
                                "the name starts here",
                            )
                            .help("a quoted name must end on its own line"))
                        }
                        Some(b'"') if b.get(i + 1) == Some(&b'"') => {
                            name.push(b'"');
                            i += 2;
                        }
                        Some(b'"') => {
                            i += 1;
                            break;
                        }
                        Some(&ch) => {
                            name.push(ch);
                            i += 1;
                        }
                    }
                }
                out.push((
                    Tok::Ident(String::from_utf8_lossy(&name).into_owned()),
                    Span::new(start, i),
                ));
            }
            b'{' => {
                i += 1;
                while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\r' | 0x0c) {
                    i += 1;
                }
                let body = i;
                while i < b.len() && b[i] != b'}' {
                    i += 1;
                }
                if i >= b.len() {
                    return Err(Diag::new(
                        Span::new(start, start + 1),
                        "unterminated sql block",
                        "this `{` is never closed",
                    )
                    .help("end the SQL block with `}` (an SQL block cannot contain `}`)"));
                }
                let mut end = i;
                while end > body && matches!(b[end - 1], b' ' | b'\t' | b'\r' | 0x0c) {
                    end -= 1;
                }
                out.push((
                    Tok::Sql(src[body..end].to_string()),
                    Span::new(start, i + 1),
                ));
                i += 1;
            }
            b'0'..=b'9' => {
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                let n = src[start..i]
                    .parse::<u32>()
                    .map_err(|_| Diag::new(Span::new(start, i), "number too large", "here"))?;
                out.push((Tok::Int(n), Span::new(start, i)));
            }
            b',' | b'(' | b')' | b'*' => {
                i += 1;
                out.push((Tok::Punct(c as char), Span::new(start, i)));
            }
            c if ident_start(c) => {
                while i < b.len() && ident_cont(b[i]) {
                    i += 1;
                }
                let word = &src[start..i];
                let tok = match KEYWORDS.iter().find(|k| **k == word) {
                    Some(k) => Tok::Keyword(k),
                    None => Tok::Ident(word.to_string()),
                };
                out.push((tok, Span::new(start, i)));
            }
            _ => {
                let len = src[start..].chars().next().map_or(1, char::len_utf8);
                let ch = &src[start..start + len];
                let d = Diag::new(
                    Span::new(start, start + len),
                    format!("unexpected character `{ch}`"),
                    "not part of the spec syntax",
                )
                .help("SQL goes inside `{ ... }`; `#` starts a comment");
                let d = swallowed_help(d, &out, src);
                return Err(d);
            }
        }
    }
    out.push((Tok::Eof, Span::new(src.len(), src.len())));
    Ok(out)
}

struct Parser {
    toks: Vec<(Tok, Span)>,
    pos: usize,
}

/// A parsed name with where it was written.
#[derive(Debug, Clone)]
struct Name {
    text: String,
    span: Span,
}

struct RawPermStep {
    name: Name,
    blockers: Vec<(Option<Name>, Option<u32>, Span)>,
}

impl Parser {
    fn peek(&self) -> &Tok {
        &self.toks[self.pos].0
    }
    fn span(&self) -> Span {
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
    fn unexpected(&self, wanted: &str) -> Diag {
        let t = self.peek();
        Diag::new(
            self.span(),
            format!("expected {wanted}, found {}", t.describe()),
            format!("expected {wanted}"),
        )
    }
    fn name(&mut self, what: &str) -> Result<Name, Diag> {
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
    fn sql(&mut self, after: &str) -> Result<String, Diag> {
        match self.peek().clone() {
            Tok::Sql(s) => {
                self.bump();
                Ok(s)
            }
            _ => Err(self.unexpected(&format!("an SQL block `{{ ... }}` after `{after}`"))),
        }
    }
}

/// Parses and checks one spec; every problem found, sorted by position.
pub fn parse(src: &str) -> Result<Spec, Vec<Diag>> {
    let toks = lex(src).map_err(|d| vec![d])?;
    let mut p = Parser { toks, pos: 0 };
    let spec = parse_tokens(&mut p).map_err(|d| vec![swallowed_help(d, &p.toks[..p.pos], src)])?;
    check(spec)
}

/// An unclosed `{` swallows spec text up to the next block's `}`, and the error shows up far
/// from the cause: name the brace.
fn swallowed_help(d: Diag, before: &[(Tok, Span)], src: &str) -> Diag {
    let swallowing = before.iter().rev().find(|(t, _)| matches!(t, Tok::Sql(body) if ["session", "step", "permutation", "setup", "teardown"].iter().any(|k| body.contains(&format!("\n{k} ")))));
    match swallowing {
        Some((_, span)) => {
            let line = |at: usize| src[..at].matches('\n').count() + 1;
            d.help(format!("the `{{` on line {} is not closed before the next section: its SQL block runs to the `}}` on line {} and swallows the spec text between", line(span.start), line(span.end - 1)))
        }
        None => d,
    }
}

/// The syntax: stops at the first error, as isolationtester's bison parser does (a spec has
/// no line structure to resynchronise on: an SQL block spans lines).
fn parse_tokens(p: &mut Parser) -> Result<Parsed, Diag> {
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

type Parsed = (
    Vec<String>,
    Option<String>,
    Vec<(Name, Session, Vec<Name>)>,
    Vec<(Vec<RawPermStep>, Span)>,
);

/// isolationtester's check_testspec: unique step names, steps and blockers that exist, no
/// blocker on its own session. Unlike isolationtester, every problem is reported, not the first.
fn check(parsed: Parsed) -> Result<Spec, Vec<Diag>> {
    let (setup, teardown, raw_sessions, raw_perms) = parsed;
    let mut diags = Vec::new();
    let mut by_name: std::collections::BTreeMap<String, (usize, usize, Span)> = Default::default();
    for (si, (_, _, names)) in raw_sessions.iter().enumerate() {
        for (ti, n) in names.iter().enumerate() {
            if let Some((_, _, first)) = by_name.get(&n.text) {
                diags.push(
                    Diag::new(
                        n.span,
                        format!("duplicate step name `{}`", n.text),
                        "defined again here",
                    )
                    .help(format!(
                        "step names are unique across the whole spec; the first `{}` is at byte {}",
                        n.text, first.start
                    )),
                );
            } else {
                by_name.insert(n.text.clone(), (si, ti, n.span));
            }
        }
    }
    let mut session_names: std::collections::BTreeMap<&str, Span> = Default::default();
    for (n, _, _) in &raw_sessions {
        if session_names.insert(&n.text, n.span).is_some() {
            diags.push(Diag::new(
                n.span,
                format!("duplicate session name `{}`", n.text),
                "defined again here",
            ));
        }
    }
    let mut permutations = Vec::new();
    for (steps, span) in &raw_perms {
        let mut out = Vec::new();
        for s in steps {
            let Some(&(own, step, _)) = by_name.get(&s.name.text) else {
                diags.push(
                    Diag::new(
                        s.name.span,
                        format!("undefined step `{}` in permutation", s.name.text),
                        "no step has this name",
                    )
                    .help(suggest(&s.name.text, by_name.keys())),
                );
                continue;
            };
            // A marker may name any step of this permutation, also a later one.
            let mut blockers = Vec::new();
            for (other, count, bspan) in &s.blockers {
                let Some(other) = other else {
                    blockers.push(Blocker::Once);
                    continue;
                };
                let in_perm = steps.iter().any(|x| x.name.text == other.text);
                match by_name.get(&other.text) {
                    Some(&(session, step, _)) if in_perm => {
                        if session == own {
                            diags.push(Diag::new(*bspan, format!("permutation step `{}` cannot block on its own session", s.name.text), format!("`{}` is a step of the same session", other.text)).help("a step of one session always completes before the session's next step starts"));
                        }
                        blockers.push(match count {
                            Some(count) => Blocker::Notices {
                                session,
                                step,
                                count: *count,
                            },
                            None => Blocker::Step { session, step },
                        });
                    }
                    Some(_) => diags.push(
                        Diag::new(
                            other.span,
                            format!("blocking step `{}` is not in this permutation", other.text),
                            "not listed in this permutation",
                        )
                        .help("a marker can only wait for a step of the same permutation"),
                    ),
                    None => diags.push(
                        Diag::new(
                            other.span,
                            format!(
                                "undefined blocking step `{}` referenced in permutation step `{}`",
                                other.text, s.name.text
                            ),
                            "no step has this name",
                        )
                        .help(suggest(&other.text, by_name.keys())),
                    ),
                }
            }
            out.push(PermStep {
                session: own,
                step,
                blockers,
            });
        }
        permutations.push(Permutation {
            steps: out,
            span: *span,
        });
    }
    if !diags.is_empty() {
        return Err(diags);
    }
    let sessions = raw_sessions.into_iter().map(|(_, s, _)| s).collect();
    Ok(Spec {
        setup,
        teardown,
        sessions,
        permutations,
    })
}

/// "did you mean" for a misspelt step name: the closest by edit distance, when close.
fn suggest<'a>(name: &str, known: impl Iterator<Item = &'a String>) -> String {
    let best = known.map(|k| (edit_distance(name, k), k)).min();
    match best {
        Some((d, k)) if d <= 2.max(name.len() / 3) => format!("did you mean `{k}`?"),
        _ => "steps are declared inside sessions: `step NAME { SQL }`".into(),
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            cur.push(
                (prev[j] + usize::from(ca != *cb))
                    .min(prev[j + 1] + 1)
                    .min(cur[j] + 1),
            );
        }
        prev = cur;
    }
    prev[b.len()]
}

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

mod check;
mod grammar;
mod lex;
use self::check::check;
use self::grammar::{parse_tokens, Parser};
use self::lex::lex;
use self::lex::swallowed_help;

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

/// Parses and checks one spec; every problem found, sorted by position.
pub(crate) fn parse(src: &str) -> Result<Spec, Vec<Diag>> {
    let toks = lex(src).map_err(|d| vec![d])?;
    let mut p = Parser { toks, pos: 0 };
    let spec = parse_tokens(&mut p).map_err(|d| vec![swallowed_help(d, &p.toks[..p.pos], src)])?;
    check(spec)
}

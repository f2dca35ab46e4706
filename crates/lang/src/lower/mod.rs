//! Name resolution and lowering: one variant of the syntax tree to the flat [`Program`] IR.
//!
//! Expressions that contain world operations or procedure calls are flattened: each such call
//! becomes its own instruction writing a temporary register, in evaluation order (left to right),
//! so that every world operation is exactly one step.
//!
//! The lowering context [`Cx`] and the function being lowered [`Fx`] live here; the passes are
//! split by what they lower: `declarations` (top-level items, in passes), `references` (names of
//! the world's things: SQL, signals, locks, sections), `statements`, `calls` (operations,
//! procedures, builtins), `expressions` (in actors, and pure ones for invariants and constants)
//! and `collections`.

mod calls;
mod collections;
mod declarations;
mod expressions;
mod references;
mod statements;

use std::collections::HashMap;
use std::sync::Arc;

use super::ast::{self, Ident, Item};
use super::diag::{Diag, Span};
use crate::ir::*;
use crate::sql as db;

/// The items of one variant: the base scenario's, with the variant's replacements applied.
pub(crate) struct VariantInput<'a> {
    pub scenario: &'a str,
    pub variant: &'a str,
    pub items: Vec<&'a Item>,
    pub expected: Option<Expected>,
    pub fingerprint: u32,
    /// Values for `param` declarations (the rest take their range's low end).
    pub params: &'a std::collections::BTreeMap<String, i64>,
    /// Runs a database's setup on the model (the caller's: the model is not in this crate).
    pub setup: &'a crate::SetupCheck,
}

/// Lowers one variant; `sources` holds the scenario and its libraries, which every span of
/// `input` points into.
pub(crate) fn lower(
    sources: &super::sources::SourceMap,
    input: VariantInput<'_>,
    diags: &mut Vec<Diag>,
) -> Program {
    let mut cx = Cx {
        src: sources.text(),
        sources,
        diags,
        consts: HashMap::new(),
        cells: HashMap::new(),
        logs: HashMap::new(),
        sections: HashMap::new(),
        section_names: vec![],
        procs: HashMap::new(),
        labels: vec![],
        in_const: false,
        locals: HashMap::new(),
        locks: HashMap::new(),
        has_database: false,
        db_flavour: None,
        named_databases: vec![],
        sql: vec![],
        explores_durations: false,
        setup: input.setup,
    };
    let mut prog = Program {
        scenario: input.scenario.to_string(),
        variant: input.variant.to_string(),
        procs: vec![],
        actors: vec![],
        cells: vec![],
        logs: vec![],
        sections: vec![],
        locals: vec![],
        locks: vec![],
        faults: vec![],
        fault_budget: 1,
        database: None,
        params: vec![],
        sql: vec![],
        clients: vec!["A".to_string()],
        nfs_cache_ms: None,
        gate: None,
        fs: vec![],
        invariants: vec![],
        expected: input.expected,
        expected_real: None,
        labels: vec![],
        explores_durations: false,
        split_calls: true,
        fingerprint: input.fingerprint,
    };

    // Declarations first, so that procedures and actors may refer to anything in any order.
    cx.collect_database_names(&input.items);
    cx.declare_params(&input.items, input.params, &mut prog);
    let declared = cx.declare_items(&input.items, &mut prog);

    cx.lower_procs(&declared.procs, &mut prog);
    cx.lower_actors(&declared.actors, &mut prog);
    cx.lower_faults(&declared.faults, &mut prog);
    if declared.actors.is_empty() {
        cx.diags.push(
            Diag::new(
                Span::new(0, 0),
                "the scenario has no actors",
                "nothing would run",
            )
            .help("declare at least one actor: `actor worker x 2 { ... }`"),
        );
    }

    cx.lower_invariants(&input.items, &mut prog);
    if !declared.named_databases.is_empty() {
        declarations::add_named_databases(&declared.named_databases, &mut prog);
    }
    prog.sections = cx.section_names.clone();
    prog.labels = std::mem::take(&mut cx.labels);
    prog.sql = std::mem::take(&mut cx.sql);
    prog.explores_durations = cx.explores_durations;
    prog.split_calls = prog.nfs_cache_ms.is_none();
    prog
}

struct Cx<'a> {
    src: &'a str,
    sources: &'a super::sources::SourceMap,
    diags: &'a mut Vec<Diag>,
    consts: HashMap<String, Value>,
    cells: HashMap<String, u32>,
    logs: HashMap<String, u32>,
    sections: HashMap<String, u32>,
    section_names: Vec<String>,
    procs: HashMap<String, (ProcId, usize)>,
    labels: Vec<Label>,
    /// Set while a constant or initial value is lowered: queries are not constants.
    in_const: bool,
    locals: HashMap<String, u32>,
    locks: HashMap<String, (u32, LockKind)>,
    has_database: bool,
    /// The flavour of the scenario's database, once its block is lowered: SQL is checked
    /// against what that server accepts (isolation levels, SET TRANSACTION spellings).
    db_flavour: Option<db::Flavour>,
    /// `database NAME` declarations, for `connect` and `connections`.
    named_databases: Vec<String>,
    /// Every SQL statement, prepared once (`Op::Sql` and `Query::Sql` index this).
    sql: Vec<Arc<db::Prepared>>,
    /// Some `sleep` or `work` takes `between(lo, hi)`.
    explores_durations: bool,
    /// Runs a database's setup statements on the model, to report a failing setup here.
    setup: &'a crate::SetupCheck,
}

/// The function being lowered.
struct Fx {
    code: Vec<Instr>,
    scopes: Vec<Vec<(String, Reg)>>,
    nregs: u32,
    loops: Vec<LoopCx>,
    /// Sections entered and `with` locks taken and not yet left, innermost last: `break`,
    /// `continue` and `return` leave them on the way out.
    open_sections: Vec<Open>,
    /// The `finally` blocks of the open `try`s (indexed by `Open::Try`), with how many scopes
    /// were open at the `try`: a copy of the block sees only the names declared before it.
    finallies: Vec<(ast::Block, usize)>,
    /// Inside a `finally` block: `break`, `continue` and `return` may not leave it.
    in_finally: u32,
}

#[derive(Debug, Clone, Copy)]
enum Open {
    Section(u32),
    /// A `with` lock, and the label of its implicit release.
    Lock(u32, u32),
    /// A `try` whose `finally` block is `Fx::finallies[i]`.
    Try(usize),
}

struct LoopCx {
    start: Pc,
    breaks: Vec<usize>,
    sections_at_entry: usize,
}

impl Fx {
    fn reg(&mut self) -> Reg {
        self.nregs += 1;
        self.nregs - 1
    }
    fn pc(&self) -> Pc {
        self.code.len() as Pc
    }
    fn emit(&mut self, i: Instr) -> usize {
        self.code.push(i);
        self.code.len() - 1
    }
    fn patch(&mut self, at: usize, target: Pc) {
        match &mut self.code[at] {
            Instr::Jump(t) | Instr::JumpIfNot(_, t) | Instr::TryEnter(t) => *t = target,
            _ => unreachable!("only jumps are patched"),
        }
    }
    fn lookup(&self, name: &str) -> Option<Reg> {
        self.scopes
            .iter()
            .rev()
            .flat_map(|s| s.iter().rev())
            .find(|(n, _)| n == name)
            .map(|(_, r)| *r)
    }
    fn bind(&mut self, name: &str, r: Reg) {
        if let Some(s) = self.scopes.last_mut() {
            s.push((name.to_string(), r));
        }
    }
}

impl<'a> Cx<'a> {
    fn err(
        &mut self,
        span: Span,
        msg: impl Into<String>,
        label: impl Into<String>,
        help: impl Into<String>,
    ) {
        self.diags.push(Diag::new(span, msg, label).help(help));
    }

    fn dup(&mut self, name: &Ident, what: &str) {
        let n = name.name.clone();
        self.err(
            name.span,
            format!("{what} `{n}` is declared twice"),
            "declared again here",
            format!("rename one of the two; names of {what}s must be unique"),
        );
    }

    fn label(&mut self, span: Span) -> u32 {
        let text = self
            .src
            .get(span.start..span.end)
            .unwrap_or("")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let line = self.line_of(span.start);
        let file = self.library_of(span.start);
        self.labels.push(Label { text, line, file });
        self.labels.len() as u32 - 1
    }

    /// The line of `offset` in its own file (the scenario's, or an imported library's).
    fn line_of(&self, offset: usize) -> u32 {
        self.sources.line_of(offset).1
    }

    /// The library `offset` is in, `None` in the scenario file itself.
    fn library_of(&self, offset: usize) -> Option<String> {
        let (file, _) = self.sources.line_of(offset);
        (file > 0).then(|| self.sources.files()[file].name.clone())
    }
}

/// The candidate with the smallest edit distance, when it is close enough to be a typo.
pub(crate) fn closest<'s>(
    name: &str,
    candidates: impl Iterator<Item = &'s str>,
) -> Option<&'s str> {
    candidates
        .map(|c| (levenshtein(name, c), c))
        .filter(|(d, c)| *d <= 2.max(name.len() / 4) && *d < c.len().max(name.len()))
        .min()
        .map(|(_, c)| c)
}

fn levenshtein(a: &str, b: &str) -> usize {
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

//! racelab-lang, the scenario language: lexing, parsing, checking and lowering `*.race` files
//! to the IR ([`ir`]), with the IR's expression evaluation ([`eval`], [`collections`]), the SQL
//! front end ([`sql`]) and the diagnostics.
//!
//! Architecture invariant: nothing in this crate does I/O but reading the libraries a scenario
//! imports, through the [`Loader`] the caller gives ([`FsLoader`] reads them from the
//! filesystem). It depends on no other racelab crate: running a database's setup is the model's
//! business, so the caller passes that check in ([`SetupCheck`]; `racelab_core::lang::compile`
//! passes the model's).
//!
//! # The public API
//!
//! What other crates call, and nothing else (`#![warn(unreachable_pub)]` keeps it so):
//! - compiling: [`compile_with_loader`] (through `racelab_core::lang::compile*`, which pass the
//!   model's [`SetupCheck`]), [`decode_source`], [`Scenario`], the [`Loader`]s, and the token
//!   fingerprint ([`fingerprint_tokens`], [`fnv32`]);
//! - the IR the model runs: [`ir`] (programs, instructions, values, the SQL they carry), its
//!   pure evaluation ([`eval`], [`collections`]) and the SQL front end ([`sql`]: `prepare`,
//!   expressions), with [`paths::check_confined`];
//! - diagnostics: [`Diag`], [`ScenarioErrors`], [`Span`], [`render_plain`];
//! - `racelab fmt` and the grammar tests: [`fmt::format`], [`lexer`] (tokens) and the keyword
//!   lists in [`parser`].
//!
//! The AST, the lowering passes, imports' resolution and the source map are private.

// The API is what the crate root exports; anything else `pub` is a warning (CI denies warnings).
#![warn(unreachable_pub)]

pub mod collections;
pub mod eval;
pub mod ir;
pub mod paths;
pub mod sql;

pub(crate) mod ast;
pub mod diag;
pub mod fmt;
pub(crate) mod imports;
pub mod lexer;
pub(crate) mod lower;
pub mod parser;
pub(crate) mod sources;
pub(crate) mod span;

use crate::ir::{Expected, Program};
use ast::{ExpectKind, Item};
pub use diag::{render_plain, Diag, ScenarioErrors, Span};
pub use imports::{FsLoader, Loader, MemLoader};
use sources::SourceMap;

/// A checked scenario: its metadata and one [`Program`] per variant.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub about: Option<String>,
    pub sources: Vec<String>,
    pub variants: Vec<Program>,
}

impl Scenario {
    pub fn variant(&self, name: &str) -> Option<&Program> {
        self.variants.iter().find(|p| p.variant == name)
    }
    pub fn variant_names(&self) -> Vec<&str> {
        self.variants.iter().map(|p| p.variant.as_str()).collect()
    }
}

/// Decodes a scenario file's bytes (named `file` in diagnostics). A file that is not UTF-8 is
/// an error that points at its first invalid byte, shown in the text as decoded lossily (the
/// text before that byte is the file's own).
pub fn decode_source(file: &str, bytes: Vec<u8>) -> Result<String, ScenarioErrors> {
    match String::from_utf8(bytes) {
        Ok(s) => Ok(s),
        Err(e) => {
            let at = e.utf8_error().valid_up_to();
            let bad = e.as_bytes()[at];
            let shown = String::from_utf8_lossy(e.as_bytes()).into_owned();
            let width = shown[at..].chars().next().map_or(0, char::len_utf8);
            let diag = Diag::new(
                Span::new(at, at + width),
                "the file is not UTF-8 text",
                format!("byte 0x{bad:02X} is not valid UTF-8 here"),
            )
            .help("save the file as UTF-8 (from Latin-1: `iconv -f latin1 -t utf-8 FILE`)");
            Err(ScenarioErrors::new(file, &shown, vec![diag]))
        }
    }
}

/// Runs a `database` block's setup statements on a fresh model database: `Err` with the
/// server's complaint if they fail (a duplicate key, an unknown table).
pub type SetupCheck =
    dyn Fn(sql::Flavour, &[std::sync::Arc<sql::Prepared>]) -> Result<(), String> + Sync;

/// Parses and checks `src` (named `file` in diagnostics), every problem reported at once, with
/// values for some of the scenario's `param`s (the rest take their range's low end; a value for
/// a parameter the scenario does not declare is an error), reading imported libraries through
/// `loader` and checking database setups with `setup`.
pub fn compile_with_loader(
    file: &str,
    src: &str,
    params: &std::collections::BTreeMap<String, i64>,
    loader: &dyn Loader,
    setup: &SetupCheck,
) -> Result<Scenario, ScenarioErrors> {
    let mut diags = Vec::new();
    let mut map = SourceMap::new(file, src);
    let sc = parser::parse(src, &mut diags);
    if sc.too_deep {
        // The tree was cut short: what later passes would say about it is noise.
        return Err(ScenarioErrors::new(file, src, diags));
    }
    if sc.library {
        let name = sc.name.as_ref().map_or("", |n| n.name.as_str());
        diags.push(
            Diag::new(sc.header, format!("`{name}` is a library, not a scenario"), "a library")
                .help("a library is imported by scenarios (`import \"lib/NAME.race\"`); check or explore the scenarios that import it"),
        );
        return Err(ScenarioErrors::new(file, src, diags));
    }
    let before = diags.len();
    let resolved = imports::resolve(&sc.items, &mut map, loader, &mut diags);
    let Some(base_items) = resolved.filter(|_| diags.len() == before && !sc.broken_import) else {
        // A library that is missing, broken or in conflict: what the lowering would say about
        // the names it should have brought is noise.
        return Err(ScenarioErrors::from_map(&map, diags));
    };
    // The token fingerprint covers every imported file: editing a library invalidates the
    // tokens of the scenarios that import it.
    let mut tree_fingerprint = fingerprint_tokens(src);
    for i in 1..map.files().len() {
        tree_fingerprint = fnv32(
            tree_fingerprint,
            &fingerprint_tokens(map.file_text(i)).to_le_bytes(),
        );
    }
    let name = sc.name.as_ref().map(|n| n.name.clone()).unwrap_or_default();

    let mut variants = Vec::new();
    let mut inputs: Vec<(String, Vec<&Item>, Vec<ast::Expect>, Span)> = Vec::new();
    if sc.variants.is_empty() {
        inputs.push((
            "default".to_string(),
            base_items.iter().collect(),
            sc.expects.clone(),
            Span::default(),
        ));
    } else {
        for e in &sc.expects {
            diags.push(
                Diag::new(e.span, "expectation outside of a variant", "belongs to a variant")
                    .help("this scenario has variants: write each `expect` inside its `variant NAME { ... }`"),
            );
        }
        let mut seen = std::collections::HashSet::new();
        for v in &sc.variants {
            if !seen.insert(v.name.name.clone()) {
                diags.push(
                    Diag::new(
                        v.name.span,
                        format!("variant `{}` is declared twice", v.name.name),
                        "declared again here",
                    )
                    .help("variant names must be unique"),
                );
            }
        }
        let mut cycles_reported = std::collections::BTreeSet::new();
        for v in &sc.variants {
            // Oldest ancestor first: each variant in the chain applies its replacements on top
            // of its parent's; the nearest variant that states expectations gives them.
            let chain = inheritance_chain(&sc.variants, v, &mut cycles_reported, &mut diags);
            let mut items: Vec<&Item> = base_items.iter().collect();
            for ancestor in &chain {
                items = apply_variant(items, ancestor, &mut diags);
            }
            let nearest = |real: bool| {
                chain
                    .iter()
                    .rev()
                    .map(|a| {
                        a.expects
                            .iter()
                            .filter(|e| e.real == real)
                            .cloned()
                            .collect::<Vec<_>>()
                    })
                    .find(|es| !es.is_empty())
                    .unwrap_or_default()
            };
            let mut expects = nearest(false);
            expects.extend(nearest(true));
            inputs.push((v.name.name.clone(), items, expects, v.name.span));
        }
    }
    for (variant, items, all_expects, span) in inputs {
        let (real, expects): (Vec<ast::Expect>, Vec<ast::Expect>) =
            all_expects.into_iter().partition(|e| e.real);
        let expects = &expects;
        let expected = expectation(expects, &variant, span, &mut diags);
        let expected_real = (!real.is_empty())
            .then(|| expectation(&real, &variant, span, &mut diags))
            .flatten();
        let fingerprint = fnv32(tree_fingerprint, variant.as_bytes());
        let prog = lower::lower(
            &map,
            lower::VariantInput {
                scenario: &name,
                variant: &variant,
                items,
                expected,
                fingerprint,
                params,
                setup,
            },
            &mut diags,
        );
        check_expectation(&prog, expects, &mut diags);
        check_expectation(&prog, &real, &mut diags);
        let mut prog = prog;
        prog.expected_real = expected_real;
        if prog.split_calls && uses_split_calls(&prog) {
            // `stat` and `write` became two steps each (issue 17): a token recorded before
            // that would replay a different interleaving, so it must not fit.
            prog.fingerprint = fnv32(prog.fingerprint, b"stat and write in two steps");
        }
        variants.push(prog);
    }
    let declared: Vec<&str> = base_items
        .iter()
        .filter_map(|i| {
            if let Item::Param { name, .. } = i {
                Some(name.name.as_str())
            } else {
                None
            }
        })
        .collect();
    for unknown in params.keys().filter(|k| !declared.contains(&k.as_str())) {
        let help = if declared.is_empty() {
            "this scenario declares no parameters".to_string()
        } else {
            format!("its parameters: {}", declared.join(", "))
        };
        diags.push(Diag::new(Span::default(), format!("a value was given for parameter `{unknown}`, which the scenario does not declare"), "no such parameter").help(help));
    }
    if !diags.is_empty() {
        return Err(ScenarioErrors::from_map(&map, diags));
    }
    Ok(Scenario {
        name,
        about: sc.about.map(|a| a.0),
        sources: sc.sources.into_iter().map(|s| s.0).collect(),
        variants,
    })
}

/// The variants whose replacements make up `v`, oldest ancestor first and `v` last. An unknown
/// parent, a variant that extends itself, or a cycle is reported (a cycle once, at every
/// `extends` in it) and ends the chain there.
fn inheritance_chain<'a>(
    all: &'a [ast::Variant],
    v: &'a ast::Variant,
    cycles_reported: &mut std::collections::BTreeSet<Vec<String>>,
    diags: &mut Vec<Diag>,
) -> Vec<&'a ast::Variant> {
    let mut chain = vec![v];
    let mut cur = v;
    while let Some(parent) = &cur.parent {
        if parent.name == cur.name.name {
            diags.push(
                Diag::new(parent.span, format!("variant `{}` extends itself", cur.name.name), "the variant it extends")
                    .also(cur.name.span, "is this variant")
                    .help("a variant extends another variant of the same scenario; without `extends` it starts from the top-level declarations"),
            );
            break;
        }
        let Some(p) = all.iter().find(|c| c.name.name == parent.name) else {
            let others = all
                .iter()
                .map(|c| c.name.name.as_str())
                .filter(|n| *n != cur.name.name);
            let help = match lower::closest(&parent.name, others.clone()) {
                Some(best) => format!("did you mean `{best}`?"),
                None => format!(
                    "the variants here: {}",
                    others.collect::<Vec<_>>().join(", ")
                ),
            };
            diags.push(
                Diag::new(
                    parent.span,
                    format!(
                        "variant `{}` extends `{}`, which is not a variant of this scenario",
                        cur.name.name, parent.name
                    ),
                    "no such variant",
                )
                .help(help),
            );
            break;
        };
        if let Some(at) = chain.iter().position(|c| std::ptr::eq(*c, p)) {
            // `p` is already in the chain: the `extends` from `p` onwards go round in a circle.
            let cycle = &chain[at..];
            let mut key: Vec<String> = cycle.iter().map(|c| c.name.name.clone()).collect();
            key.sort();
            if cycles_reported.insert(key) {
                let names: Vec<String> = cycle
                    .iter()
                    .chain(std::iter::once(&p))
                    .map(|c| format!("`{}`", c.name.name))
                    .collect();
                let mut d = Diag::new(
                    parent.span,
                    format!("variants extend each other in a cycle: {}", names.join(" extends ")),
                    "closes the cycle",
                )
                .help("one variant of the cycle must start from the top-level declarations: remove its `extends`");
                for c in cycle.iter().filter(|c| !std::ptr::eq(**c, cur)) {
                    if let Some(pp) = &c.parent {
                        d = d.also(
                            pp.span,
                            format!("`{}` extends `{}` here", c.name.name, pp.name),
                        );
                    }
                }
                diags.push(d);
            }
            break;
        }
        chain.push(p);
        cur = p;
    }
    chain.reverse();
    chain
}

/// `items` with `v`'s constants, procedures, faults and settings put in place of theirs.
fn apply_variant<'a>(
    mut items: Vec<&'a Item>,
    v: &'a ast::Variant,
    diags: &mut Vec<Diag>,
) -> Vec<&'a Item> {
    for repl in &v.items {
        let (name, kind) = match repl {
            Item::Const { name, .. } => (name, "constant"),
            Item::Proc(p) => (&p.name, "procedure"),
            Item::Fault(f) => (&f.name, "fault"),
            Item::FaultBudget { .. } => {
                items.retain(|it| !matches!(it, Item::FaultBudget { .. }));
                items.push(repl);
                continue;
            }
            Item::Gate { .. } => {
                items.retain(|it| !matches!(it, Item::Gate { .. }));
                items.push(repl);
                continue;
            }
            Item::Nfs { .. } => {
                items.retain(|it| !matches!(it, Item::Nfs { .. }));
                items.push(repl);
                continue;
            }
            _ => continue,
        };
        let slot = items.iter().position(|it| match (it, repl) {
            (Item::Const { name: n, .. }, Item::Const { .. }) => n.name == name.name,
            (Item::Proc(p), Item::Proc(_)) => p.name.name == name.name,
            (Item::Fault(f), Item::Fault(_)) => f.name.name == name.name,
            _ => false,
        });
        // A variant may add faults; constants and procedures it may only replace, so that a
        // misspelt name is an error, not a silent no-op.
        if slot.is_none() && matches!(repl, Item::Fault(_)) {
            items.push(repl);
            continue;
        }
        match slot {
            Some(i) => {
                if let (Item::Proc(old), Item::Proc(new)) = (items[i], repl) {
                    if old.params.len() != new.params.len() {
                        diags.push(
                            Diag::new(new.name.span, format!("`{}` takes {} parameters here but {} in the scenario", name.name, new.params.len(), old.params.len()), "different parameters")
                                .help("a variant's procedure replaces the original and must take the same parameters"),
                        );
                    }
                }
                items[i] = repl;
            }
            None => diags.push(
                Diag::new(name.span, format!("variant `{}` replaces {kind} `{}`, which the scenario does not declare", v.name.name, name.name), "nothing to replace")
                    .help(format!("declare `{}` at the top level; a variant only replaces constants and procedures", name.name)),
            ),
        }
    }
    items
}

fn expectation(
    expects: &[ast::Expect],
    variant: &str,
    span: Span,
    diags: &mut Vec<Diag>,
) -> Option<Expected> {
    if expects.len() > 1 {
        let all_violates = expects
            .iter()
            .all(|e| matches!(e.kind, ExpectKind::Violates(_)));
        if !all_violates {
            diags.push(
                Diag::new(
                    expects[1].span,
                    format!("variant `{variant}` has conflicting expectations"),
                    "second expectation",
                )
                .help("a variant either holds, deadlocks, or violates one or more invariants"),
            );
        }
    }
    let _ = span;
    let mut names = Vec::new();
    for e in expects {
        match &e.kind {
            ExpectKind::Holds => return Some(Expected::Holds),
            ExpectKind::Deadlock => return Some(Expected::Deadlock),
            ExpectKind::Violates(ns) => names.extend(ns.iter().map(|n| n.name.clone())),
        }
    }
    (!names.is_empty()).then_some(Expected::Violates(names))
}

fn check_expectation(prog: &Program, expects: &[ast::Expect], diags: &mut Vec<Diag>) {
    for e in expects {
        if let ExpectKind::Violates(ns) = &e.kind {
            for n in ns {
                let known = prog.invariants.iter().any(|i| i.name == n.name)
                    || crate::ir::oracle::ALL.contains(&n.name.as_str());
                if !known {
                    let mut names: Vec<&str> =
                        prog.invariants.iter().map(|i| i.name.as_str()).collect();
                    names.extend(crate::ir::oracle::ALL);
                    diags.push(
                        Diag::new(
                            n.span,
                            format!("unknown invariant `{}`", n.name),
                            "not an invariant",
                        )
                        .help(format!("invariants here: {}", names.join(", "))),
                    );
                }
            }
        }
    }
}

/// Whether the program makes a call the machine performs in two steps (`stat`, `write`).
fn uses_split_calls(prog: &crate::ir::Program) -> bool {
    prog.procs.iter().flat_map(|p| &p.code).any(|i| {
        matches!(
            i,
            crate::ir::Instr::Op {
                op: crate::ir::Op::Stat | crate::ir::Op::Write,
                ..
            }
        )
    })
}

/// A fingerprint of the scenario's tokens: comments and layout may change without invalidating
/// replay tokens; any change to what the scenario does invalidates them.
pub fn fingerprint_tokens(src: &str) -> u32 {
    let mut ignored = Vec::new();
    let mut h = 0x811c_9dc5u32;
    for t in lexer::lex(src, &mut ignored) {
        h = fnv32(h, format!("{:?}", t.tok).as_bytes());
    }
    h
}

pub fn fnv32(mut h: u32, bytes: &[u8]) -> u32 {
    for b in bytes {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

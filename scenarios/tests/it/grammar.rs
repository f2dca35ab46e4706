//! The editor grammar (editors/vscode/syntaxes/racelab.tmLanguage.json) against racelab's own
//! lexer, on every built-in scenario: strings, comments, numbers and keywords get the scopes an
//! editor colours them by, and no ordinary name is coloured as a keyword.
//!
//! A small TextMate engine runs the grammar as editors do, line by line: at each position the
//! pattern whose match starts first wins (the earlier one on a tie), a begin/end rule opens a
//! region that ends at its `end` match, and inside a region its own patterns apply.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use fancy_regex::Regex;
use racelab_core::lang::lexer::{lex, Tok};
use racelab_core::lang::parser::{ITEM_KEYWORDS, KEYWORDS};
use serde_json::Value;

/// One rule of the grammar, compiled.
enum Rule {
    Match {
        re: Regex,
        name: Option<String>,
        /// Capture group scopes: the group's span gets the name instead of the whole match.
        captures: Vec<(usize, String)>,
    },
    Region {
        begin: Regex,
        end: Regex,
        name: Option<String>,
        patterns: Vec<Rule>,
    },
}

fn compile(rule: &Value, repo: &HashMap<String, Value>) -> Vec<Rule> {
    if let Some(inc) = rule["include"].as_str() {
        let key = inc.trim_start_matches('#');
        let target = repo
            .get(key)
            .unwrap_or_else(|| panic!("the grammar includes #{key}, which it does not define"));
        return compile(target, repo);
    }
    if let Some(list) = rule["patterns"].as_array() {
        if rule["begin"].is_null() {
            return list.iter().flat_map(|r| compile(r, repo)).collect();
        }
    }
    let re = |field: &str| {
        let src = rule[field].as_str().expect("a pattern");
        Regex::new(src).unwrap_or_else(|e| panic!("the grammar's `{src}` does not compile: {e}"))
    };
    let name = rule["name"].as_str().map(str::to_string);
    if rule["match"].is_string() {
        let captures = rule["captures"]
            .as_object()
            .map(|c| {
                c.iter()
                    .map(|(k, v)| {
                        (
                            k.parse().expect("a group number"),
                            v["name"].as_str().expect("a scope").to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        return vec![Rule::Match {
            re: re("match"),
            name,
            captures,
        }];
    }
    let patterns = rule["patterns"]
        .as_array()
        .map(|l| l.iter().flat_map(|r| compile(r, repo)).collect())
        .unwrap_or_default();
    vec![Rule::Region {
        begin: re("begin"),
        end: re("end"),
        name,
        patterns,
    }]
}

/// The grammar's top-level rules.
fn grammar() -> Vec<Rule> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../editors/vscode/syntaxes/racelab.tmLanguage.json");
    let g: Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("the grammar"))
        .expect("the grammar is JSON");
    let repo: HashMap<String, Value> = g["repository"]
        .as_object()
        .expect("a repository")
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    g["patterns"]
        .as_array()
        .expect("top-level patterns")
        .iter()
        .flat_map(|r| compile(r, &repo))
        .collect()
}

/// The earliest match at or after `pos` in `line` among `rules`: (rule index, start, end).
fn earliest(rules: &[Rule], line: &str, pos: usize) -> Option<(usize, usize, usize)> {
    let mut best: Option<(usize, usize, usize)> = None;
    for (i, r) in rules.iter().enumerate() {
        let re = match r {
            Rule::Match { re, .. } => re,
            Rule::Region { begin, .. } => begin,
        };
        if let Ok(Some(m)) = re.find_from_pos(line, pos) {
            if best.is_none_or(|(_, s, _)| m.start() < s) {
                best = Some((i, m.start(), m.end()));
            }
        }
    }
    best
}

/// Scopes every byte of `line` (outer scopes first), from `pos`, until `end` matches (inside a
/// region) or the line ends. Returns where scanning stopped.
fn scan(
    rules: &[Rule],
    line: &str,
    mut pos: usize,
    end: Option<&Regex>,
    stack: &[String],
    scopes: &mut [Vec<String>],
) -> usize {
    loop {
        let end_at = end.and_then(|e| e.find_from_pos(line, pos).ok().flatten());
        let next = earliest(rules, line, pos);
        match (end_at, next) {
            (Some(e), n) if n.is_none_or(|(_, s, _)| e.start() <= s) => {
                for s in &mut scopes[pos..e.end()] {
                    *s = stack.to_vec();
                }
                return e.end();
            }
            (_, None) => {
                for s in &mut scopes[pos..] {
                    *s = stack.to_vec();
                }
                return line.len();
            }
            (_, Some((i, start, stop))) => {
                for s in &mut scopes[pos..start] {
                    *s = stack.to_vec();
                }
                match &rules[i] {
                    Rule::Match { re, name, captures } => {
                        let mut inner = stack.to_vec();
                        inner.extend(name.clone());
                        for s in &mut scopes[start..stop] {
                            *s = inner.clone();
                        }
                        if let Ok(Some(c)) = re.captures_from_pos(line, start) {
                            for (g, scope) in captures {
                                if let Some(m) = c.get(*g) {
                                    for s in &mut scopes[m.start()..m.end()] {
                                        s.push(scope.clone());
                                    }
                                }
                            }
                        }
                        // An empty match must not stall the scan.
                        pos = stop.max(start + 1).min(line.len());
                    }
                    Rule::Region {
                        end: region_end,
                        name,
                        patterns,
                        ..
                    } => {
                        let mut inner = stack.to_vec();
                        inner.extend(name.clone());
                        for s in &mut scopes[start..stop] {
                            *s = inner.clone();
                        }
                        pos = scan(patterns, line, stop, Some(region_end), &inner, scopes);
                    }
                }
                if pos >= line.len() {
                    return line.len();
                }
            }
        }
    }
}

/// Each byte's scopes in a whole file.
fn highlight(rules: &[Rule], src: &str) -> Vec<Vec<String>> {
    let mut scopes = vec![Vec::new(); src.len()];
    let mut offset = 0;
    for line in src.split_inclusive('\n') {
        let text = line.trim_end_matches('\n');
        let mut line_scopes = vec![Vec::new(); text.len()];
        scan(rules, text, 0, None, &[], &mut line_scopes);
        scopes[offset..offset + text.len()].clone_from_slice(&line_scopes);
        offset += line.len();
    }
    scopes
}

/// Every built-in scenario and library file.
fn race_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for d in [dir.to_path_buf(), dir.join("lib")] {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.path().extension().is_some_and(|x| x == "race") {
                files.push(e.path());
            }
        }
    }
    files.sort();
    files
}

/// Words that are keywords only where they appear (`unlink(p) ignore ENOENT`, `try { } finally
/// { }`): the grammar colours them as keywords everywhere, which names rarely collide with.
const CONTEXTUAL: &[&str] = &["try", "finally", "ignore"];

fn has(scopes: &[String], prefix: &str) -> bool {
    scopes.iter().any(|s| s.starts_with(prefix))
}

#[test]
fn the_editor_grammar_colours_built_in_scenarios_as_racelab_reads_them() {
    let rules = grammar();
    let files = race_files();
    assert!(files.len() >= 10, "only {} scenario files", files.len());
    let mut checked = 0;
    for file in files {
        let src = std::fs::read_to_string(&file).expect("read a scenario");
        let name = file.file_name().unwrap_or_default().to_string_lossy();
        let scopes = highlight(&rules, &src);
        let mut diags = Vec::new();
        let tokens = lex(&src, &mut diags);
        assert!(diags.is_empty(), "{name}: {diags:?}");
        let at = |pos: usize| {
            let line = src[..pos].matches('\n').count() + 1;
            format!("{name}:{line}")
        };
        let mut covered = vec![false; src.len()];
        for t in &tokens {
            let (s, e) = (t.span.start, t.span.end);
            covered[s..e].iter_mut().for_each(|c| *c = true);
            let text = &src[s..e];
            match &t.tok {
                Tok::Str(_) => {
                    for (p, scope) in scopes.iter().enumerate().take(e).skip(s) {
                        assert!(
                            has(scope, "string.quoted"),
                            "{}: `{text}` is not all string: byte {} has {:?}",
                            at(s),
                            p - s,
                            scope
                        );
                    }
                }
                Tok::Int(_) | Tok::Duration(_) => assert!(
                    has(&scopes[s], "constant.numeric"),
                    "{}: `{text}` is not a number: {:?}",
                    at(s),
                    scopes[s]
                ),
                Tok::Ident(w) if KEYWORDS.contains(&w.as_str()) => assert!(
                    has(&scopes[s], "keyword") || has(&scopes[s], "constant.language"),
                    "{}: keyword `{w}` is not coloured: {:?}",
                    at(s),
                    scopes[s]
                ),
                Tok::Ident(w) if t.nl_before && ITEM_KEYWORDS.contains(&w.as_str()) => assert!(
                    has(&scopes[s], "storage.type"),
                    "{}: item `{w}` is not a declaration: {:?}",
                    at(s),
                    scopes[s]
                ),
                Tok::Ident(w) if CONTEXTUAL.contains(&w.as_str()) => {}
                Tok::Ident(w) => assert!(
                    !has(&scopes[s], "keyword.control"),
                    "{}: the name `{w}` is coloured as a keyword",
                    at(s)
                ),
                _ => {}
            }
            checked += 1;
        }
        // What the lexer skipped and is not blank is a comment, and coloured as one.
        for (p, c) in src.char_indices() {
            if !covered[p] && !c.is_whitespace() {
                assert!(
                    has(&scopes[p], "comment"),
                    "{}: `{c}` outside any token is not in a comment: {:?}",
                    at(p),
                    scopes[p]
                );
            }
        }
    }
    assert!(checked > 5_000, "only {checked} tokens checked");
}

#[test]
fn the_grammar_knows_every_keyword_racelab_reserves_or_starts_an_item_with() {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../editors/vscode/syntaxes/racelab.tmLanguage.json"),
    )
    .expect("the grammar");
    for w in KEYWORDS.iter().chain(ITEM_KEYWORDS) {
        assert!(
            text.contains(&format!("|{w}|"))
                || text.contains(&format!("({w}|"))
                || text.contains(&format!("|{w})")),
            "the grammar does not name `{w}`"
        );
    }
}

//! `prepare`: SQL text → a small statement tree the model executes.
//!
//! Parsing is sqlparser's (GenericDialect, which accepts both MySQL's and PostgreSQL's spellings);
//! this module lowers its very general AST to the subset the model implements and refuses
//! everything else by name, so a scenario never runs a statement whose clauses were silently
//! ignored. Placeholders are numbered here, once, in the order they appear in the text.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::Arc;

use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, Tokenizer};

use super::subset::unsupported;
use crate::ir::sql::{Prepared, Session, Stmt, Strength};

mod clauses;
mod lower;
use self::lower::Lower;

/// Limits that keep parsing, lowering and evaluation well inside the stack.
const MAX_TOKENS: usize = 4000;
const MAX_DEPTH: usize = 64;

/// Parses `sql` (one statement) and lowers it to the subset, or says what is not supported.
///
/// Placeholders: `?`, Python DB-API's `%s` (rewritten to `?` before parsing, outside quotes),
/// or PostgreSQL's `$1`, `$2`, … — not mixed.
pub fn prepare(sql: &str) -> Result<Arc<Prepared>, String> {
    let (text, weaker) = weaker_lock_clause(&rewrite_pyformat(sql));
    let placeholders = Placeholders::scan(&text)?;
    let dialect = GenericDialect {};
    let statements = Parser::parse_sql(&dialect, &text)
        .map_err(|e| format!("cannot parse `{}`: {e}", clip(sql)))?;
    let statement = match statements.as_slice() {
        [one] => one,
        [] => return Err("empty SQL: expected one statement".to_string()),
        more => {
            return Err(format!(
                "expected one statement, found {} in `{}`",
                more.len(),
                clip(sql)
            ))
        }
    };
    let mut stmt = Lower {
        placeholders: &placeholders,
        qualifiers: Vec::new(),
        depth: Cell::new(0),
    }
    .statement(statement)?;
    if let (Stmt::Select(s), Some(strength)) = (&mut stmt, weaker) {
        s.strength = strength;
    }
    if let Stmt::SetLevel { session, .. } = &mut stmt {
        // sqlparser drops MySQL's SESSION keyword in SET SESSION TRANSACTION; the text keeps it.
        let words: Vec<String> = text
            .split_whitespace()
            .take(3)
            .map(str::to_ascii_uppercase)
            .collect();
        if *session == Session::Transaction && words.get(1).is_some_and(|w| w == "SESSION") {
            *session = Session::MySql;
        } else if words.get(1).is_some_and(|w| w == "GLOBAL" || w == "LOCAL") {
            return Err(unsupported("SET GLOBAL/LOCAL TRANSACTION (the model sets the transaction's or the session's level)"));
        }
    }
    Ok(Arc::new(Prepared {
        sql: sql.to_string(),
        params: placeholders.count,
        stmt,
    }))
}

/// PostgreSQL's `FOR KEY SHARE` and `FOR NO KEY UPDATE`, which sqlparser does not read:
/// rewritten to `FOR SHARE` / `FOR UPDATE` (the same length, padded, so positions in error
/// messages hold), with the strength they stand for.
fn weaker_lock_clause(text: &str) -> (String, Option<Strength>) {
    let upper = text.to_ascii_uppercase();
    let words: Vec<(usize, &str)> = upper
        .split_whitespace()
        .map(|w| (w.as_ptr() as usize - upper.as_ptr() as usize, w))
        .collect();
    for i in 0..words.len() {
        let at = |k: usize| words.get(i + k).map(|(_, w)| *w);
        let (strength, last) = match (at(0), at(1), at(2), at(3)) {
            (Some("FOR"), Some("KEY"), Some(w), _) if w.starts_with("SHARE") => {
                (Strength::KeyShare, 2)
            }
            (Some("FOR"), Some("NO"), Some("KEY"), Some(w)) if w.starts_with("UPDATE") => {
                (Strength::NoKeyUpdate, 3)
            }
            _ => continue,
        };
        let start = words[i].0;
        let keyword = if strength == Strength::KeyShare {
            "SHARE"
        } else {
            "UPDATE"
        };
        let end = words[i + last].0 + keyword.len();
        let replacement = format!("FOR {keyword}");
        let padded = format!("{replacement:<width$}", width = end - start);
        let mut out = String::with_capacity(text.len());
        out.push_str(&text[..start]);
        out.push_str(&padded);
        out.push_str(&text[end..]);
        return (out, Some(strength));
    }
    (text.to_string(), None)
}

/// The statement with `FOR KEY SHARE` / `FOR NO KEY UPDATE` written as `FOR SHARE` / `FOR
/// UPDATE`, for parsers that know only those (the result columns do not depend on it).
pub fn with_plain_lock_clause(sql: &str) -> String {
    weaker_lock_clause(sql).0
}

/// The first 80 characters of a statement, for messages.
fn clip(sql: &str) -> String {
    let sql = sql.trim();
    match sql.char_indices().nth(80) {
        Some((i, _)) => format!("{}…", &sql[..i]),
        None => sql.to_string(),
    }
}

/// Replaces `%s` outside quotes and comments by `? ` (same length, so error positions hold).
fn rewrite_pyformat(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        out.push(c);
        match quote {
            Some('-') if c == '\n' => quote = None,
            Some(q) if c == q && q != '-' => quote = None,
            Some(_) => {}
            None if matches!(c, '\'' | '"' | '`') => quote = Some(c),
            None if c == '-' && chars.peek() == Some(&'-') => quote = Some('-'),
            None if c == '%' && chars.peek() == Some(&'s') => {
                chars.next();
                out.pop();
                out.push_str("? ");
            }
            None => {}
        }
    }
    out
}

/// Where each placeholder is in the text, and so which parameter it takes.
struct Placeholders {
    /// `?` placeholders by (line, column), numbered in text order.
    positional: BTreeMap<(u64, u64), usize>,
    count: usize,
}

impl Placeholders {
    fn scan(text: &str) -> Result<Placeholders, String> {
        let tokens = Tokenizer::new(&GenericDialect {}, text)
            .tokenize_with_location()
            .map_err(|e| format!("cannot parse `{}`: {e}", clip(text)))?;
        let words = tokens
            .iter()
            .filter(|t| !matches!(t.token, Token::Whitespace(_)))
            .count();
        if words > MAX_TOKENS {
            return Err(format!(
                "statement too long for the model: {words} tokens (at most {MAX_TOKENS})"
            ));
        }
        let mut positional = BTreeMap::new();
        let mut numbered = 0;
        for t in &tokens {
            let Token::Placeholder(p) = &t.token else {
                continue;
            };
            if p == "?" {
                let n = positional.len();
                positional.insert((t.span.start.line, t.span.start.column), n);
            } else {
                numbered = numbered.max(dollar_number(p)?);
            }
        }
        if !positional.is_empty() && numbered > 0 {
            return Err("mixed placeholder styles: use either ?/%s or $1, $2, …".to_string());
        }
        Ok(Placeholders {
            count: positional.len().max(numbered),
            positional,
        })
    }
}

fn dollar_number(p: &str) -> Result<usize, String> {
    p.strip_prefix('$')
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|&n| n >= 1)
        .ok_or_else(|| format!("unsupported placeholder `{p}`: use ?, %s or $1, $2, …"))
}

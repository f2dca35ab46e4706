//! A scenario's SQL text for a real server: placeholders and DDL in each dialect, the table a
//! CREATE makes, the run databases left behind, and what kind of statement a text is.

use super::{Dialect, Kind};
use racelab_core::model::db::Prepared;

/// A statement's text in `dialect`, with the argument index behind each placeholder.
/// Placeholders in the scenario are `?`, `%s` (in order) or `$n`; string literals, quoted
/// identifiers and comments are left alone.
pub fn translate(sql: &str, dialect: Dialect) -> (String, Vec<usize>) {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut order = Vec::new();
    let mut next = 0usize;
    let chars: Vec<char> = sql.chars().collect();
    let mut i = 0;
    let push_placeholder = |out: &mut String, arg: usize, order: &mut Vec<usize>| {
        order.push(arg);
        match dialect {
            Dialect::Postgres => out.push_str(&format!("${}", order.len())),
            Dialect::Sqlite | Dialect::MariaDb => out.push('?'),
        }
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\'' | '"' | '`' => {
                // A quoted literal or identifier, with doubled quotes inside.
                out.push(c);
                i += 1;
                while i < chars.len() {
                    out.push(chars[i]);
                    if chars[i] == c {
                        if chars.get(i + 1) == Some(&c) {
                            out.push(c);
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                i += 1;
            }
            '?' => {
                push_placeholder(&mut out, next, &mut order);
                next += 1;
                i += 1;
            }
            '%' if chars.get(i + 1) == Some(&'s') => {
                push_placeholder(&mut out, next, &mut order);
                next += 1;
                i += 2;
            }
            '$' if chars.get(i + 1).is_some_and(|d| d.is_ascii_digit()) => {
                let mut j = i + 1;
                let mut n = 0usize;
                while let Some(d) = chars.get(j).and_then(|d| d.to_digit(10)) {
                    n = n * 10 + d as usize;
                    j += 1;
                }
                push_placeholder(&mut out, n.saturating_sub(1), &mut order);
                i = j;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    (out, order)
}

/// A setup statement in `dialect`: the scenario may write MySQL's `AUTO_INCREMENT` or SQLite's
/// `AUTOINCREMENT`; PostgreSQL spells an auto-numbered integer key `SERIAL`.
pub fn translate_ddl(sql: &str, dialect: Dialect) -> String {
    let upper = sql.to_uppercase();
    let mut s = sql.to_string();
    for (from, pg, lite, maria) in [
        (
            "INTEGER PRIMARY KEY AUTO_INCREMENT",
            "SERIAL PRIMARY KEY",
            "INTEGER PRIMARY KEY AUTOINCREMENT",
            "INTEGER PRIMARY KEY AUTO_INCREMENT",
        ),
        (
            "INTEGER PRIMARY KEY AUTOINCREMENT",
            "SERIAL PRIMARY KEY",
            "INTEGER PRIMARY KEY AUTOINCREMENT",
            "INTEGER PRIMARY KEY AUTO_INCREMENT",
        ),
    ] {
        if let Some(at) = upper.find(from) {
            let to = match dialect {
                Dialect::Postgres => pg,
                Dialect::Sqlite => lite,
                Dialect::MariaDb => maria,
            };
            s.replace_range(at..at + from.len(), to);
            return s;
        }
    }
    s
}

/// The table a `CREATE TABLE [IF NOT EXISTS] name (...)` creates.
pub fn created_table(sql: &str) -> Option<String> {
    let words: Vec<&str> = sql.split_whitespace().collect();
    if words.len() < 3
        || !words[0].eq_ignore_ascii_case("create")
        || !words[1].eq_ignore_ascii_case("table")
    {
        return None;
    }
    let mut name = words[2];
    if name.eq_ignore_ascii_case("if") && words.len() > 5 {
        name = words[5];
    }
    let name = name
        .split('(')
        .next()
        .unwrap_or(name)
        .trim_matches(|c| c == '"' || c == '`');
    (!name.is_empty()).then(|| name.to_string())
}

/// Databases named `racelab_<pid>_<n>` (or `racelab_<pid>_<n>_<NAME>` for a scenario's
/// `database NAME`) whose process is gone: left behind by a run that was
/// killed before it could drop them. Only meaningful for a server on this machine.
pub fn stale_run_databases(names: &[String]) -> Vec<String> {
    names
        .iter()
        .filter(|n| {
            let mut parts = n.strip_prefix("racelab_").unwrap_or("").split('_');
            match (
                parts.next().and_then(|p| p.parse::<u32>().ok()),
                parts.next().and_then(|p| p.parse::<u64>().ok()),
                parts.next(),
            ) {
                (Some(pid), Some(_), _) => {
                    pid != std::process::id()
                        && !std::path::Path::new(&format!("/proc/{pid}")).exists()
                }
                _ => false,
            }
        })
        .cloned()
        .collect()
}

/// The kind of a statement, from its first word.
pub fn kind_of(stmt: &Prepared) -> Kind {
    if stmt.is_select() {
        return Kind::Select;
    }
    let first = stmt
        .sql()
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_ascii_uppercase();
    match first.as_str() {
        "BEGIN" | "START" | "COMMIT" | "ROLLBACK" | "END" | "SET" => Kind::Control,
        _ => Kind::Change,
    }
}

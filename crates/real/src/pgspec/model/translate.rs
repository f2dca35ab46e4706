//! A spec step's text as model items: splitting it into statements, translating each into the
//! model's subset (or naming the first construct it lacks), and the names of result columns.

use std::sync::Arc;

use super::super::parse::Spec;
use racelab_core::error::Error;
use racelab_core::model::db::{self, Flavour, Prepared};

/// What a statement of a spec becomes on the model.
#[derive(Debug, Clone)]
pub(super) enum Item {
    /// A statement the model runs; `columns` names a SELECT's result columns.
    Sql {
        stmt: Arc<Prepared>,
        kind: Kind,
        columns: Vec<ColumnName>,
    },
    Create(Arc<Prepared>),
    Drop {
        tables: Vec<String>,
        if_exists: bool,
    },
}

/// Statement kinds whose PostgreSQL warnings and implicit-transaction rules the server layer
/// here adds (the model itself neither warns nor knows about multi-statement messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Begin,
    End,
    SetTransaction,
    SetSession,
    Savepoint,
    Data,
}

/// How PostgreSQL names a result column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum ColumnName {
    Named(String),
    /// `*`: the table's columns.
    Star(String),
}

/// Splits a step's text into statements at `;` outside quotes and comments (PostgreSQL runs
/// them as one simple-query message). Dollar quoting is refused: it only wraps function bodies
/// and DO blocks, which the model lacks anyway.
pub fn split_statements(sql: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                cur.push(c);
                for d in chars.by_ref() {
                    cur.push(d);
                    if d == c {
                        break;
                    }
                }
            }
            '-' if chars.peek() == Some(&'-') => {
                for d in chars.by_ref() {
                    if d == '\n' {
                        cur.push('\n');
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut prev = ' ';
                for d in chars.by_ref() {
                    if prev == '*' && d == '/' {
                        break;
                    }
                    prev = d;
                }
                cur.push(' ');
            }
            '$' if chars
                .peek()
                .is_some_and(|d| *d == '$' || d.is_alphabetic() || *d == '_')
                && !cur.ends_with(|p: char| p.is_alphanumeric() || p == '_') =>
            {
                return Err("dollar-quoted text (a function body or DO block)".into());
            }
            ';' => {
                if !cur.trim().is_empty() {
                    out.push(cur.trim().to_string());
                }
                cur.clear();
            }
            _ => cur.push(c),
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    Ok(out)
}

/// The statement's words, uppercased, for recognising statements the model's parser does not.
fn words(sql: &str) -> Vec<String> {
    sql.split(|c: char| c.is_whitespace() || c == '(' || c == ',' || c == '=')
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_uppercase)
        .collect()
}

/// The reason the model gives, without its list of everything it supports.
fn short_reason(message: &str) -> String {
    let m = message.strip_prefix("unsupported: ").unwrap_or(message);
    let m = m.split("; supported:").next().unwrap_or(m);
    let m = m.split(" (expressions:").next().unwrap_or(m);
    if m.contains("has no columns") {
        return "a table without columns (the model needs at least one)".into();
    }
    match m.strip_prefix("the expression `") {
        Some(e) if e.starts_with('(') => format!("subquery `{}`", e.trim_end_matches('`')),
        Some(e) if e.contains('(') => {
            format!("function call `{}", e.split('(').next().unwrap_or(e)) + "(…)`"
        }
        _ => m.to_string(),
    }
}

/// Lowers one statement of a spec to what the model runs, or says why it cannot.
pub(super) fn translate(sql: &str) -> Result<Item, String> {
    let w = words(sql);
    let first = |n: usize| w.iter().take(n).cloned().collect::<Vec<_>>().join(" ");
    let w1 = first(1);
    let w2 = first(2);
    match w1.as_str() {
        "SAVEPOINT" | "RELEASE" => return savepoint_item(sql),
        "ROLLBACK" | "ABORT" if w.iter().any(|x| x == "TO") => {
            return savepoint_item(&format!(
                "ROLLBACK {}",
                sql.split_whitespace().skip(1).collect::<Vec<_>>().join(" ")
            ))
        }
        "ROLLBACK" | "COMMIT" if w.iter().any(|x| x == "PREPARED") => {
            return Err("two-phase commit (COMMIT/ROLLBACK PREPARED)".into())
        }
        "PREPARE" if w.get(1).is_some_and(|x| x == "TRANSACTION") => {
            return Err("two-phase commit (PREPARE TRANSACTION)".into())
        }
        "END" => return translate("COMMIT"),
        "ABORT" => return translate("ROLLBACK"),
        "DROP" if w2 == "DROP TABLE" => {
            let if_exists = first(4) == "DROP TABLE IF EXISTS";
            let names = sql
                .split_whitespace()
                .skip(if if_exists { 4 } else { 2 })
                .collect::<Vec<_>>()
                .join(" ");
            let mut tables = Vec::new();
            for n in names.split(',') {
                let n = n.trim();
                if n.is_empty() || n.contains(char::is_whitespace) {
                    return Err(format!("`{sql}` (DROP TABLE with options)"));
                }
                tables.push(n.trim_matches('"').to_string());
            }
            return Ok(Item::Drop { tables, if_exists });
        }
        "CREATE" if w2 == "CREATE TABLE" => {
            if w.iter().any(|x| x == "REFERENCES" || x == "FOREIGN") {
                return Err("foreign keys (the model ignores them; PostgreSQL checks them with KEY SHARE row locks)".into());
            }
            if w.iter().any(|x| x == "CHECK") {
                return Err("CHECK constraints".into());
            }
            if w.iter().any(|x| x == "PARTITION" || x == "INHERITS") {
                return Err("partitioned or inherited tables".into());
            }
            let stmt = db::prepare(&quote_key_column(sql)).map_err(|e| short_reason(&e))?;
            return Ok(Item::Create(stmt));
        }
        "CREATE" | "ALTER" | "DROP" => {
            let what = w.get(1).map(String::as_str).unwrap_or("");
            let what = match what {
                "UNIQUE" | "OR" | "TEMP" | "TEMPORARY" | "UNLOGGED" => first(3),
                _ => w2.clone(),
            };
            return Err(what);
        }
        "SET" => return translate_set(sql, &w),
        "LOCK" | "VACUUM" | "ANALYZE" | "CLUSTER" | "REINDEX" | "TRUNCATE" | "LISTEN"
        | "NOTIFY" | "UNLISTEN" | "DO" | "COPY" | "CALL" | "DISCARD" | "RESET" | "SHOW"
        | "DECLARE" | "FETCH" | "CLOSE" | "GRANT" | "REVOKE" | "COMMENT" | "EXPLAIN"
        | "REFRESH" | "MERGE" | "EXECUTE" | "DEALLOCATE" | "LOAD" | "CHECKPOINT" => {
            return Err(w1);
        }
        "PREPARE" => return Err("PREPARE".into()),
        _ => {}
    }
    if w.iter().any(|x| x == "WITH") && w1 == "WITH" {
        return Err("WITH (common table expressions)".into());
    }
    // The model reads FOR KEY SHARE and FOR NO KEY UPDATE itself (PostgreSQL's four strengths).
    let text = quote_key_column(sql);
    let stmt = db::prepare(&text).map_err(|e| short_reason(&e))?;
    stmt.check_flavour(Flavour::Postgres)?;
    let kind = match w1.as_str() {
        "BEGIN" | "START" => Kind::Begin,
        "COMMIT" | "ROLLBACK" => Kind::End,
        _ => Kind::Data,
    };
    let columns = if stmt.is_select() {
        column_names(&db::with_plain_lock_clause(&text))?
    } else {
        Vec::new()
    };
    Ok(Item::Sql {
        stmt,
        kind,
        columns,
    })
}

/// Quotes a column named `key`: an ordinary name in PostgreSQL, a keyword to the model's
/// parser (which reads MySQL's `KEY idx (...)` too).
fn quote_key_column(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut prev_word = String::new();
    let mut rest = sql;
    let mut quote: Option<char> = None;
    while let Some(c) = rest.chars().next() {
        if let Some(q) = quote {
            out.push(c);
            rest = &rest[c.len_utf8()..];
            if c == q {
                quote = None;
            }
            continue;
        }
        if c == '\'' || c == '"' {
            quote = Some(c);
            out.push(c);
            rest = &rest[1..];
            continue;
        }
        if c.is_alphabetic() || c == '_' {
            let end = rest
                .find(|d: char| !(d.is_alphanumeric() || d == '_'))
                .unwrap_or(rest.len());
            let word = &rest[..end];
            let next = rest[end..]
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_ascii_uppercase();
            let keyword = matches!(prev_word.as_str(), "PRIMARY" | "FOREIGN" | "NO" | "FOR")
                || next.starts_with("SHARE")
                || next.starts_with("UPDATE");
            if word.eq_ignore_ascii_case("key") && !keyword {
                out.push_str("\"key\"");
            } else {
                out.push_str(word);
            }
            prev_word = word.to_ascii_uppercase();
            rest = &rest[end..];
            continue;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// SAVEPOINT, RELEASE [SAVEPOINT], ROLLBACK TO [SAVEPOINT]: statements of the open transaction
/// (they neither open an implicit block nor warn as BEGIN and COMMIT do).
fn savepoint_item(sql: &str) -> Result<Item, String> {
    let stmt = db::prepare(sql).map_err(|e| short_reason(&e))?;
    stmt.check_flavour(Flavour::Postgres)?;
    Ok(Item::Sql {
        stmt,
        kind: Kind::Savepoint,
        columns: Vec::new(),
    })
}

/// SET: the isolation-level settings the model has; any other setting is refused by name
/// (deadlock_timeout, lock_timeout, … change outcomes the model cannot reproduce).
fn translate_set(sql: &str, w: &[String]) -> Result<Item, String> {
    let rest: Vec<&str> = w.iter().skip(1).map(String::as_str).collect();
    let rest = match rest.first() {
        Some(&"SESSION") if rest.get(1) != Some(&"CHARACTERISTICS") => &rest[1..],
        _ => &rest[..],
    };
    let (text, kind) = match rest {
        ["TRANSACTION", ..] => (sql.to_string(), Kind::SetTransaction),
        ["SESSION", "CHARACTERISTICS", ..] => (sql.to_string(), Kind::SetSession),
        ["DEFAULT_TRANSACTION_ISOLATION", level @ ..] => {
            let level = level
                .iter()
                .filter(|x| **x != "TO")
                .map(|x| x.trim_matches(|c| c == '\'' || c == ';'))
                .collect::<Vec<_>>()
                .join(" ");
            (
                format!("SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL {level}"),
                Kind::SetSession,
            )
        }
        [name, ..] => return Err(format!("SET {}", name.to_ascii_lowercase())),
        [] => return Err("SET".into()),
    };
    let stmt = db::prepare(&text).map_err(|e| short_reason(&e))?;
    stmt.check_flavour(Flavour::Postgres)?;
    Ok(Item::Sql {
        stmt,
        kind,
        columns: Vec::new(),
    })
}

/// PostgreSQL's result column names: a column's own name, an alias, `count` for COUNT(*),
/// `?column?` for other expressions, a table's columns for `*`.
fn column_names(sql: &str) -> Result<Vec<ColumnName>, String> {
    use sqlparser::ast::{Expr, SelectItem, SetExpr, Statement, TableFactor};
    let parsed =
        sqlparser::parser::Parser::parse_sql(&sqlparser::dialect::PostgreSqlDialect {}, sql)
            .map_err(|e| format!("cannot parse `{sql}`: {e}"))?;
    let Some(Statement::Query(q)) = parsed.first() else {
        return Err(format!("`{sql}` is not a query"));
    };
    let SetExpr::Select(s) = q.body.as_ref() else {
        return Err(format!("`{sql}` is not a plain SELECT"));
    };
    let table = match s.from.first().map(|f| &f.relation) {
        Some(TableFactor::Table { name, .. }) => name.to_string().to_lowercase(),
        _ => String::new(),
    };
    let name_of = |e: &Expr| match e {
        Expr::Identifier(id) => id.value.to_lowercase(),
        Expr::CompoundIdentifier(parts) => parts
            .last()
            .map(|p| p.value.to_lowercase())
            .unwrap_or_default(),
        Expr::Function(f) => f.name.to_string().to_lowercase(),
        _ => "?column?".to_string(),
    };
    Ok(s.projection
        .iter()
        .map(|item| match item {
            SelectItem::UnnamedExpr(e) => ColumnName::Named(name_of(e)),
            SelectItem::ExprWithAlias { alias, .. } => {
                ColumnName::Named(if alias.quote_style.is_some() {
                    alias.value.clone()
                } else {
                    alias.value.to_lowercase()
                })
            }
            _ => ColumnName::Star(table.clone()),
        })
        .collect())
}

/// Every statement of the spec (setup, teardown, sessions' setup, steps, teardown) within the
/// model's subset, or where the first one is not and why (refused: the model cannot run it).
pub fn check_spec(spec: &Spec) -> Result<(), Error> {
    match unsupported_statements(spec).into_iter().next() {
        Some((what, why)) => Err(Error::refused(format!("{what}: {why}"))),
        None => Ok(()),
    }
}

/// Each statement of the spec outside the model's subset: where it is, and why.
pub fn unsupported_statements(spec: &Spec) -> Vec<(String, String)> {
    let mut blocks: Vec<(String, &str)> = spec
        .setup
        .iter()
        .map(|s| ("setup".to_string(), s.as_str()))
        .collect();
    if let Some(t) = &spec.teardown {
        blocks.push(("teardown".into(), t));
    }
    for s in &spec.sessions {
        if let Some(t) = &s.setup {
            blocks.push((format!("setup of session {}", s.name), t));
        }
        for step in &s.steps {
            blocks.push((format!("step {}", step.name), &step.sql));
        }
        if let Some(t) = &s.teardown {
            blocks.push((format!("teardown of session {}", s.name), t));
        }
    }
    let mut out = Vec::new();
    for (what, sql) in blocks {
        match split_statements(sql) {
            Err(e) => out.push((what, e)),
            Ok(stmts) => {
                for stmt in stmts {
                    if let Err(e) = translate(&stmt) {
                        out.push((what.clone(), e));
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_split_at_semicolons_outside_quotes_and_comments() {
        assert_eq!(
            split_statements("BEGIN; SELECT 'a;b' FROM t -- x; y\n; /* ; */ COMMIT;").unwrap(),
            vec!["BEGIN", "SELECT 'a;b' FROM t", "COMMIT"]
        );
        assert_eq!(split_statements(" ; ").unwrap(), Vec::<String>::new());
        assert!(split_statements("DO $$ BEGIN NULL; END $$;")
            .unwrap_err()
            .contains("dollar-quoted"));
    }

    #[test]
    fn a_column_named_key_is_quoted_and_key_keywords_are_not() {
        assert_eq!(
            quote_key_column(
                "CREATE TABLE t (key int PRIMARY KEY, v text, FOREIGN KEY (v) REFERENCES u)"
            ),
            "CREATE TABLE t (\"key\" int PRIMARY KEY, v text, FOREIGN KEY (v) REFERENCES u)"
        );
        assert_eq!(
            quote_key_column("SELECT * FROM t WHERE key = 'key' FOR KEY SHARE"),
            "SELECT * FROM t WHERE \"key\" = 'key' FOR KEY SHARE"
        );
    }

    #[test]
    fn result_columns_are_named_as_postgres_names_them() {
        assert_eq!(
            column_names("SELECT id, t.v, v + 1, count(*), v AS \"Val\", w AS x, * FROM t")
                .unwrap(),
            ["id", "v", "?column?", "count", "Val", "x"]
                .map(|n| ColumnName::Named(n.to_string()))
                .into_iter()
                .chain([ColumnName::Star("t".into())])
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn settings_the_model_has_are_translated_and_others_refused_by_name() {
        assert!(matches!(
            translate("SET default_transaction_isolation = 'serializable'"),
            Ok(Item::Sql {
                kind: Kind::SetSession,
                ..
            })
        ));
        assert_eq!(
            translate("SET lock_timeout = '1s'").unwrap_err(),
            "SET lock_timeout"
        );
        assert_eq!(
            translate("END").map(|i| matches!(
                i,
                Item::Sql {
                    kind: Kind::End,
                    ..
                }
            )),
            Ok(true)
        );
        assert!(matches!(
            translate("DROP TABLE IF EXISTS a, b"),
            Ok(Item::Drop { tables, if_exists: true }) if tables == ["a", "b"]
        ));
    }
}

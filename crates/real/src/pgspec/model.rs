//! Isolation specs on the model database (PostgreSQL flavour) instead of a server: a
//! [`ModelServer`] holds one [`Db`] and plays the server for the spec's sessions
//! ([`ModelSession`], a [`Link`]) and its control connection ([`ModelControl`], a [`Watch`]).
//!
//! A step's text is split into statements and each is checked against the model's subset
//! before anything runs ([`check_spec`]): a spec with one statement outside it is not run, and
//! the reason names the first construct the model lacks. A statement the model reports
//! `Blocked` stays queued on its session and is retried, first-come first-served like
//! PostgreSQL's lock queue, whenever another statement finishes; so "is the session waiting for
//! a lock" is answered by the model itself, with no timing at all.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use racelab_lang::ir::Value;
use racelab_core::model::db::{self, Db, Flavour, Outcome, Prepared};

use super::parse::Spec;
use super::run::{Link, Watch};
use super::wire::{Notify, PgResult};

/// The connection number setup and teardown run on (sessions are 0, 1, …).
const CONTROL: usize = 1_000_000;
/// Session `i` reports pid `PID_BASE + i`, as a server reports backend pids.
const PID_BASE: i32 = 10_000;

/// What a statement of a spec becomes on the model.
#[derive(Debug, Clone)]
enum Item {
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
enum Kind {
    Begin,
    End,
    SetTransaction,
    SetSession,
    Savepoint,
    Data,
}

/// How PostgreSQL names a result column.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ColumnName {
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
fn translate(sql: &str) -> Result<Item, String> {
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
/// model's subset, or where the first one is not and why.
pub fn check_spec(spec: &Spec) -> Result<(), String> {
    match unsupported_statements(spec).into_iter().next() {
        Some((what, why)) => Err(format!("{what}: {why}")),
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

/// A session's side of the model server: the statements still to run of the step it was
/// sent, and what it sent back, in the server's order, as libpq reads it.
#[derive(Default)]
struct SessionState {
    queue: VecDeque<Item>,
    /// Messages not yet parsed: each statement's notices, then its result.
    sent: VecDeque<Sent>,
    /// The result parsed and not yet collected (libpq's PGASYNC_READY).
    ready: Option<PgResult>,
    /// Notices parsed and not yet collected.
    notices: Vec<String>,
    /// When the session's current statement first blocked (a ticket: smaller waited longer),
    /// and what it waits for.
    waiting: Option<(u64, Vec<usize>, String)>,
    /// The step had several statements and started a transaction for them, as PostgreSQL
    /// does for a multi-statement query outside BEGIN (an implicit transaction block).
    implicit: bool,
    /// Statements of the current step (the implicit block is for more than one).
    batch: usize,
}

/// A message a session sent back.
#[derive(Debug)]
enum Sent {
    Notice(String),
    Result(PgResult),
}

impl SessionState {
    /// pqParseInput3: reads messages until a result is ready, and then the notices that
    /// follow it (libpq handles notices in any state), stopping at the next result.
    fn parse(&mut self) {
        loop {
            match self.sent.front() {
                Some(Sent::Notice(_)) => {
                    if let Some(Sent::Notice(n)) = self.sent.pop_front() {
                        self.notices.push(n);
                    }
                }
                Some(Sent::Result(_)) if self.ready.is_none() => {
                    if let Some(Sent::Result(r)) = self.sent.pop_front() {
                        self.ready = Some(r);
                    }
                }
                _ => return,
            }
        }
    }

    /// Every statement of the step ran and every message was parsed.
    fn finished(&self) -> bool {
        self.queue.is_empty() && self.sent.is_empty()
    }
}

/// The model database playing the server for a spec's connections.
pub struct ModelServer {
    db: Db,
    sessions: Vec<SessionState>,
    next_ticket: u64,
    cache: HashMap<String, Result<Vec<Item>, String>>,
}

/// A shared handle on the server, for the spec's sessions and control connection.
pub type Shared = Rc<RefCell<ModelServer>>;

fn value_text(v: &Value) -> Option<String> {
    match v {
        Value::None => None,
        Value::Bool(b) => Some(if *b { "t" } else { "f" }.to_string()),
        Value::Int(n) => Some(n.to_string()),
        Value::Str(s) => Some(s.to_string()),
        other => Some(other.to_string()),
    }
}

fn error(message: String) -> PgResult {
    PgResult::Error {
        severity: "ERROR".into(),
        sqlstate: sqlstate(&message).to_string(),
        message,
    }
}

/// The SQLSTATE PostgreSQL sends with the model's error message (so that an exploration's
/// outcomes compare across the model and a server); empty for a message it does not know.
fn sqlstate(message: &str) -> &'static str {
    const CODES: [(&str, &str); 6] = [
        ("deadlock detected", "40P01"),
        ("could not serialize access", "40001"),
        ("could not obtain lock on row", "55P03"),
        ("duplicate key value violates unique constraint", "23505"),
        ("canceling statement due to user request", "57014"),
        ("current transaction is aborted", "25P02"),
    ];
    CODES
        .iter()
        .find(|(prefix, _)| message.starts_with(prefix))
        .map_or("", |(_, code)| code)
}

impl ModelServer {
    /// A server with no tables and `sessions` connections, plus the control connection.
    pub fn new(sessions: usize) -> Shared {
        Rc::new(RefCell::new(ModelServer {
            db: Db::new(Flavour::Postgres, &[]).expect("an empty setup always builds"),
            sessions: (0..sessions).map(|_| SessionState::default()).collect(),
            next_ticket: 0,
            cache: HashMap::new(),
        }))
    }

    fn items(&mut self, sql: &str) -> Result<Vec<Item>, String> {
        if let Some(r) = self.cache.get(sql) {
            return r.clone();
        }
        let r = split_statements(sql).and_then(|s| s.iter().map(|t| translate(t)).collect());
        self.cache.insert(sql.to_string(), r.clone());
        r
    }

    fn rows(&self, columns: &[ColumnName], rows: &[Vec<Value>]) -> PgResult {
        let mut names = Vec::new();
        for c in columns {
            match c {
                ColumnName::Named(n) => names.push(n.clone()),
                ColumnName::Star(t) => names.extend(self.db.column_names(t).unwrap_or_default()),
            }
        }
        PgResult::Tuples {
            columns: names,
            rows: rows
                .iter()
                .map(|r| r.iter().map(value_text).collect())
                .collect(),
        }
    }

    fn result(
        &self,
        outcome: Outcome,
        columns: &[ColumnName],
    ) -> Result<PgResult, (Vec<usize>, String)> {
        match outcome {
            Outcome::Done(Value::Rows(rows)) => Ok(self.rows(columns, &rows)),
            Outcome::Done(_) => Ok(PgResult::Command),
            Outcome::Failed { message, .. } => Ok(error(message)),
            Outcome::Blocked { on, lock } => Err((on, lock)),
        }
    }

    /// Runs `conn`'s statement on the model with PostgreSQL's warnings around it.
    fn run_item(
        &mut self,
        conn: usize,
        item: &Item,
    ) -> Result<(PgResult, Vec<String>), (Vec<usize>, String)> {
        let mut notices = Vec::new();
        let result = match item {
            Item::Create(stmt) => match self.db.create_table(stmt, true) {
                Ok(()) => PgResult::Command,
                Err(e) => error(e),
            },
            Item::Drop { tables, if_exists } => {
                let mut r = PgResult::Command;
                for t in tables {
                    if let Err(e) = self.db.drop_table(t, *if_exists) {
                        r = error(e);
                        break;
                    }
                }
                r
            }
            Item::Sql {
                stmt,
                kind,
                columns,
            } => {
                let in_txn = self.db.in_transaction(conn);
                match kind {
                    Kind::Begin if in_txn => notices
                        .push("WARNING:  there is already a transaction in progress\n".to_string()),
                    Kind::End if !in_txn => {
                        notices.push("WARNING:  there is no transaction in progress\n".to_string())
                    }
                    Kind::SetTransaction if !in_txn => notices.push(
                        "WARNING:  SET TRANSACTION can only be used in transaction blocks\n"
                            .to_string(),
                    ),
                    _ => {}
                }
                let outcome = self.db.execute(conn, stmt, &[]);
                self.result(outcome, columns)?
            }
        };
        Ok((result, notices))
    }

    fn hidden(&mut self, conn: usize, sql: &str) -> Outcome {
        match db::prepare(sql) {
            Ok(stmt) => self.db.execute(conn, &stmt, &[]),
            Err(e) => Outcome::Failed {
                error: racelab_lang::ir::Errno::ProgrammingError,
                message: e,
            },
        }
    }

    /// Runs session `s`'s queued statements until one blocks or none is left; true when at
    /// least one finished.
    fn advance(&mut self, s: usize) -> bool {
        let mut progress = false;
        while let Some(item) = self.sessions[s].queue.front().cloned() {
            let data = matches!(
                item,
                Item::Sql {
                    kind: Kind::Data,
                    ..
                }
            );
            if data && self.sessions[s].batch > 1 && !self.db.in_transaction(s) {
                self.hidden(s, "BEGIN");
                self.sessions[s].implicit = true;
            }
            if matches!(
                item,
                Item::Sql {
                    kind: Kind::Begin,
                    ..
                }
            ) && self.sessions[s].implicit
            {
                // BEGIN inside a multi-statement message turns its implicit block explicit.
                self.sessions[s].implicit = false;
                self.sessions[s].queue.pop_front();
                self.sessions[s]
                    .sent
                    .push_back(Sent::Result(PgResult::Command));
                progress = true;
                continue;
            }
            if matches!(
                item,
                Item::Sql {
                    kind: Kind::End,
                    ..
                }
            ) {
                self.sessions[s].implicit = false;
            }
            match self.run_item(s, &item) {
                Err((on, lock)) => {
                    let ticket = match &self.sessions[s].waiting {
                        Some((t, ..)) => *t,
                        None => {
                            self.next_ticket += 1;
                            self.next_ticket
                        }
                    };
                    self.sessions[s].waiting = Some((ticket, on, lock));
                    return progress;
                }
                Ok((result, notices)) => {
                    progress = true;
                    let st = &mut self.sessions[s];
                    st.waiting = None;
                    st.sent.extend(notices.into_iter().map(Sent::Notice));
                    st.queue.pop_front();
                    let failed = matches!(result, PgResult::Error { .. });
                    st.sent.push_back(Sent::Result(result));
                    if failed {
                        // PostgreSQL skips the rest of the message and ends its implicit block.
                        st.queue.clear();
                        if std::mem::take(&mut st.implicit) {
                            self.hidden(s, "ROLLBACK");
                        }
                    }
                }
            }
        }
        if std::mem::take(&mut self.sessions[s].implicit) {
            if let Outcome::Failed { message, .. } = self.hidden(s, "COMMIT") {
                self.sessions[s]
                    .sent
                    .push_back(Sent::Result(error(message)));
            }
        }
        progress
    }

    /// Retries waiting sessions, longest-waiting first, until none can move.
    fn pump(&mut self) {
        loop {
            let mut waiting: Vec<(u64, usize)> = self
                .sessions
                .iter()
                .enumerate()
                .filter_map(|(i, st)| st.waiting.as_ref().map(|(t, ..)| (*t, i)))
                .collect();
            waiting.sort_unstable();
            let mut moved = false;
            for (_, s) in waiting {
                if self.advance(s) {
                    moved = true;
                    break; // a lock changed hands: start again from the longest waiter
                }
            }
            if !moved {
                return;
            }
        }
    }

    fn cancel(&mut self, s: usize) {
        if self.sessions[s].waiting.take().is_none() {
            return;
        }
        let message = match self.db.cancel(s) {
            Outcome::Failed { message, .. } => message,
            other => format!("{other:?}"),
        };
        let st = &mut self.sessions[s];
        st.queue.clear();
        st.sent.push_back(Sent::Result(error(message)));
        if std::mem::take(&mut st.implicit) {
            self.hidden(s, "ROLLBACK");
        }
        self.pump();
    }

    fn send(&mut self, s: usize, sql: &str) -> Result<(), String> {
        let items = self.items(sql)?;
        let st = &mut self.sessions[s];
        if !st.queue.is_empty() {
            return Err("another command is already in progress".into());
        }
        st.sent.clear();
        st.ready = None;
        st.batch = items.len();
        st.queue = items.into();
        if st.queue.is_empty() {
            st.sent.push_back(Sent::Result(PgResult::Empty));
        }
        self.advance(s);
        self.pump();
        Ok(())
    }
}

/// One session of a spec on the model.
pub struct ModelSession {
    server: Shared,
    index: usize,
}

impl ModelSession {
    /// The sessions of a spec with `n` sessions, and its control connection, on a fresh model.
    pub fn connect(n: usize) -> (ModelControl, Vec<ModelSession>) {
        let server = ModelServer::new(n);
        let sessions = (0..n)
            .map(|index| ModelSession {
                server: Rc::clone(&server),
                index,
            })
            .collect();
        (ModelControl { server }, sessions)
    }
}

impl Link for ModelSession {
    fn send_query(&mut self, sql: &str) -> Result<(), String> {
        self.server.borrow_mut().send(self.index, sql)
    }
    fn is_busy(&mut self) -> bool {
        let mut server = self.server.borrow_mut();
        server.pump();
        let st = &mut server.sessions[self.index];
        st.parse();
        st.ready.is_none() && !st.finished()
    }
    /// Nothing arrives by itself on the model: every change happens when a statement is sent.
    fn wait_readable(&mut self, _timeout: Duration) -> Result<bool, String> {
        Ok(false)
    }
    fn consume_input(&mut self) -> Result<(), String> {
        Ok(())
    }
    fn get_result(&mut self) -> Result<Option<PgResult>, String> {
        let mut server = self.server.borrow_mut();
        let st = &mut server.sessions[self.index];
        st.parse();
        match st.ready.take() {
            Some(r) => Ok(Some(r)),
            None if st.finished() => Ok(None),
            None => Err(format!(
                "the statement waits for {} on the model, and nothing can release it while its result is awaited",
                st.waiting.as_ref().map_or("a lock", |(_, _, lock)| lock.as_str())
            )),
        }
    }
    fn take_notices(&mut self) -> Vec<String> {
        std::mem::take(&mut self.server.borrow_mut().sessions[self.index].notices)
    }
    fn take_notifies(&mut self) -> Vec<Notify> {
        Vec::new()
    }
    fn pid(&self) -> i32 {
        PID_BASE + i32::try_from(self.index).unwrap_or(0)
    }
    /// PQcancel: a waiting statement fails with "canceling statement due to user request"
    /// and the rest of its step is skipped; a statement that is not waiting is not affected.
    fn cancel(&self) -> Result<(), String> {
        self.server.borrow_mut().cancel(self.index);
        Ok(())
    }
    fn stalled(&self) -> Option<String> {
        let server = self.server.borrow();
        let st = &server.sessions[self.index];
        st.waiting
            .as_ref()
            .filter(|_| st.ready.is_none() && st.sent.is_empty())
            .map(|(_, _, lock)| {
                format!("it waits for {lock} on the model, and no step left to run can release it")
            })
    }
}

/// The control connection of a spec on the model: setup, teardown, and the lock-wait question.
pub struct ModelControl {
    server: Shared,
}

impl Watch for ModelControl {
    fn exec(&mut self, sql: &str) -> Result<Vec<PgResult>, String> {
        let mut server = self.server.borrow_mut();
        let items = server.items(sql)?;
        let mut out = Vec::new();
        for item in &items {
            match server.run_item(CONTROL, item) {
                Ok((r, _notices)) => {
                    let failed = matches!(r, PgResult::Error { .. });
                    out.push(r);
                    if failed {
                        break;
                    }
                }
                Err((_, lock)) => {
                    return Err(format!(
                        "the control connection's `{sql}` waits for {lock} on the model"
                    ))
                }
            }
        }
        server.pump();
        Ok(out)
    }
    fn snapshot(&mut self) -> Result<Vec<super::run::TableRows>, String> {
        let server = self.server.borrow();
        let mut out = Vec::new();
        for table in server.db.table_names() {
            let stmt = db::prepare(&format!("SELECT * FROM {table}"))?;
            let mut rows: Vec<String> = match server.db.query(&stmt, &[])? {
                Value::Rows(rows) => rows
                    .iter()
                    .map(|r| super::run::render_row(&r.iter().map(value_text).collect::<Vec<_>>()))
                    .collect(),
                other => return Err(format!("reading {table} gave {other:?}")),
            };
            rows.sort();
            out.push(super::run::TableRows { table, rows });
        }
        out.sort();
        Ok(out)
    }
    fn is_blocked(&mut self, pid: i32, pids: &[i32]) -> Result<bool, String> {
        let server = self.server.borrow();
        let Some(st) = usize::try_from(pid - PID_BASE)
            .ok()
            .and_then(|i| server.sessions.get(i))
        else {
            return Ok(false);
        };
        Ok(st.waiting.as_ref().is_some_and(|(_, on, _)| {
            on.iter()
                .any(|&c| i32::try_from(c).is_ok_and(|c| pids.contains(&(PID_BASE + c))))
        }))
    }
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

//! The model server: one database, the sessions' queued statements retried first-come
//! first-served whenever another finishes, and results and errors shaped like the server's.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

use super::super::wire::PgResult;
use super::translate::{split_statements, translate, ColumnName, Item, Kind};
use racelab_core::model::db::{self, Db, Flavour, Outcome};
use racelab_lang::ir::Value;

/// A session's side of the model server: the statements still to run of the step it was
/// sent, and what it sent back, in the server's order, as libpq reads it.
#[derive(Default)]
pub(super) struct SessionState {
    pub(super) queue: VecDeque<Item>,
    /// Messages not yet parsed: each statement's notices, then its result.
    pub(super) sent: VecDeque<Sent>,
    /// The result parsed and not yet collected (libpq's PGASYNC_READY).
    pub(super) ready: Option<PgResult>,
    /// Notices parsed and not yet collected.
    pub(super) notices: Vec<String>,
    /// When the session's current statement first blocked (a ticket: smaller waited longer),
    /// and what it waits for.
    pub(super) waiting: Option<(u64, Vec<usize>, String)>,
    /// The step had several statements and started a transaction for them, as PostgreSQL
    /// does for a multi-statement query outside BEGIN (an implicit transaction block).
    pub(super) implicit: bool,
    /// Statements of the current step (the implicit block is for more than one).
    batch: usize,
}

/// A message a session sent back.
#[derive(Debug)]
pub(super) enum Sent {
    Notice(String),
    Result(PgResult),
}

impl SessionState {
    /// pqParseInput3: reads messages until a result is ready, and then the notices that
    /// follow it (libpq handles notices in any state), stopping at the next result.
    pub(super) fn parse(&mut self) {
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
    pub(super) fn finished(&self) -> bool {
        self.queue.is_empty() && self.sent.is_empty()
    }
}

/// The model database playing the server for a spec's connections.
pub(crate) struct ModelServer {
    pub(super) db: Db,
    pub(super) sessions: Vec<SessionState>,
    next_ticket: u64,
    cache: HashMap<String, Result<Vec<Item>, String>>,
}

/// A shared handle on the server, for the spec's sessions and control connection.
pub(crate) type Shared = Rc<RefCell<ModelServer>>;

pub(super) fn value_text(v: &Value) -> Option<String> {
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
    pub(crate) fn new(sessions: usize) -> Shared {
        Rc::new(RefCell::new(ModelServer {
            db: Db::new(Flavour::Postgres, &[]).expect("an empty setup always builds"),
            sessions: (0..sessions).map(|_| SessionState::default()).collect(),
            next_ticket: 0,
            cache: HashMap::new(),
        }))
    }

    pub(super) fn items(&mut self, sql: &str) -> Result<Vec<Item>, String> {
        if let Some(r) = self.cache.get(sql) {
            return r.clone();
        }
        let r = split_statements(sql).and_then(|s| s.iter().map(|t| translate(t)).collect());
        self.cache.insert(sql.to_string(), r.clone());
        r
    }

    pub(super) fn rows(&self, columns: &[ColumnName], rows: &[Vec<Value>]) -> PgResult {
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

    pub(super) fn result(
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
    pub(super) fn run_item(
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
    pub(super) fn pump(&mut self) {
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

    pub(super) fn cancel(&mut self, s: usize) {
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

    pub(super) fn send(&mut self, s: usize, sql: &str) -> Result<(), String> {
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

//! SQLite (rusqlite, bundled) as a real database: one file per run in WAL mode, a connection per
//! actor whose busy handler marks it as waiting, so a statement that needs the write lock another
//! connection's transaction holds is reported as blocked on that transaction.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{types::ValueRef, Connection, ErrorCode, InterruptHandle};

use super::{
    created_table, translate_ddl, Backend, DbInfo, Dialect, Kind, Monitor, Session, SqlError,
};
use racelab_lang::ir::{Errno, Value};

/// Per connection: whether it is inside its busy handler (waiting for a lock), and whether it
/// has a transaction open (the candidates for holding the write lock).
#[derive(Default)]
struct Flags {
    busy: AtomicBool,
    in_txn: AtomicBool,
    live: AtomicBool,
    /// The harness ended the session: stop retrying.
    cancel: AtomicBool,
}

struct Shared {
    flags: Vec<Flags>,
    interrupts: Mutex<Vec<Option<InterruptHandle>>>,
}

pub(crate) struct SqliteDb {
    dir: tempfile::TempDir,
    setup: Vec<String>,
    shared: Arc<Shared>,
}

thread_local! {
    /// The flags of the connection this thread runs, for the busy handler (a plain fn).
    static CURRENT: RefCell<Option<(Arc<Shared>, usize)>> = const { RefCell::new(None) };
}

/// How long a connection keeps retrying a busy database before SQLite's "database is locked".
const BUSY_LIMIT_MS: i32 = 30_000;

fn busy_handler(attempt: i32) -> bool {
    let cancelled = CURRENT.with(|c| match c.borrow().as_ref() {
        Some((shared, i)) => {
            shared.flags[*i].busy.store(true, Ordering::SeqCst);
            shared.flags[*i].cancel.load(Ordering::SeqCst)
        }
        None => false,
    });
    std::thread::sleep(Duration::from_millis(1));
    !cancelled && attempt < BUSY_LIMIT_MS
}

impl SqliteDb {
    pub(crate) fn create(setup: &[String], actors: usize) -> Result<SqliteDb, String> {
        let dir = tempfile::Builder::new()
            .prefix("racelab-sqlite-")
            .tempdir()
            .map_err(|e| format!("cannot create a temp directory for the SQLite file: {e}"))?;
        let shared = Arc::new(Shared {
            flags: (0..actors).map(|_| Flags::default()).collect(),
            interrupts: Mutex::new((0..actors).map(|_| None).collect()),
        });
        let db = SqliteDb {
            dir,
            setup: setup.to_vec(),
            shared,
        };
        db.reset()?;
        Ok(db)
    }

    fn path(&self) -> std::path::PathBuf {
        self.dir.path().join("racelab.db")
    }

    fn open(&self) -> Result<Connection, String> {
        Connection::open(self.path())
            .map_err(|e| format!("cannot open SQLite database {}: {e}", self.path().display()))
    }
}

impl Backend for SqliteDb {
    fn connect(&self, actor: usize) -> Result<Box<dyn Session>, String> {
        let conn = self.open()?;
        conn.busy_handler(Some(busy_handler))
            .map_err(|e| e.to_string())?;
        CURRENT.with(|c| *c.borrow_mut() = Some((Arc::clone(&self.shared), actor)));
        self.shared.flags[actor].live.store(true, Ordering::SeqCst);
        self.shared
            .interrupts
            .lock()
            .unwrap_or_else(|e| e.into_inner())[actor] = Some(conn.get_interrupt_handle());
        Ok(Box::new(SqliteSession {
            conn,
            actor,
            shared: Arc::clone(&self.shared),
        }))
    }
    fn monitor(&self) -> Result<Box<dyn Monitor>, String> {
        let conn = self.open()?;
        Ok(Box::new(SqliteMonitor {
            conn,
            shared: Arc::clone(&self.shared),
        }))
    }
    fn info(&self) -> DbInfo {
        DbInfo {
            backend: "db:sqlite".into(),
            server_version: format!("SQLite {}", rusqlite::version()),
            isolation_level: "serializable (one writer at a time, WAL)".into(),
        }
    }
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }
    fn reset(&self) -> Result<(), String> {
        let conn = self.open()?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| format!("cannot switch SQLite to WAL: {e}"))?;
        for stmt in &self.setup {
            if let Some(t) = created_table(stmt) {
                conn.execute_batch(&format!("DROP TABLE IF EXISTS \"{t}\""))
                    .map_err(|e| e.to_string())?;
            }
        }
        for stmt in &self.setup {
            conn.execute_batch(&translate_ddl(stmt, Dialect::Sqlite))
                .map_err(|e| format!("setup statement `{stmt}` failed on SQLite: {e}"))?;
        }
        Ok(())
    }
}

struct SqliteSession {
    conn: Connection,
    actor: usize,
    shared: Arc<Shared>,
}

fn to_sql(v: &Value) -> rusqlite::types::Value {
    match v {
        Value::None => rusqlite::types::Value::Null,
        Value::Bool(b) => rusqlite::types::Value::Integer(*b as i64),
        Value::Int(n) => rusqlite::types::Value::Integer(*n),
        other => rusqlite::types::Value::Text(other.to_string()),
    }
}

fn from_sql(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::None,
        ValueRef::Integer(n) => Value::Int(n),
        ValueRef::Real(f) => Value::str(&f.to_string()),
        ValueRef::Text(t) | ValueRef::Blob(t) => Value::str(&String::from_utf8_lossy(t)),
    }
}

fn map_err(e: rusqlite::Error) -> SqlError {
    let message = e.to_string();
    let error = match &e {
        rusqlite::Error::SqliteFailure(f, _) => match f.code {
            ErrorCode::ConstraintViolation => Errno::IntegrityError,
            _ => Errno::OperationalError,
        },
        _ => Errno::ProgrammingError,
    };
    (error, message)
}

fn rows(conn: &Connection, sql: &str, args: &[Value]) -> rusqlite::Result<Value> {
    let mut stmt = conn.prepare(sql)?;
    let n = stmt.column_count();
    let params: Vec<rusqlite::types::Value> = args.iter().map(to_sql).collect();
    let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(
            (0..n)
                .map(|i| row.get_ref(i).map(from_sql))
                .collect::<rusqlite::Result<Vec<_>>>()?,
        );
    }
    Ok(Value::Rows(Arc::new(out)))
}

impl Session for SqliteSession {
    fn id(&self) -> i64 {
        self.actor as i64
    }
    fn run(&mut self, sql: &str, args: &[Value], kind: Kind) -> Result<Value, SqlError> {
        let r = match kind {
            Kind::Select => rows(&self.conn, sql, args),
            Kind::Control => self.conn.execute_batch(sql).map(|_| Value::None),
            Kind::Change => {
                let params: Vec<rusqlite::types::Value> = args.iter().map(to_sql).collect();
                self.conn
                    .execute(sql, rusqlite::params_from_iter(params))
                    .map(|n| Value::Int(n as i64))
            }
        };
        let flags = &self.shared.flags[self.actor];
        flags.busy.store(false, Ordering::SeqCst);
        flags
            .in_txn
            .store(!self.conn.is_autocommit(), Ordering::SeqCst);
        r.map_err(map_err)
    }
}

impl Drop for SqliteSession {
    fn drop(&mut self) {
        let flags = &self.shared.flags[self.actor];
        flags.live.store(false, Ordering::SeqCst);
        flags.in_txn.store(false, Ordering::SeqCst);
        self.shared
            .interrupts
            .lock()
            .unwrap_or_else(|e| e.into_inner())[self.actor] = None;
    }
}

struct SqliteMonitor {
    conn: Connection,
    shared: Arc<Shared>,
}

impl Monitor for SqliteMonitor {
    fn waiting_for(
        &mut self,
        id: i64,
        _peers: &[i64],
        _since: std::time::Instant,
    ) -> Result<Option<(Vec<i64>, String)>, String> {
        let me = id as usize;
        if !self
            .shared
            .flags
            .get(me)
            .is_some_and(|f| f.busy.load(Ordering::SeqCst))
        {
            return Ok(None);
        }
        // SQLite does not say who holds its write lock; in a forced replay only one statement
        // runs at a time, so it is a connection with an open transaction.
        let live = |i: usize| i != me && self.shared.flags[i].live.load(Ordering::SeqCst);
        let mut holders: Vec<i64> = (0..self.shared.flags.len())
            .filter(|&i| live(i) && self.shared.flags[i].in_txn.load(Ordering::SeqCst))
            .map(|i| i as i64)
            .collect();
        if holders.is_empty() {
            holders = (0..self.shared.flags.len())
                .filter(|&i| live(i))
                .map(|i| i as i64)
                .collect();
        }
        Ok(Some((
            holders,
            "the database's write lock (SQLite locks the whole file)".into(),
        )))
    }
    fn query(&mut self, sql: &str, args: &[Value]) -> Result<Value, String> {
        rows(&self.conn, sql, args).map_err(|e| e.to_string())
    }
    fn terminate(&mut self, id: i64) {
        if let Some(f) = self.shared.flags.get(id as usize) {
            f.cancel.store(true, Ordering::SeqCst);
        }
        if let Some(Some(h)) = self
            .shared
            .interrupts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id as usize)
        {
            h.interrupt();
        }
    }
}

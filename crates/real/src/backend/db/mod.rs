//! Real databases as the scenario's world: SQLite, PostgreSQL and MariaDB behind `sql(...)`.
//!
//! [`RealDbWorld`] is a [`World`] (the "world backend" trait) whose filesystem operations
//! go to the model filesystem and whose SQL statements go to a real database, each actor on its
//! own connection, each connection on its own thread. A statement is sent and then watched:
//! it either completes (its result is the step's result) or the server reports the session as
//! waiting for a lock another session holds (PostgreSQL: `pg_blocking_pids`; MariaDB:
//! `information_schema.INNODB_LOCK_WAITS`; SQLite: the connection is inside its busy
//! handler), and the step's result is [`Outcome::Blocked`] on the actors holding it, as
//! PostgreSQL's isolationtester does. The statement stays pending in the server: when the
//! machine retries the blocked actor, nothing is sent again, the pending statement is awaited.
//!
//! Each run gets a fresh database (PostgreSQL and MariaDB: `CREATE DATABASE racelab_…` on the
//! server, dropped after; SQLite: a file in a temp directory in WAL mode) with the scenario's
//! setup statements, translated to the server's dialect where the spellings differ. Stress
//! runs reuse one database per parallel job, put back to the setup's state before every run
//! ([`reset`]); the actors connect afresh on MariaDB and SQLite, and on PostgreSQL take a
//! connection of an earlier run reset to a new session's state (ROLLBACK, DISCARD ALL).

pub mod forced;
mod innodb_status;
mod mariadb;
mod postgres;
pub mod reset;
mod sqlite;
pub mod stress;

use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use racelab_lang::ir::{Errno, Op, Program, Value};
use racelab_core::model::db::{Outcome, Prepared};
use racelab_core::model::fs::ModelFs;
use racelab_core::model::world::{OpCtx, Signals, Sql, World};

/// Which real database, and where (`db:sqlite`, `db:postgres[=URL]`, `db:mariadb[=URL]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbSpec {
    /// An SQLite file per run, in a temp directory (rusqlite's bundled SQLite).
    Sqlite,
    /// A PostgreSQL server: a URL (`postgresql://user@host:port/db`, or `host=/socket/dir
    /// port=N user=U dbname=D`).
    Postgres(String),
    /// A MariaDB (or MySQL) server: `mysql://user:password@127.0.0.1:3306/db`.
    MariaDb(String),
}

/// Where `cargo xtask db up` leaves the URLs of the servers it started.
pub const POSTGRES_URL_VAR: &str = "RACELAB_POSTGRES_URL";
pub const MARIADB_URL_VAR: &str = "RACELAB_MARIADB_URL";

impl DbSpec {
    /// Parses the part after `db:`: `sqlite`, `postgres[=URL]`, `mariadb[=URL]`. Without a URL
    /// the server comes from `$RACELAB_POSTGRES_URL` / `$RACELAB_MARIADB_URL` (what
    /// `cargo xtask db up` prints).
    pub fn parse(s: &str) -> Result<DbSpec, String> {
        let (name, url) = match s.split_once('=') {
            Some((n, u)) => (n, Some(u.to_string())),
            None => (s, None),
        };
        let from_env = |var: &str, what: &str| {
            url.clone().filter(|u| !u.is_empty()).or_else(|| std::env::var(var).ok().filter(|u| !u.is_empty())).ok_or_else(|| {
                format!("no {what} server given: pass `--backend db:{name}=URL`, or start throwaway servers with `cargo xtask db up` and export the {var} it prints")
            })
        };
        match name {
            "sqlite" => Ok(DbSpec::Sqlite),
            "postgres" | "postgresql" | "pg" => Ok(DbSpec::Postgres(from_env(POSTGRES_URL_VAR, "PostgreSQL")?)),
            "mariadb" | "mysql" => Ok(DbSpec::MariaDb(from_env(MARIADB_URL_VAR, "MariaDB")?)),
            _ => Err(format!("unknown database `db:{s}`; databases: `db:sqlite`, `db:postgres[=URL]`, `db:mariadb[=URL]`")),
        }
    }

    /// `db:sqlite`, `db:postgres`, `db:mariadb`, for reports.
    pub fn name(&self) -> &'static str {
        match self {
            DbSpec::Sqlite => "db:sqlite",
            DbSpec::Postgres(_) => "db:postgres",
            DbSpec::MariaDb(_) => "db:mariadb",
        }
    }

    /// A fresh database for one run of `prog`, with its setup statements run and committed.
    pub fn open(&self, prog: &Program) -> Result<Arc<dyn Backend>, String> {
        self.supports(prog)?;
        let setup = prog
            .database
            .as_ref()
            .map(|d| d.setup_text.clone())
            .unwrap_or_default();
        let names = prog
            .database
            .as_ref()
            .map(|d| d.names.clone())
            .unwrap_or_default();
        Ok(match self {
            DbSpec::Sqlite => Arc::new(sqlite::SqliteDb::create(&setup, prog.actors.len())?),
            DbSpec::Postgres(url) => Arc::new(postgres::PgDb::create(url, &setup, &names)?),
            DbSpec::MariaDb(url) => Arc::new(mariadb::MariaDb::create(url, &setup, &names)?),
        })
    }

    /// Whether this kind of database can run `prog` at all; the reason when it cannot.
    pub fn supports(&self, prog: &Program) -> Result<(), String> {
        let named = prog.database.as_ref().is_some_and(|d| !d.names.is_empty());
        if named && *self == DbSpec::Sqlite {
            return Err(format!(
                "{}/{} connects to the server's databases (`database NAME`, `connect`, `connections`); SQLite is a file, not a server: it has no other databases and no list of who is connected, so it cannot answer `connections()`. Run it on db:postgres or db:mariadb",
                prog.scenario, prog.variant
            ));
        }
        Ok(())
    }
}

/// What a report records about the database a run used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbInfo {
    /// `db:sqlite`, `db:postgres`, `db:mariadb`.
    pub backend: String,
    /// `SQLite 3.50.2`, `PostgreSQL 15.14`, `MariaDB 10.11.14`.
    pub server_version: String,
    /// The isolation level every connection runs at: `read committed`, `repeatable read`, ...
    pub isolation_level: String,
}

impl DbInfo {
    /// The server's default level, and the levels the scenario's own SQL sets (BEGIN ISOLATION
    /// LEVEL, SET TRANSACTION), which its transactions then run at instead.
    pub fn with_scenario_levels(mut self, prog: &Program) -> DbInfo {
        let mut set: Vec<&str> = prog
            .sql
            .iter()
            .filter_map(|s| s.isolation_level())
            .map(|l| l.name())
            .filter(|l| *l != self.isolation_level)
            .collect();
        set.sort_unstable();
        set.dedup();
        if !set.is_empty() {
            self.isolation_level = format!(
                "{} (server default), {} (set by the scenario)",
                self.isolation_level,
                set.join(", ")
            );
        }
        self
    }
}

/// How a statement's placeholders are written for the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
    MariaDb,
}

/// A statement's kind, which decides what its result is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Rows.
    Select,
    /// BEGIN, COMMIT, ROLLBACK: none.
    Control,
    /// INSERT, UPDATE, DELETE: the number of rows matched.
    Change,
}

/// A statement failed: the DB-API exception class and the driver's message.
pub type SqlError = (Errno, String);

/// One fresh database on a server (or an SQLite file), dropped when the last handle goes.
pub trait Backend: Send + Sync {
    /// A new connection for an actor; called on the thread that will use it.
    fn connect(&self, actor: usize) -> Result<Box<dyn Session>, String>;
    /// A separate connection for watching the others and reading committed data.
    fn monitor(&self) -> Result<Box<dyn Monitor>, String>;
    fn info(&self) -> DbInfo;
    fn dialect(&self) -> Dialect;
    /// Puts the database back to the setup's state (stress runs reuse one database): the
    /// tables truncated and their rows inserted again where [`reset::truncate_plan`] allows,
    /// else dropped and created again.
    fn reset(&self) -> Result<(), String>;
    /// Takes back an actor's connection when its run is over, for a later [`Backend::connect`],
    /// if the backend pools connections and [`Session::reset_for_reuse`] succeeds; else it is
    /// closed.
    fn recycle_session(&self, session: Box<dyn Session>) {
        drop(session);
    }
    /// Takes back a run's monitor for the next run's [`Backend::monitor`] (it is racelab's own
    /// connection, no actor's), if the monitor says it can be used again; else it is closed.
    fn recycle_monitor(&self, monitor: Box<dyn Monitor>) {
        drop(monitor);
    }
    /// A connection to one of the server's other databases (`database NAME`), for `connect()`.
    fn connect_named(&self, db: &str) -> Result<Box<dyn Session>, String> {
        Err(format!(
            "this database has no other database `{db}` to connect to"
        ))
    }
}

/// One actor's connection.
pub trait Session: Send {
    /// The server's id for this session (PostgreSQL backend pid, MariaDB connection id, the
    /// actor for SQLite): what [`Monitor::waiting_for`] reports holders as.
    fn id(&self) -> i64;
    /// Runs one statement, already in the server's dialect.
    fn run(&mut self, sql: &str, args: &[Value], kind: Kind) -> Result<Value, SqlError>;
    /// Puts the session back to what a new connection starts with (no transaction, no session
    /// settings, prepared statements, temp tables, advisory locks or listeners), as a
    /// connection pool does before handing a connection out again. False when it cannot (the
    /// session was ended, the server is gone): then it is closed, not reused.
    fn reset_for_reuse(&mut self) -> bool {
        false
    }
}

/// The harness's own connection: who waits for whom, committed data, and ending sessions.
pub trait Monitor: Send {
    /// Whether this monitor's connections are still open, so that the next run may use it.
    fn reusable(&mut self) -> bool {
        false
    }
    /// `None` when session `id` is not waiting for a lock, or when the server cannot yet tell
    /// anything newer than `since` (the moment its statement was sent: an older picture could
    /// show the wait of its previous statement); otherwise the sessions holding the lock and a
    /// description of it. `peers` are the run's other sessions, the only ones that can hold
    /// locks in its database. Must not sleep: the caller polls, and a result may arrive
    /// meanwhile.
    fn waiting_for(
        &mut self,
        id: i64,
        peers: &[i64],
        since: Instant,
    ) -> Result<Option<(Vec<i64>, String)>, String>;
    /// A SELECT on committed data, for invariants.
    fn query(&mut self, sql: &str, args: &[Value]) -> Result<Value, String>;
    /// Ends session `id` at the server (its statement fails, its transaction rolls back).
    fn terminate(&mut self, id: i64);
    /// How many sessions the server has open to its database `db` (`database NAME`), in its
    /// own bookkeeping (PostgreSQL: pg_stat_activity; MariaDB: the process list).
    fn connections(&mut self, db: &str) -> Result<i64, String> {
        Err(format!(
            "this database cannot count the connections to `{db}`"
        ))
    }
    /// Whether the server still lists session `id`.
    fn session_open(&mut self, _id: i64) -> Result<bool, String> {
        Ok(false)
    }
}

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

/// The arguments in placeholder order.
fn ordered(args: &[Value], order: &[usize]) -> Vec<Value> {
    order
        .iter()
        .map(|&i| args.get(i).cloned().unwrap_or(Value::None))
        .collect()
}

type Job = (String, Vec<Value>, Kind);

/// An actor's connection, living on its own thread.
struct Conn {
    id: i64,
    jobs: Option<Sender<Job>>,
    replies: Receiver<Result<Value, SqlError>>,
    /// A statement was sent and its result has not been collected.
    pending: bool,
    /// When the pending statement was sent.
    sent_at: Instant,
    thread: Option<JoinHandle<()>>,
}

impl Conn {
    /// Starts the connection's thread, which connects; [`Conn::connected`] waits for it, so
    /// the actors' connections are made at the same time, as separate processes' would be.
    fn start(backend: &Arc<dyn Backend>, actor: usize) -> Result<Connecting, String> {
        let (job_tx, job_rx) = channel::<Job>();
        let (reply_tx, reply_rx) = channel();
        let (id_tx, id_rx) = channel();
        let backend = Arc::clone(backend);
        let thread = std::thread::Builder::new()
            .name(format!("racelab-db-{actor}"))
            .spawn(move || {
                let session = backend.connect(actor);
                let mut session = match session {
                    Ok(s) => {
                        let _ = id_tx.send(Ok(s.id()));
                        s
                    }
                    Err(e) => {
                        let _ = id_tx.send(Err(e));
                        return;
                    }
                };
                while let Ok((sql, args, kind)) = job_rx.recv() {
                    if reply_tx.send(session.run(&sql, &args, kind)).is_err() {
                        break;
                    }
                }
                // The actor is done with it (or the world is going): the backend may keep it,
                // reset, for another run.
                backend.recycle_session(session);
            })
            .map_err(|e| format!("cannot start a connection thread: {e}"))?;
        Ok(Connecting {
            id: id_rx,
            conn: Conn {
                id: 0,
                jobs: Some(job_tx),
                replies: reply_rx,
                pending: false,
                sent_at: Instant::now(),
                thread: Some(thread),
            },
        })
    }
}

/// A connection whose thread is still connecting.
struct Connecting {
    id: Receiver<Result<i64, String>>,
    conn: Conn,
}

impl Connecting {
    fn connected(mut self) -> Result<Conn, String> {
        self.conn.id = self
            .id
            .recv()
            .map_err(|_| "a connection thread died while connecting".to_string())??;
        Ok(self.conn)
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// How long a statement may neither finish nor wait for a lock before the step fails.
const STATEMENT_LIMIT: Duration = Duration::from_secs(30);

/// The slowest rate at which a running statement is checked for a lock wait: isolationtester's
/// 10 ms. Quicker statements are noticed sooner: the wait for a reply starts at 200 µs and doubles.
const BLOCKED_POLL: Duration = Duration::from_millis(10);

/// How long the server may take to forget a closed connection.
const CLOSE_LIMIT: Duration = Duration::from_secs(10);

/// How long a nonzero connection count must hold before racelab reports it.
const SETTLE: Duration = Duration::from_millis(50);

/// The scenario's world with a real database: files in the model filesystem, SQL on real
/// connections, one per actor.
pub struct RealDbWorld {
    fs: ModelFs,
    conns: Vec<Option<Conn>>,
    /// `connect("NAME")` connections, by the machine's handle number; they only have to exist.
    named: std::collections::BTreeMap<usize, Box<dyn Session>>,
    monitor: Mutex<Box<dyn Monitor>>,
    backend: Arc<dyn Backend>,
}

impl RealDbWorld {
    /// Connects every actor of `prog` to `backend`, with the scenario's files in a model
    /// filesystem beside it.
    pub fn new(prog: &Program, backend: Arc<dyn Backend>) -> Result<RealDbWorld, String> {
        let mut fs = ModelFs::new();
        for entry in &prog.fs {
            match entry {
                racelab_lang::ir::FsInit::Dir(p) => fs.mkdir_all(p, racelab_core::model::EPOCH_MS),
                racelab_lang::ir::FsInit::File(p, c) => fs.put_file(p, c, racelab_core::model::EPOCH_MS),
            }
        }
        let monitor = Mutex::new(backend.monitor()?);
        let connecting = (0..prog.actors.len())
            .map(|a| Conn::start(&backend, a))
            .collect::<Result<Vec<_>, _>>()?;
        let conns = connecting
            .into_iter()
            .map(|c| c.connected().map(Some))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RealDbWorld {
            fs,
            conns,
            named: Default::default(),
            monitor,
            backend,
        })
    }

    pub fn info(&self) -> DbInfo {
        self.backend.info()
    }

    fn actor_of(&self, session: i64) -> Option<usize> {
        self.conns
            .iter()
            .position(|c| c.as_ref().is_some_and(|c| c.id == session))
    }

    /// Sends the statement unless one is pending, then waits until it completes or the server
    /// says it waits for a lock.
    fn run(&mut self, actor: usize, stmt: &Prepared, args: &[Value]) -> Outcome {
        let dialect = self.backend.dialect();
        let Some(conn) = self.conns.get_mut(actor).and_then(Option::as_mut) else {
            return Outcome::Failed {
                error: Errno::OperationalError,
                message: "the connection is closed".into(),
            };
        };
        if !conn.pending {
            if args.len() != stmt.params() {
                return Outcome::Failed {
                    error: Errno::ProgrammingError,
                    message: format!(
                        "the statement has {} placeholders but {} parameters were given",
                        stmt.params(),
                        args.len()
                    ),
                };
            }
            let (sql, order) = translate(stmt.sql(), dialect);
            let job = (sql, ordered(args, &order), kind_of(stmt));
            if conn
                .jobs
                .as_ref()
                .map(|j| j.send(job))
                .is_none_or(|r| r.is_err())
            {
                return Outcome::Failed {
                    error: Errno::OperationalError,
                    message: "the connection's thread is gone".into(),
                };
            }
            conn.pending = true;
            conn.sent_at = Instant::now();
        }
        let (id, since) = (conn.id, conn.sent_at);
        let peers: Vec<i64> = self
            .conns
            .iter()
            .flatten()
            .map(|c| c.id)
            .filter(|&p| p != id)
            .collect();
        let started = Instant::now();
        let mut poll = Duration::from_micros(200);
        loop {
            let conn = self.conns[actor].as_mut().expect("checked above");
            match conn.replies.recv_timeout(poll) {
                Ok(r) => {
                    conn.pending = false;
                    return match r {
                        Ok(v) => Outcome::Done(v),
                        Err((error, message)) => Outcome::Failed { error, message },
                    };
                }
                Err(RecvTimeoutError::Disconnected) => {
                    conn.pending = false;
                    return Outcome::Failed {
                        error: Errno::OperationalError,
                        message: "the connection's thread ended".into(),
                    };
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
            poll = (poll * 2).min(BLOCKED_POLL);
            let waiting = self
                .monitor
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .waiting_for(id, &peers, since);
            match waiting {
                Ok(Some((holders, lock))) => {
                    // It may have finished in the meantime: a result beats a stale wait.
                    let conn = self.conns[actor].as_mut().expect("checked above");
                    if let Ok(r) = conn.replies.try_recv() {
                        conn.pending = false;
                        return match r {
                            Ok(v) => Outcome::Done(v),
                            Err((error, message)) => Outcome::Failed { error, message },
                        };
                    }
                    let mut on: Vec<usize> = holders
                        .iter()
                        .filter_map(|h| self.actor_of(*h))
                        .filter(|&h| h != actor)
                        .collect();
                    on.sort_unstable();
                    on.dedup();
                    if on.is_empty() {
                        // Held by nobody we know (a session of the harness?): keep waiting.
                        continue;
                    }
                    return Outcome::Blocked {
                        on,
                        lock: format!("<waiting> {lock}"),
                    };
                }
                Ok(None) => {}
                Err(e) => {
                    return Outcome::Failed {
                        error: Errno::OperationalError,
                        message: format!("racelab could not watch the statement: {e}"),
                    }
                }
            }
            if started.elapsed() > STATEMENT_LIMIT {
                return Outcome::Failed {
                    error: Errno::OperationalError,
                    message: format!(
                        "racelab: the statement neither finished nor waited for a lock within {}s",
                        STATEMENT_LIMIT.as_secs()
                    ),
                };
            }
        }
    }
}

impl World for RealDbWorld {
    fn perform(
        &mut self,
        op: Op,
        args: &[Value],
        cx: &OpCtx,
    ) -> Result<Result<Value, Errno>, String> {
        self.fs.perform(op, args, cx)
    }

    fn observe_exists(&self, path: &str) -> bool {
        self.fs.observe_exists(path)
    }

    fn observe_contents(&self, path: &str) -> Option<String> {
        self.fs.observe_contents(path)
    }

    fn actor_ended(&mut self, actor: usize) {
        let Some(conn) = self.conns.get_mut(actor).and_then(Option::take) else {
            return;
        };
        if conn.pending {
            self.monitor
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .terminate(conn.id);
        }
        drop(conn);
    }
}

impl Signals for RealDbWorld {}

impl Sql for RealDbWorld {
    fn sql(&mut self, actor: usize, stmt: &Prepared, args: &[Value]) -> Option<Outcome> {
        Some(self.run(actor, stmt, args))
    }

    fn observe_sql(&self, stmt: &Prepared, args: &[Value]) -> Option<Result<Value, String>> {
        let (sql, order) = translate(stmt.sql(), self.backend.dialect());
        Some(
            self.monitor
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .query(&sql, &ordered(args, &order)),
        )
    }

    fn connect(&mut self, _actor: usize, handle: usize, db: &str) -> Option<Result<(), String>> {
        Some(self.backend.connect_named(db).map(|session| {
            self.named.insert(handle, session);
        }))
    }

    fn close(&mut self, handle: usize) -> Option<Result<(), String>> {
        let Some(session) = self.named.remove(&handle) else {
            return Some(Ok(()));
        };
        let id = session.id();
        drop(session);
        // The client has said goodbye; the server's backend process goes a moment later. Wait
        // for it, so that `connections()` right after a close does not count it.
        let started = Instant::now();
        let mut monitor = self.monitor.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            match monitor.session_open(id) {
                Ok(false) => return Some(Ok(())),
                Ok(true) if started.elapsed() < CLOSE_LIMIT => {
                    std::thread::sleep(Duration::from_millis(1))
                }
                Ok(true) => {
                    return Some(Err(format!(
                        "the server still lists session {id} {}s after it was closed",
                        CLOSE_LIMIT.as_secs()
                    )))
                }
                Err(e) => return Some(Err(e)),
            }
        }
    }

    fn observe_connections(&self, db: &str) -> Option<Result<i64, String>> {
        let mut monitor = self.monitor.lock().unwrap_or_else(|e| e.into_inner());
        // A session that is going away can linger in the server's list for a moment after
        // racelab saw its own id leave it (seen once on MariaDB on a machine loaded 5x over):
        // a count above zero is read again until it has held for SETTLE, so a closing session
        // is not counted and a leaked one, which stays, still is.
        let mut n = match monitor.connections(db) {
            Ok(n) => n,
            Err(e) => return Some(Err(e)),
        };
        let (started, mut since) = (Instant::now(), Instant::now());
        while n > 0 && since.elapsed() < SETTLE && started.elapsed() < CLOSE_LIMIT {
            std::thread::sleep(Duration::from_millis(5));
            match monitor.connections(db) {
                Ok(m) if m == n => {}
                Ok(m) => {
                    n = m;
                    since = Instant::now();
                }
                Err(e) => return Some(Err(e)),
            }
        }
        Some(Ok(n))
    }
}

impl Drop for RealDbWorld {
    fn drop(&mut self) {
        // Sessions with a statement still waiting in the server are ended there first, so that
        // their threads can be joined.
        for a in 0..self.conns.len() {
            self.actor_ended(a);
        }
        self.named.clear();
        let monitor = std::mem::replace(
            self.monitor.get_mut().unwrap_or_else(|e| e.into_inner()),
            Box::new(Recycled),
        );
        self.backend.recycle_monitor(monitor);
    }
}

/// What a dropped world holds in place of the monitor it gave back to its backend.
struct Recycled;

impl Monitor for Recycled {
    fn waiting_for(
        &mut self,
        _: i64,
        _: &[i64],
        _: Instant,
    ) -> Result<Option<(Vec<i64>, String)>, String> {
        Err("the monitor was handed on".into())
    }
    fn query(&mut self, _: &str, _: &[Value]) -> Result<Value, String> {
        Err("the monitor was handed on".into())
    }
    fn terminate(&mut self, _: i64) {}
}

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

mod sql_text;
mod world;

pub use self::sql_text::{created_table, kind_of, stale_run_databases, translate, translate_ddl};
pub(crate) use self::world::RealDbWorld;

use std::sync::Arc;
use std::time::Instant;

use racelab_core::error::Error;
use racelab_lang::ir::{Errno, Program, Value};

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
pub(crate) const POSTGRES_URL_VAR: &str = "RACELAB_POSTGRES_URL";
pub(crate) const MARIADB_URL_VAR: &str = "RACELAB_MARIADB_URL";

impl DbSpec {
    /// Parses the part after `db:`: `sqlite`, `postgres[=URL]`, `mariadb[=URL]`. Without a URL
    /// the server comes from `$RACELAB_POSTGRES_URL` / `$RACELAB_MARIADB_URL` (what
    /// `cargo xtask db up` prints). Bad input when the database is unknown or has no server.
    pub fn parse(s: &str) -> Result<DbSpec, Error> {
        let (name, url) = match s.split_once('=') {
            Some((n, u)) => (n, Some(u.to_string())),
            None => (s, None),
        };
        let from_env = |var: &str, what: &str| {
            url.clone().filter(|u| !u.is_empty()).or_else(|| std::env::var(var).ok().filter(|u| !u.is_empty())).ok_or_else(|| {
                Error::bad_input(format!("no {what} server given: pass `--backend db:{name}=URL`, or start throwaway servers with `cargo xtask db up` and export the {var} it prints"))
            })
        };
        match name {
            "sqlite" => Ok(DbSpec::Sqlite),
            "postgres" | "postgresql" | "pg" => Ok(DbSpec::Postgres(from_env(POSTGRES_URL_VAR, "PostgreSQL")?)),
            "mariadb" | "mysql" => Ok(DbSpec::MariaDb(from_env(MARIADB_URL_VAR, "MariaDB")?)),
            _ => Err(Error::bad_input(format!("unknown database `db:{s}`; databases: `db:sqlite`, `db:postgres[=URL]`, `db:mariadb[=URL]`"))),
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

    /// A fresh database for one run of `prog`, with its setup statements run and committed:
    /// refused when this kind of database cannot run `prog`, infrastructure when the server
    /// cannot be had.
    pub fn open(&self, prog: &Program) -> Result<Arc<dyn Backend>, Error> {
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
    pub(crate) fn supports(&self, prog: &Program) -> Result<(), Error> {
        let named = prog.database.as_ref().is_some_and(|d| !d.names.is_empty());
        if named && *self == DbSpec::Sqlite {
            return Err(Error::refused(format!(
                "{}/{} connects to the server's databases (`database NAME`, `connect`, `connections`); SQLite is a file, not a server: it has no other databases and no list of who is connected, so it cannot answer `connections()`. Run it on db:postgres or db:mariadb",
                prog.scenario, prog.variant
            )));
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
    pub(crate) fn with_scenario_levels(mut self, prog: &Program) -> DbInfo {
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
pub(crate) type SqlError = (Errno, String);

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

//! MariaDB (InnoDB) as a real database: a throwaway database per run, a connection per actor
//! with CLIENT_FOUND_ROWS (as Django sets it: UPDATE reports matched rows), the server's default
//! REPEATABLE READ (its gap locks are what Patchwork's 1213 needs), and a monitor that sees who
//! waits for whom in `SHOW ENGINE INNODB STATUS` (fresh on every call) or, when that leaves
//! the holder open, in `information_schema.INNODB_LOCK_WAITS` (cached for 100 ms).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use mysql::consts::CapabilityFlags;
use mysql::prelude::Queryable;
use mysql::{Conn, Opts, OptsBuilder};

use super::reset::{truncate_plan, TruncatePlan};
use super::{
    created_table, innodb_status, translate_ddl, Backend, DbInfo, Dialect, Kind, Monitor, Session,
    SqlError,
};
use racelab_lang::ir::{Errno, Value};

static RUNS: AtomicU64 = AtomicU64::new(0);

pub(crate) struct MariaDb {
    admin: Mutex<Conn>,
    opts: Opts,
    name: String,
    setup: Vec<String>,
    /// How a reset empties and refills the tables, when TRUNCATE can (see [`super::reset`]).
    truncate: Option<TruncatePlan>,
    /// racelab's own connection to this database for resets, kept from run to run.
    resetter: Mutex<Option<Conn>>,
    /// The previous run's monitor, handed to the next run (racelab's own connection).
    spare_monitor: Mutex<Option<Box<dyn Monitor>>>,
    /// The scenario's `database NAME`s, each a real database `<name>_<NAME>` beside this one.
    named: Vec<String>,
    info: DbInfo,
}

fn connect(opts: &Opts) -> Result<Conn, String> {
    Conn::new(opts.clone()).map_err(|e| format!("cannot connect to MariaDB: {e}; is the server up (`cargo xtask db up`) and the URL right?"))
}

impl MariaDb {
    pub(crate) fn create(url: &str, setup: &[String], named: &[String]) -> Result<MariaDb, String> {
        let base = Opts::from_url(url).map_err(|e| format!("bad MariaDB URL `{url}`: {e}"))?;
        let mut admin = connect(&base)?;
        if matches!(
            base.get_ip_or_hostname().as_ref(),
            "127.0.0.1" | "localhost" | "::1"
        ) {
            let names: Vec<String> = admin
                .query("SHOW DATABASES LIKE 'racelab\\_%'")
                .unwrap_or_default();
            for stale in super::stale_run_databases(&names) {
                let _ = admin.query_drop(format!("DROP DATABASE IF EXISTS {stale}"));
            }
        }
        let name = format!(
            "racelab_{}_{}",
            std::process::id(),
            RUNS.fetch_add(1, Ordering::Relaxed)
        );
        admin
            .query_drop(format!("DROP DATABASE IF EXISTS {name}"))
            .map_err(|e| e.to_string())?;
        admin
            .query_drop(format!("CREATE DATABASE {name}"))
            .map_err(|e| format!("cannot create database {name}: {e}"))?;
        for db in named {
            let full = format!("{name}_{db}");
            admin
                .query_drop(format!("DROP DATABASE IF EXISTS {full}"))
                .map_err(|e| e.to_string())?;
            admin
                .query_drop(format!("CREATE DATABASE {full}"))
                .map_err(|e| format!("cannot create database {full}: {e}"))?;
        }
        let opts: Opts = OptsBuilder::from_opts(base.clone())
            .db_name(Some(name.clone()))
            .additional_capabilities(CapabilityFlags::CLIENT_FOUND_ROWS)
            .into();
        let mut probe = connect(&opts)?;
        let (version, isolation): (String, String) = probe
            .query_first("SELECT VERSION(), @@SESSION.tx_isolation")
            .map_err(|e| e.to_string())?
            .ok_or("the server did not say its version")?;
        let db = MariaDb {
            admin: Mutex::new(admin),
            opts,
            name,
            setup: setup.to_vec(),
            truncate: truncate_plan(setup),
            resetter: Mutex::new(Some(probe)),
            spare_monitor: Mutex::new(None),
            named: named.to_vec(),
            info: DbInfo {
                backend: "db:mariadb".into(),
                server_version: format!("MariaDB {version}"),
                isolation_level: isolation.replace('-', " ").to_lowercase(),
            },
        };
        db.with_resetter(|c| db.recreate(c))?;
        Ok(db)
    }

    /// Runs `f` on the kept reset connection, connecting first when there is none (a failed
    /// reset drops it: the server may have closed it).
    fn with_resetter(&self, f: impl FnOnce(&mut Conn) -> Result<(), String>) -> Result<(), String> {
        let mut kept = self.resetter.lock().unwrap_or_else(|e| e.into_inner());
        let mut conn = match kept.take() {
            Some(c) => c,
            None => connect(&self.opts)?,
        };
        f(&mut conn)?;
        *kept = Some(conn);
        Ok(())
    }

    /// Drops the setup's tables and runs the whole setup again.
    fn recreate(&self, c: &mut Conn) -> Result<(), String> {
        c.query_drop("SET FOREIGN_KEY_CHECKS = 0")
            .map_err(|e| e.to_string())?;
        for stmt in &self.setup {
            if let Some(t) = created_table(stmt) {
                c.query_drop(format!("DROP TABLE IF EXISTS `{t}`"))
                    .map_err(|e| e.to_string())?;
            }
        }
        for stmt in &self.setup {
            c.query_drop(translate_ddl(stmt, Dialect::MariaDb))
                .map_err(|e| format!("setup statement `{stmt}` failed on MariaDB: {e}"))?;
        }
        c.query_drop("SET FOREIGN_KEY_CHECKS = 1")
            .map_err(|e| e.to_string())
    }
}

/// Runs a multi-statement query to its end; the first statement that fails is the error (the
/// server runs none after it).
fn run_all(c: &mut Conn, sql: &str) -> Result<(), mysql::Error> {
    let mut result = c.query_iter(sql)?;
    while let Some(set) = result.iter() {
        for row in set {
            row?;
        }
    }
    Ok(())
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        // racelab's own connections to the database go first.
        self.spare_monitor
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        self.resetter
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let mut admin = self.admin.lock().unwrap_or_else(|e| e.into_inner());
        for db in &self.named {
            let _ = admin.query_drop(format!("DROP DATABASE IF EXISTS {}_{db}", self.name));
        }
        let _ = admin.query_drop(format!("DROP DATABASE IF EXISTS {}", self.name));
    }
}

impl Backend for MariaDb {
    fn connect(&self, _actor: usize) -> Result<Box<dyn Session>, String> {
        let conn = connect(&self.opts)?;
        Ok(Box::new(MariaSession { conn }))
    }
    fn monitor(&self) -> Result<Box<dyn Monitor>, String> {
        let spare = self
            .spare_monitor
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(monitor) = spare {
            return Ok(monitor);
        }
        Ok(Box::new(MariaMonitor {
            conn: connect(&self.opts)?,
            run: self.name.clone(),
            waits: lock_waits(&self.opts)?,
        }))
    }
    fn connect_named(&self, db: &str) -> Result<Box<dyn Session>, String> {
        if !self.named.iter().any(|n| n == db) {
            return Err(format!("the scenario declares no `database {db}`"));
        }
        let opts: Opts = OptsBuilder::from_opts(self.opts.clone())
            .db_name(Some(format!("{}_{db}", self.name)))
            .into();
        Ok(Box::new(MariaSession {
            conn: connect(&opts)?,
        }))
    }
    fn info(&self) -> DbInfo {
        self.info.clone()
    }
    fn dialect(&self) -> Dialect {
        Dialect::MariaDb
    }
    fn reset(&self) -> Result<(), String> {
        self.with_resetter(|c| match &self.truncate {
            Some(plan) => run_all(c, &plan.mariadb())
                .map_err(|e| format!("resetting the tables failed on MariaDB: {e}")),
            None => self.recreate(c),
        })
    }
    fn recycle_monitor(&self, mut monitor: Box<dyn Monitor>) {
        if monitor.reusable() {
            *self.spare_monitor.lock().unwrap_or_else(|e| e.into_inner()) = Some(monitor);
        }
    }
}

struct MariaSession {
    conn: Conn,
}

fn to_my(v: &Value) -> mysql::Value {
    match v {
        Value::None => mysql::Value::NULL,
        Value::Bool(b) => mysql::Value::Int(*b as i64),
        Value::Int(n) => mysql::Value::Int(*n),
        other => mysql::Value::Bytes(other.to_string().into_bytes()),
    }
}

fn is_integer(t: mysql::consts::ColumnType) -> bool {
    use mysql::consts::ColumnType::*;
    matches!(
        t,
        MYSQL_TYPE_TINY
            | MYSQL_TYPE_SHORT
            | MYSQL_TYPE_LONG
            | MYSQL_TYPE_LONGLONG
            | MYSQL_TYPE_INT24
    )
}

/// The text protocol sends every value as text: integer columns become ints again.
fn typed(v: mysql::Value, integer: bool) -> Value {
    match (&v, integer) {
        (mysql::Value::Bytes(b), true) => std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse().ok())
            .map_or_else(|| from_my(v), Value::Int),
        _ => from_my(v),
    }
}

fn from_my(v: mysql::Value) -> Value {
    match v {
        mysql::Value::NULL => Value::None,
        mysql::Value::Int(n) => Value::Int(n),
        mysql::Value::UInt(n) => Value::Int(n as i64),
        mysql::Value::Bytes(b) => Value::str(&String::from_utf8_lossy(&b)),
        other => Value::str(&other.as_sql(true)),
    }
}

/// The statement with its `?` placeholders replaced by quoted literals, as MySQLdb (Django's
/// driver) interpolates on the client and sends plain text. (It matters beyond fidelity:
/// MariaDB 10.11 showed a statement run with COM_STMT_EXECUTE waiting for a lock as RUNNING in
/// INNODB_TRX, with no row in INNODB_LOCK_WAITS, so the monitor could not see it wait.)
fn interpolate(sql: &str, args: &[Value]) -> String {
    let mut out = String::with_capacity(sql.len() + 16 * args.len());
    let mut args = args.iter();
    let mut quote: Option<char> = None;
    for c in sql.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => {
                quote = None;
                out.push(c);
            }
            (Some(_), c) => out.push(c),
            (None, '\'' | '"' | '`') => {
                quote = Some(c);
                out.push(c);
            }
            (None, '?') => out.push_str(&to_my(args.next().unwrap_or(&Value::None)).as_sql(false)),
            (None, c) => out.push(c),
        }
    }
    out
}

/// MySQLdb's exception classes by error code; the message as MySQLdb shows it, `(1213, '...')`.
fn map_err(e: mysql::Error) -> SqlError {
    match e {
        mysql::Error::MySqlError(m) => {
            let error = match m.code {
                1022 | 1048 | 1062 | 1169 | 1216 | 1217 | 1451 | 1452 | 1557 | 1586 => {
                    Errno::IntegrityError
                }
                1205 | 1213 | 1040 | 1053 | 2006 | 2013 | 1927 => Errno::OperationalError,
                _ => Errno::ProgrammingError,
            };
            (error, format!("({}, '{}')", m.code, m.message))
        }
        other => (Errno::OperationalError, other.to_string()),
    }
}

fn rows(conn: &mut Conn, sql: &str, args: &[Value]) -> Result<Value, SqlError> {
    let rows: Vec<mysql::Row> = conn.query(interpolate(sql, args)).map_err(map_err)?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let integer: Vec<bool> = row
            .columns_ref()
            .iter()
            .map(|c| is_integer(c.column_type()))
            .collect();
        out.push(
            row.unwrap()
                .into_iter()
                .zip(integer)
                .map(|(v, int)| typed(v, int))
                .collect(),
        );
    }
    Ok(Value::Rows(Arc::new(out)))
}

impl Session for MariaSession {
    fn id(&self) -> i64 {
        self.conn.connection_id().into()
    }
    fn run(&mut self, sql: &str, args: &[Value], kind: Kind) -> Result<Value, SqlError> {
        match kind {
            Kind::Select => rows(&mut self.conn, sql, args),
            Kind::Control => self
                .conn
                .query_drop(sql)
                .map(|_| Value::None)
                .map_err(map_err),
            Kind::Change => {
                self.conn
                    .query_drop(interpolate(sql, args))
                    .map_err(map_err)?;
                Ok(Value::Int(self.conn.affected_rows() as i64))
            }
        }
    }
}

struct MariaMonitor {
    conn: Conn,
    /// This run's database; a `database NAME` is `<run>_<NAME>` on the server.
    run: String,
    /// The server's lock waits, shared by every monitor of this process on this server.
    waits: Arc<LockWaits>,
}

/// InnoDB refreshes the cache behind INNODB_TRX/INNODB_LOCK_WAITS only when nobody has read it
/// for 100 ms (trx0i_s.cc, CACHE_MIN_IDLE_TIME_US): a monitor polling faster would read the
/// same stale snapshot forever, and so would two monitors each polling slowly but in turn. So
/// one picture of the server's waits is kept per server for the whole process, read again only
/// when it is older than this, and every read is fresh.
const INNODB_CACHE_IDLE: std::time::Duration = std::time::Duration::from_millis(110);

/// A lock wait: the waiting session, the blocking session, and the lock.
type Waiting = (u64, u64, String);

/// One server's lock waits as last read, and when.
struct LockWaits {
    opts: Opts,
    conn: Mutex<Conn>,
    picture: Mutex<Option<(std::time::Instant, Vec<Waiting>)>>,
}

/// The shared [`LockWaits`] of the server `opts` points at (by host and port).
fn lock_waits(opts: &Opts) -> Result<Arc<LockWaits>, String> {
    static SERVERS: Mutex<Vec<(String, Arc<LockWaits>)>> = Mutex::new(Vec::new());
    let key = format!("{}:{}", opts.get_ip_or_hostname(), opts.get_tcp_port());
    let mut servers = SERVERS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, w)) = servers.iter().find(|(k, _)| *k == key) {
        return Ok(Arc::clone(w));
    }
    let w = Arc::new(LockWaits {
        opts: opts.clone(),
        conn: Mutex::new(connect(opts)?),
        picture: Mutex::new(None),
    });
    servers.push((key, Arc::clone(&w)));
    Ok(w)
}

/// Every lock wait on the server: waiting session, blocking session, the lock in words.
const LOCK_WAITS: &str = "SELECT r.trx_mysql_thread_id, b.trx_mysql_thread_id, CONCAT(l.lock_mode, ' ', l.lock_type, ' lock on ', l.lock_table, COALESCE(CONCAT(' index ', l.lock_index), ''), COALESCE(CONCAT(' at ', l.lock_data), '')) \
     FROM information_schema.INNODB_LOCK_WAITS w \
     JOIN information_schema.INNODB_TRX r ON r.trx_id = w.requesting_trx_id \
     JOIN information_schema.INNODB_TRX b ON b.trx_id = w.blocking_trx_id \
     JOIN information_schema.INNODB_LOCKS l ON l.lock_id = w.requested_lock_id";

impl LockWaits {
    /// The waits of session `id` as the server knew them after `since`, reading the server's
    /// tables again if the last picture is old enough to be refreshed; `None` inside when no
    /// picture newer than `since` exists yet (the caller asks again on its next poll).
    fn of(&self, id: u64, since: std::time::Instant) -> Result<Option<Vec<(u64, String)>>, String> {
        let mut picture = self.picture.lock().unwrap_or_else(|e| e.into_inner());
        let stale = picture
            .as_ref()
            .is_none_or(|(at, _)| at.elapsed() >= INNODB_CACHE_IDLE);
        if stale {
            let at = std::time::Instant::now();
            let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
            let rows = match conn.query(LOCK_WAITS) {
                Ok(rows) => rows,
                // The process outlives a server restart (tests start servers of their own):
                // one new connection, then the error is real.
                Err(_) => {
                    *conn = connect(&self.opts)?;
                    conn.query(LOCK_WAITS).map_err(|e| e.to_string())?
                }
            };
            *picture = Some((at, rows));
        }
        let Some((at, rows)) = picture.as_ref() else {
            return Ok(None);
        };
        if *at <= since {
            return Ok(None);
        }
        Ok(Some(
            rows.iter()
                .filter(|(r, _, _)| *r == id)
                .map(|(_, b, l)| (*b, l.clone()))
                .collect(),
        ))
    }
}

impl Monitor for MariaMonitor {
    fn reusable(&mut self) -> bool {
        self.conn.ping().is_ok()
    }
    fn waiting_for(
        &mut self,
        id: i64,
        peers: &[i64],
        since: std::time::Instant,
    ) -> Result<Option<(Vec<i64>, String)>, String> {
        // The status is written afresh on every call: a wait it settles is known at once,
        // without waiting for the lock-wait tables' cache to refresh.
        let status: Option<(String, String, String)> = self
            .conn
            .query_first("SHOW ENGINE INNODB STATUS")
            .map_err(|e| e.to_string())?;
        let txns = status.map_or_else(Vec::new, |(_, _, s)| innodb_status::transactions(&s));
        let peers: Vec<u64> = peers.iter().map(|&p| p as u64).collect();
        if let Some((holder, what)) = innodb_status::sole_blocker(&txns, id as u64, &peers) {
            return Ok(Some((vec![holder as i64], format!("InnoDB: {what}"))));
        }
        if !txns
            .iter()
            .any(|t| t.thread == id as u64 && t.waiting_for.is_some())
        {
            // Not waiting now (or already done): nothing to ask the cached tables.
            return Ok(None);
        }
        let Some(waits) = self.waits.of(id as u64, since)? else {
            return Ok(None);
        };
        let Some((_, what)) = waits.first() else {
            return Ok(None);
        };
        let what = format!("InnoDB: {what}");
        Ok(Some((
            waits.into_iter().map(|(t, _)| t as i64).collect(),
            what,
        )))
    }
    fn query(&mut self, sql: &str, args: &[Value]) -> Result<Value, String> {
        rows(&mut self.conn, sql, args).map_err(|(_, m)| m)
    }
    fn terminate(&mut self, id: i64) {
        let _ = self.conn.query_drop(format!("KILL {id}"));
    }
    fn connections(&mut self, db: &str) -> Result<i64, String> {
        let full = format!("{}_{db}", self.run);
        let n: Option<i64> = self
            .conn
            .exec_first(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = ?",
                (full,),
            )
            .map_err(|e| e.to_string())?;
        Ok(n.unwrap_or(0))
    }
    fn session_open(&mut self, id: i64) -> Result<bool, String> {
        let n: Option<i64> = self
            .conn
            .exec_first(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = ?",
                (id as u64,),
            )
            .map_err(|e| e.to_string())?;
        Ok(n.unwrap_or(0) > 0)
    }
}

//! PostgreSQL as a real database: a throwaway database per run on a given server, a connection
//! per actor, and a monitor connection that asks `pg_blocking_pids()` whether a session waits
//! for a lock (as PostgreSQL's isolationtester asks `pg_isolation_test_session_is_blocked`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use postgres::types::{ToSql, Type};
use postgres::{Client, Config, NoTls, Row};

use super::reset::{truncate_plan, TruncatePlan};
use super::{
    created_table, translate_ddl, Backend, DbInfo, Dialect, Kind, Monitor, Session, SqlError,
};
use racelab_lang::ir::{Errno, Value};

static RUNS: AtomicU64 = AtomicU64::new(0);

pub(crate) struct PgDb {
    /// A connection to the database the URL names, for CREATE and DROP DATABASE.
    admin: Mutex<Client>,
    config: Config,
    name: String,
    setup: Vec<String>,
    /// How a reset empties and refills the tables, when TRUNCATE can (see [`super::reset`]).
    truncate: Option<TruncatePlan>,
    /// racelab's own connection to this database for resets, kept from run to run.
    resetter: Mutex<Option<Client>>,
    /// The previous run's monitor, handed to the next run (racelab's own connections).
    spare_monitor: Mutex<Option<Box<dyn Monitor>>>,
    /// Actors' connections of finished runs, reset with DISCARD ALL, for the next runs' actors:
    /// starting a PostgreSQL backend (a fork, authentication, cache loading) took 3-20 ms per
    /// connection on a loaded machine, more than the rest of a run.
    spare_sessions: Mutex<Vec<Box<dyn Session>>>,
    /// The scenario's `database NAME`s, each a real database `<name>_<NAME>` beside this one.
    named: Vec<String>,
    info: DbInfo,
}

fn connect(config: &Config) -> Result<Client, String> {
    config.connect(NoTls).map_err(|e| format!("cannot connect to PostgreSQL: {e}; is the server up (`cargo xtask db up`) and the URL right?"))
}

impl PgDb {
    pub(crate) fn create(url: &str, setup: &[String], named: &[String]) -> Result<PgDb, String> {
        let base: Config = url
            .parse()
            .map_err(|e| format!("bad PostgreSQL URL `{url}`: {e}"))?;
        let mut admin = connect(&base)?;
        let local = base.get_hosts().iter().all(|h| match h {
            postgres::config::Host::Tcp(h) => h == "127.0.0.1" || h == "localhost" || h == "::1",
            _ => true,
        });
        if local {
            let names: Vec<String> = admin
                .query(
                    "SELECT datname FROM pg_database WHERE datname LIKE 'racelab\\_%'",
                    &[],
                )
                .map(|rows| rows.iter().map(|r| r.get(0)).collect())
                .unwrap_or_default();
            for stale in super::stale_run_databases(&names) {
                let _ =
                    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {stale} WITH (FORCE)"));
            }
        }
        let name = format!(
            "racelab_{}_{}",
            std::process::id(),
            RUNS.fetch_add(1, Ordering::Relaxed)
        );
        // Two statements: CREATE DATABASE cannot run inside the implicit transaction of a batch.
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
            .map_err(|e| format!("cannot drop database {name}: {}", message(&e)))?;
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .map_err(|e| format!("cannot create database {name}: {}", message(&e)))?;
        for db in named {
            let full = format!("{name}_{db}");
            admin
                .batch_execute(&format!("DROP DATABASE IF EXISTS {full}"))
                .map_err(|e| format!("cannot drop database {full}: {}", message(&e)))?;
            admin
                .batch_execute(&format!("CREATE DATABASE {full}"))
                .map_err(|e| format!("cannot create database {full}: {}", message(&e)))?;
        }
        let mut config = base.clone();
        config.dbname(&name);
        let mut probe = connect(&config)?;
        let show = |c: &mut Client, what: &str| -> Result<String, String> {
            c.query_one(&format!("SHOW {what}"), &[])
                .map(|r| r.get::<_, String>(0))
                .map_err(|e| e.to_string())
        };
        let version = show(&mut probe, "server_version")?;
        let isolation = show(&mut probe, "transaction_isolation")?;
        drop(probe);
        let db = PgDb {
            admin: Mutex::new(admin),
            config,
            name,
            setup: setup.to_vec(),
            truncate: truncate_plan(setup),
            resetter: Mutex::new(None),
            spare_monitor: Mutex::new(None),
            spare_sessions: Mutex::new(Vec::new()),
            named: named.to_vec(),
            info: DbInfo {
                backend: "db:postgres".into(),
                server_version: format!("PostgreSQL {version}"),
                isolation_level: isolation,
            },
        };
        db.with_resetter(|c| db.recreate(c))?;
        Ok(db)
    }

    /// Runs `f` on the kept reset connection, connecting first when there is none or the
    /// server closed it.
    fn with_resetter<T>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<T, String>,
    ) -> Result<T, String> {
        let mut kept = self.resetter.lock().unwrap_or_else(|e| e.into_inner());
        if kept.as_ref().is_none_or(Client::is_closed) {
            *kept = Some(connect(&self.config)?);
        }
        f(kept.as_mut().expect("connected above"))
    }

    /// Drops the setup's tables and runs the whole setup again.
    fn recreate(&self, c: &mut Client) -> Result<(), String> {
        for stmt in &self.setup {
            if let Some(t) = created_table(stmt) {
                c.batch_execute(&format!("DROP TABLE IF EXISTS \"{t}\" CASCADE"))
                    .map_err(|e| e.to_string())?;
            }
        }
        for stmt in &self.setup {
            c.batch_execute(&translate_ddl(stmt, Dialect::Postgres))
                .map_err(|e| {
                    format!(
                        "setup statement `{stmt}` failed on PostgreSQL: {}",
                        message(&e)
                    )
                })?;
        }
        Ok(())
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        // racelab's own connections to the database go first.
        self.spare_monitor
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        self.spare_sessions
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        self.resetter
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let mut admin = self.admin.lock().unwrap_or_else(|e| e.into_inner());
        for db in &self.named {
            let _ = admin.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {}_{db} WITH (FORCE)",
                self.name
            ));
        }
        let _ = admin.batch_execute(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ));
    }
}

impl Backend for PgDb {
    fn connect(&self, _actor: usize) -> Result<Box<dyn Session>, String> {
        let spare = self
            .spare_sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop();
        if let Some(session) = spare {
            return Ok(session);
        }
        let mut client = connect(&self.config)?;
        let pid: i32 = client
            .query_one("SELECT pg_backend_pid()", &[])
            .map_err(|e| e.to_string())?
            .get(0);
        Ok(Box::new(PgSession { client, pid }))
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
        let client = connect(&self.config)?;
        let cancel = connect(&self.config)?;
        Ok(Box::new(PgMonitor {
            client,
            cancel,
            run: self.name.clone(),
        }))
    }
    fn connect_named(&self, db: &str) -> Result<Box<dyn Session>, String> {
        if !self.named.iter().any(|n| n == db) {
            return Err(format!("the scenario declares no `database {db}`"));
        }
        let mut config = self.config.clone();
        config.dbname(&format!("{}_{db}", self.name));
        let mut client = connect(&config)?;
        let pid: i32 = client
            .query_one("SELECT pg_backend_pid()", &[])
            .map_err(|e| e.to_string())?
            .get(0);
        Ok(Box::new(PgSession { client, pid }))
    }
    fn info(&self) -> DbInfo {
        self.info.clone()
    }
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }
    fn reset(&self) -> Result<(), String> {
        self.with_resetter(|c| match &self.truncate {
            Some(plan) => c
                .batch_execute(&plan.postgres())
                .map_err(|e| format!("resetting the tables failed on PostgreSQL: {}", message(&e))),
            None => self.recreate(c),
        })
    }
    fn recycle_session(&self, mut session: Box<dyn Session>) {
        if session.reset_for_reuse() {
            self.spare_sessions
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(session);
        }
    }
    fn recycle_monitor(&self, mut monitor: Box<dyn Monitor>) {
        if monitor.reusable() {
            *self.spare_monitor.lock().unwrap_or_else(|e| e.into_inner()) = Some(monitor);
        }
    }
}

struct PgSession {
    client: Client,
    pid: i32,
}

fn message(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => db.message().to_string(),
        None => e.to_string(),
    }
}

/// psycopg2's exception classes, by SQLSTATE class; "current transaction is aborted" is the
/// model's ProgrammingError.
fn map_err(e: postgres::Error) -> SqlError {
    let error = match e.code().map(|c| c.code()) {
        Some(c) if c.starts_with("23") => Errno::IntegrityError,
        Some("25P02") => Errno::ProgrammingError,
        Some(c)
            if ["40", "53", "55", "57", "58", "08", "XX"]
                .iter()
                .any(|p| c.starts_with(p)) =>
        {
            Errno::OperationalError
        }
        Some(_) => Errno::ProgrammingError,
        None => Errno::OperationalError,
    };
    (error, message(&e))
}

/// A parameter of the type the server inferred for its placeholder.
fn param(ty: &Type, v: &Value) -> Result<Box<dyn ToSql + Sync>, SqlError> {
    let int = |v: &Value| match v {
        Value::Int(n) => Ok(Some(*n)),
        Value::Bool(b) => Ok(Some(*b as i64)),
        Value::None => Ok(None),
        other => Err((
            Errno::ProgrammingError,
            format!("cannot pass {} `{other}` as {ty}", other.type_name()),
        )),
    };
    let out_of_range = |_| {
        (
            Errno::ProgrammingError,
            format!("{v} is out of range for {ty}"),
        )
    };
    Ok(match *ty {
        Type::INT2 => Box::new(
            int(v)?
                .map(i16::try_from)
                .transpose()
                .map_err(out_of_range)?,
        ),
        Type::INT4 => Box::new(
            int(v)?
                .map(i32::try_from)
                .transpose()
                .map_err(out_of_range)?,
        ),
        Type::INT8 => Box::new(int(v)?),
        Type::BOOL => Box::new(match v {
            Value::Bool(b) => Some(*b),
            Value::Int(n) => Some(*n != 0),
            _ => None,
        }),
        _ => Box::new(match v {
            Value::None => None,
            other => Some(other.to_string()),
        }),
    })
}

fn value(row: &Row, i: usize) -> Result<Value, postgres::Error> {
    let ty = row.columns()[i].type_().clone();
    Ok(match ty {
        Type::INT2 => row
            .try_get::<_, Option<i16>>(i)?
            .map_or(Value::None, |n| Value::Int(n.into())),
        Type::INT4 => row
            .try_get::<_, Option<i32>>(i)?
            .map_or(Value::None, |n| Value::Int(n.into())),
        Type::INT8 => row
            .try_get::<_, Option<i64>>(i)?
            .map_or(Value::None, Value::Int),
        Type::BOOL => row
            .try_get::<_, Option<bool>>(i)?
            .map_or(Value::None, Value::Bool),
        _ => row
            .try_get::<_, Option<String>>(i)?
            .map_or(Value::None, |s| Value::str(&s)),
    })
}

fn query(client: &mut Client, sql: &str, args: &[Value]) -> Result<Value, SqlError> {
    let stmt = client.prepare(sql).map_err(map_err)?;
    let params = stmt
        .params()
        .iter()
        .zip(args)
        .map(|(t, v)| param(t, v))
        .collect::<Result<Vec<_>, _>>()?;
    let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|b| b.as_ref()).collect();
    let rows = client.query(&stmt, &refs).map_err(map_err)?;
    let out = rows
        .iter()
        .map(|r| {
            (0..r.len())
                .map(|i| value(r, i))
                .collect::<Result<Vec<_>, _>>()
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(map_err)?;
    Ok(Value::Rows(Arc::new(out)))
}

impl Session for PgSession {
    fn id(&self) -> i64 {
        self.pid.into()
    }
    fn reset_for_reuse(&mut self) -> bool {
        // ROLLBACK ends a transaction the actor left open (a warning when there is none);
        // DISCARD ALL, which may not run inside one, then drops everything else the session
        // set up: settings (RESET ALL), prepared statements, portals, temp tables, advisory
        // locks, LISTEN, cached plans and sequence state.
        !self.client.is_closed()
            && self.client.batch_execute("ROLLBACK").is_ok()
            && self.client.batch_execute("DISCARD ALL").is_ok()
    }
    fn run(&mut self, sql: &str, args: &[Value], kind: Kind) -> Result<Value, SqlError> {
        match kind {
            Kind::Select => query(&mut self.client, sql, args),
            Kind::Control => self
                .client
                .batch_execute(sql)
                .map(|_| Value::None)
                .map_err(map_err),
            Kind::Change => {
                let stmt = self.client.prepare(sql).map_err(map_err)?;
                let params = stmt
                    .params()
                    .iter()
                    .zip(args)
                    .map(|(t, v)| param(t, v))
                    .collect::<Result<Vec<_>, _>>()?;
                let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|b| b.as_ref()).collect();
                self.client
                    .execute(&stmt, &refs)
                    .map(|n| Value::Int(n as i64))
                    .map_err(map_err)
            }
        }
    }
}

struct PgMonitor {
    client: Client,
    /// A second connection, for ending sessions (never inside a query of `client`).
    cancel: Client,
    /// This run's database; a `database NAME` is `<run>_<NAME>` on the server.
    run: String,
}

impl Monitor for PgMonitor {
    fn reusable(&mut self) -> bool {
        !self.client.is_closed() && !self.cancel.is_closed()
    }
    fn waiting_for(
        &mut self,
        id: i64,
        _peers: &[i64],
        _since: std::time::Instant,
    ) -> Result<Option<(Vec<i64>, String)>, String> {
        let pid = id as i32;
        let row = self
            .client
            .query_one("SELECT pg_blocking_pids($1)", &[&pid])
            .map_err(|e| e.to_string())?;
        let holders: Vec<i32> = row.get(0);
        if holders.is_empty() {
            return Ok(None);
        }
        let what = self
            .client
            .query_opt(
                "SELECT locktype || COALESCE(' on ' || relation::regclass::text, '') || COALESCE(' ' || transactionid::text, '') || ' (' || mode || ')' FROM pg_locks WHERE pid = $1 AND NOT granted LIMIT 1",
                &[&pid],
            )
            .map_err(|e| e.to_string())?
            .map(|r| r.get::<_, String>(0))
            .unwrap_or_else(|| "a lock".into());
        Ok(Some((
            holders.into_iter().map(i64::from).collect(),
            format!("pg_locks: {what}"),
        )))
    }
    fn query(&mut self, sql: &str, args: &[Value]) -> Result<Value, String> {
        query(&mut self.client, sql, args).map_err(|(_, m)| m)
    }
    fn terminate(&mut self, id: i64) {
        let _ = self
            .cancel
            .execute("SELECT pg_terminate_backend($1)", &[&(id as i32)]);
    }
    fn connections(&mut self, db: &str) -> Result<i64, String> {
        let full = format!("{}_{db}", self.run);
        let row = self
            .client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1",
                &[&full],
            )
            .map_err(|e| e.to_string())?;
        Ok(row.get::<_, i64>(0))
    }
    fn session_open(&mut self, id: i64) -> Result<bool, String> {
        let row = self
            .client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = $1",
                &[&(id as i32)],
            )
            .map_err(|e| e.to_string())?;
        Ok(row.get::<_, i64>(0) > 0)
    }
}

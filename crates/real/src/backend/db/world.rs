//! The real database as the model world: one connection thread per actor, each statement
//! run with a limit, and a statement that waits on a lock reported `Blocked` by the monitor.

use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::sql_text::{kind_of, translate};
use super::{Backend, DbInfo, Kind, Monitor, Session, SqlError};
use racelab_core::model::db::{Outcome, Prepared};
use racelab_core::model::fs::ModelFs;
use racelab_core::model::world::{OpCtx, Signals, Sql, World};
use racelab_lang::ir::{Errno, Op, Program, Value};

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
pub(crate) struct RealDbWorld {
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
    pub(crate) fn new(prog: &Program, backend: Arc<dyn Backend>) -> Result<RealDbWorld, String> {
        let mut fs = ModelFs::new();
        for entry in &prog.fs {
            match entry {
                racelab_lang::ir::FsInit::Dir(p) => fs.mkdir_all(p, racelab_core::model::EPOCH_MS),
                racelab_lang::ir::FsInit::File(p, c) => {
                    fs.put_file(p, c, racelab_core::model::EPOCH_MS)
                }
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

    pub(crate) fn info(&self) -> DbInfo {
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

//! Runs a spec's permutations the way isolationtester does (run_permutation,
//! try_complete_step, try_complete_steps in isolationtester.c), over the [`Link`] and [`Watch`]
//! traits: the real server through [`super::wire::Conn`], and the model through the same
//! interface ([`super::model`]). A launched step is watched by polling every 10 ms whether its session waits for a
//! lock (`pg_isolation_test_session_is_blocked`), never by a fixed sleep.

use std::time::{Duration, Instant};

use super::output::{print_result_set, print_step_result};
use super::parse::{Blocker, PermStep, Spec};
use super::wire::{Conn, ConnParams, Notify, PgResult};

/// One session's connection, driven like libpq's asynchronous API.
pub trait Link {
    fn send_query(&mut self, sql: &str) -> Result<(), String>;
    /// Parses what arrived; true while the next result is not ready.
    fn is_busy(&mut self) -> bool;
    /// Waits up to `timeout` for data; true when some came.
    fn wait_readable(&mut self, timeout: Duration) -> Result<bool, String>;
    fn consume_input(&mut self) -> Result<(), String>;
    /// The next result (waiting for it), None when the step's statements are all done.
    fn get_result(&mut self) -> Result<Option<PgResult>, String>;
    fn take_notices(&mut self) -> Vec<String>;
    fn take_notifies(&mut self) -> Vec<Notify>;
    /// The server's id for the session (the backend pid).
    fn pid(&self) -> i32;
    /// Asks the server to cancel the running statement.
    fn cancel(&self) -> Result<(), String>;
    /// Why the running statement can never finish unless another step is sent (the model
    /// knows: it changes only when a statement is sent; a server cannot tell). Such a step is
    /// cancelled at once rather than after the step timeout.
    fn stalled(&self) -> Option<String> {
        None
    }
}

impl Link for Conn {
    fn send_query(&mut self, sql: &str) -> Result<(), String> {
        Conn::send_query(self, sql)
    }
    fn is_busy(&mut self) -> bool {
        Conn::is_busy(self)
    }
    fn wait_readable(&mut self, timeout: Duration) -> Result<bool, String> {
        Conn::wait_readable(self, timeout)
    }
    fn consume_input(&mut self) -> Result<(), String> {
        Conn::consume_input(self)
    }
    fn get_result(&mut self) -> Result<Option<PgResult>, String> {
        Conn::get_result(self)
    }
    fn take_notices(&mut self) -> Vec<String> {
        Conn::take_notices(self)
    }
    fn take_notifies(&mut self) -> Vec<Notify> {
        Conn::take_notifies(self)
    }
    fn pid(&self) -> i32 {
        self.pid
    }
    fn cancel(&self) -> Result<(), String> {
        Conn::cancel(self)
    }
}

/// The control connection: setup and teardown, and the lock-wait question.
pub trait Watch {
    fn exec(&mut self, sql: &str) -> Result<Vec<PgResult>, String>;
    /// Whether session `pid` waits for a lock held by one of `pids` (or for a safe snapshot).
    fn is_blocked(&mut self, pid: i32, pids: &[i32]) -> Result<bool, String>;
    /// The sessions whose locks session `pid` waits for (`pg_blocking_pids`); empty when it
    /// waits for none or the backend cannot tell.
    fn blockers(&mut self, _pid: i32) -> Result<Vec<i32>, String> {
        Ok(Vec::new())
    }
    /// Every table of the spec with its committed rows (for an exploration's outcome).
    fn snapshot(&mut self) -> Result<Vec<TableRows>, String> {
        Err("this backend cannot list its tables".into())
    }
    /// Rolls back the prepared transactions an interleaving left (one whose COMMIT PREPARED ran
    /// before its PREPARE TRANSACTION), which would otherwise hold their locks for ever.
    fn roll_back_prepared(&mut self) -> Result<(), String> {
        Ok(())
    }
    /// While `on`, the control connection waits at most a few seconds for a lock (an
    /// exploration's teardown must not hang on a lock an odd interleaving left).
    fn limit_lock_waits(&mut self, _on: bool) -> Result<(), String> {
        Ok(())
    }
}

/// Tables with more rows than this are summed up (count and hash) in an exploration's outcome.
pub const MAX_ROWS_LISTED: usize = 200;

/// One table's committed rows, each rendered `(v1,v2,…)` (NULL for a null), sorted.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TableRows {
    pub table: String,
    pub rows: Vec<String>,
}

/// Renders one row as the outcome of an exploration shows it.
pub fn render_row(values: &[Option<String>]) -> String {
    let cells: Vec<&str> = values
        .iter()
        .map(|v| v.as_deref().unwrap_or("NULL"))
        .collect();
    format!("({})", cells.join(","))
}

impl Watch for Conn {
    fn exec(&mut self, sql: &str) -> Result<Vec<PgResult>, String> {
        let r = Conn::exec(self, sql);
        self.take_notices(); // the control connection's notices are hidden (blackhole processor)
        r
    }
    fn is_blocked(&mut self, pid: i32, pids: &[i32]) -> Result<bool, String> {
        let list = pids
            .iter()
            .map(i32::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let rows = Watch::exec(
            self,
            &format!("SELECT pg_catalog.pg_isolation_test_session_is_blocked({pid}, '{{{list}}}')"),
        )?;
        match rows.first() {
            Some(PgResult::Tuples { rows, .. }) if rows.len() == 1 => Ok(rows[0]
                .first()
                .cloned()
                .flatten()
                .is_some_and(|v| v.starts_with('t'))),
            other => Err(format!("lock wait query failed: {other:?}")),
        }
    }
    fn roll_back_prepared(&mut self) -> Result<(), String> {
        let gids = Watch::exec(
            self,
            "SELECT gid FROM pg_catalog.pg_prepared_xacts WHERE database = current_database()",
        )?;
        if let Some(PgResult::Tuples { rows, .. }) = gids.first() {
            for gid in rows.iter().filter_map(|r| r.first().cloned().flatten()) {
                Watch::exec(
                    self,
                    &format!("ROLLBACK PREPARED '{}'", gid.replace('\'', "''")),
                )?;
            }
        }
        Ok(())
    }
    fn limit_lock_waits(&mut self, on: bool) -> Result<(), String> {
        Watch::exec(
            self,
            if on {
                "SET lock_timeout = '10s'"
            } else {
                "RESET lock_timeout"
            },
        )
        .map(|_| ())
    }
    /// Lock holders, and for a SERIALIZABLE READ ONLY DEFERRABLE transaction waiting for a
    /// safe snapshot, the transactions it waits out.
    fn blockers(&mut self, pid: i32) -> Result<Vec<i32>, String> {
        let rows = Watch::exec(
            self,
            &format!("SELECT pg_catalog.pg_blocking_pids({pid}) || pg_catalog.pg_safe_snapshot_blocking_pids({pid})"),
        )?;
        match rows.first() {
            Some(PgResult::Tuples { rows, .. }) if rows.len() == 1 => Ok(rows[0]
                .first()
                .cloned()
                .flatten()
                .unwrap_or_default()
                .trim_matches(|c| c == '{' || c == '}')
                .split(',')
                .filter_map(|p| p.trim().parse().ok())
                .collect()),
            other => Err(format!("pg_blocking_pids failed: {other:?}")),
        }
    }
    /// The user tables (not the catalogs) and their rows, each read with a lock timeout so that
    /// a table some session still locks exclusively is reported rather than waited for. A table
    /// of more than [`MAX_ROWS_LISTED`] rows is summed up by its row count and an
    /// order-independent hash of its rows, computed by the server.
    fn snapshot(&mut self) -> Result<Vec<TableRows>, String> {
        let names = Watch::exec(
            self,
            "SELECT c.oid::pg_catalog.regclass::text FROM pg_catalog.pg_class c \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p') AND n.nspname <> 'information_schema' \
             AND n.nspname !~ '^pg_' ORDER BY 1",
        )?;
        let names: Vec<String> = match names.first() {
            Some(PgResult::Tuples { rows, .. }) => rows
                .iter()
                .filter_map(|r| r.first().cloned().flatten())
                .collect(),
            other => return Err(format!("cannot list the tables: {other:?}")),
        };
        let mut out = Vec::new();
        for table in names {
            let res = Watch::exec(
                self,
                &format!("BEGIN; SET LOCAL lock_timeout = '5s'; SELECT CASE WHEN count(*) > {MAX_ROWS_LISTED} THEN count(*) || ' rows, hash ' || sum(pg_catalog.hashtext(x::text)::bigint) END FROM {table} x; COMMIT"),
            )?;
            let summary = res.iter().find_map(|r| match r {
                PgResult::Tuples { rows, .. } => {
                    rows.first().and_then(|r| r.first().cloned().flatten())
                }
                _ => None,
            });
            if let Some(summary) = summary {
                out.push(TableRows {
                    table,
                    rows: vec![format!("<{summary}>")],
                });
                continue;
            }
            let res = if res.iter().any(|r| matches!(r, PgResult::Error { .. })) {
                res
            } else {
                Watch::exec(
                    self,
                    &format!("BEGIN; SET LOCAL lock_timeout = '5s'; SELECT * FROM {table}; COMMIT"),
                )?
            };
            let mut rows = match res.iter().find_map(|r| match r {
                PgResult::Tuples { rows, .. } => Some(rows),
                _ => None,
            }) {
                Some(rows) => rows.iter().map(|r| render_row(r)).collect(),
                None => {
                    let why = res
                        .iter()
                        .find_map(|r| match r {
                            PgResult::Error { message, .. } => Some(message.clone()),
                            _ => None,
                        })
                        .unwrap_or_else(|| "no result".into());
                    let _ = Watch::exec(self, "ROLLBACK");
                    vec![format!("<unreadable: {why}>")]
                }
            };
            rows.sort();
            out.push(TableRows { table, rows });
        }
        Ok(out)
    }
}

/// Opens the connections a spec needs: a control connection and one per session.
pub fn connect_real(
    params: &ConnParams,
    test: &str,
    spec: &Spec,
) -> Result<(Conn, Vec<Conn>), String> {
    let with_app = |name: &str| {
        let mut p = params.clone();
        p.options.push((
            "application_name".into(),
            format!("isolation/{test}/{name}"),
        ));
        p
    };
    let control = Conn::connect(&with_app("control connection"))?;
    let sessions = spec
        .sessions
        .iter()
        .map(|s| Conn::connect(&with_app(&s.name)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((control, sessions))
}

const STEP_NONBLOCK: u8 = 1;
const STEP_RETRY: u8 = 2;
/// isolationtester checks for lock waits every 10 ms.
const POLL: Duration = Duration::from_millis(10);

/// One spec's run: the output isolationtester would print (stdout and stderr, as pg_regress
/// captures both), and whether it ran to the end.
pub struct Outcome {
    pub output: String,
    /// Why the run stopped early (isolationtester would have exited 1), if it did.
    pub fatal: Option<String>,
    pub permutations: usize,
}

struct Runner<'a, L: Link, W: Watch> {
    spec: &'a Spec,
    control: W,
    conns: Vec<L>,
    pids: Vec<i32>,
    /// Per session: the index (in the current permutation) of its active step.
    active: Vec<Option<usize>>,
    total_notices: Vec<u64>,
    any_new_notice: bool,
    /// Per permutation step, per marker: the notice count to reach (`notices N`).
    target_notices: Vec<Vec<u64>>,
    out: String,
    max_step_wait: Duration,
    /// Exploring interleavings nobody vetted: a step that waits on a session with no step
    /// left before it is cancelled at once (as isolationtester would after its step timeout),
    /// sessions are rolled back after each permutation, and the tables are read.
    explore: bool,
    trace: Trace,
}

/// What happened in one permutation, beyond its printed output: the errors by step, the
/// steps cancelled, and (when exploring) the tables' rows at the end.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trace {
    /// (step, SQLSTATE) of every error a step's statements raised, in order.
    pub errors: Vec<(String, String)>,
    /// Steps cancelled because they waited on a session that had no step left before them.
    pub stalled: Vec<String>,
    /// Steps cancelled because the step timeout passed.
    pub timed_out: Vec<String>,
    /// The tables at the end (after every session's open transaction was rolled back).
    pub tables: Option<Result<Vec<TableRows>, String>>,
}

/// One permutation's run during an exploration.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// What isolationtester prints for it, from `starting permutation:` on.
    pub output: String,
    pub trace: Trace,
    /// Why the run stopped (isolationtester would have exited), if it did; the connections
    /// are then unusable.
    pub fatal: Option<String>,
}

/// Runs `perms` (in order, on the same connections) recording each one's [`Trace`], with
/// stalled steps cancelled at once and every session rolled back after each permutation.
/// Stops after the first permutation that fails fatally (its record says why): the caller
/// reconnects and goes on.
pub fn run_recorded<L: Link, W: Watch>(
    spec: &Spec,
    control: W,
    conns: Vec<L>,
    perms: &[Vec<PermStep>],
    max_step_wait: Duration,
) -> Vec<Recorded> {
    let pids = conns.iter().map(Link::pid).collect();
    let mut r = Runner {
        spec,
        control,
        active: vec![None; conns.len()],
        total_notices: vec![0; conns.len()],
        pids,
        conns,
        any_new_notice: false,
        target_notices: vec![],
        out: String::new(),
        max_step_wait,
        explore: true,
        trace: Trace::default(),
    };
    let mut out = Vec::new();
    for p in perms {
        r.out.clear();
        r.trace = Trace::default();
        let fatal = r.run_permutation(p).err();
        if let Some(e) = &fatal {
            r.out.push_str(e);
            if !e.ends_with('\n') {
                r.out.push('\n');
            }
        }
        out.push(Recorded {
            output: std::mem::take(&mut r.out),
            trace: std::mem::take(&mut r.trace),
            fatal: fatal.clone().map(|e| e.trim_end().to_string()),
        });
        if fatal.is_some() {
            break;
        }
    }
    out
}

/// Runs every permutation of `spec` (listed, or all interleavings) on the given connections.
pub fn run_spec<L: Link, W: Watch>(
    spec: &Spec,
    control: W,
    conns: Vec<L>,
    max_step_wait: Duration,
) -> Outcome {
    let pids = conns.iter().map(Link::pid).collect();
    let mut r = Runner {
        spec,
        control,
        active: vec![None; conns.len()],
        total_notices: vec![0; conns.len()],
        pids,
        conns,
        any_new_notice: false,
        target_notices: vec![],
        out: String::new(),
        max_step_wait,
        explore: false,
        trace: Trace::default(),
    };
    if !spec.permutations.is_empty() {
        let mut unused: Vec<&str> = spec
            .sessions
            .iter()
            .flat_map(|s| s.steps.iter().map(|t| t.name.as_str()))
            .filter(|name| {
                !spec
                    .permutations
                    .iter()
                    .any(|p| p.steps.iter().any(|ps| spec.step(ps).name == *name))
            })
            .collect();
        unused.sort();
        for u in unused {
            r.out.push_str(&format!("unused step name: {u}\n"));
        }
    }
    r.out.push_str(&format!(
        "Parsed test spec with {} sessions\n",
        spec.sessions.len()
    ));
    let perms = spec.permutations_to_run();
    let mut fatal = None;
    let mut ran = 0;
    for p in &perms {
        ran += 1;
        if let Err(e) = r.run_permutation(p) {
            r.out.push_str(&e);
            if !e.ends_with('\n') {
                r.out.push('\n');
            }
            fatal = Some(e.trim_end().to_string());
            break;
        }
    }
    Outcome {
        output: r.out,
        fatal,
        permutations: ran,
    }
}

impl<L: Link, W: Watch> Runner<'_, L, W> {
    fn drain_notices(&mut self, s: usize) {
        for n in self.conns[s].take_notices() {
            self.out
                .push_str(&format!("{}: {n}", self.spec.sessions[s].name));
            self.total_notices[s] += 1;
            self.any_new_notice = true;
        }
    }

    fn is_busy(&mut self, s: usize) -> bool {
        let busy = self.conns[s].is_busy();
        self.drain_notices(s);
        busy
    }

    fn print_exec(&mut self, results: Vec<PgResult>, what: &str) -> Result<(), String> {
        for r in results {
            match r {
                PgResult::Tuples { columns, rows } => {
                    print_result_set(&mut self.out, &columns, &rows)
                }
                PgResult::Error {
                    severity, message, ..
                } => return Err(format!("{what} failed: {severity}:  {message}")),
                PgResult::Lost(text) => return Err(format!("{what} failed: {text}")),
                _ => {}
            }
        }
        Ok(())
    }

    fn session_exec(&mut self, s: usize, sql: &str) -> Result<Vec<PgResult>, String> {
        self.conns[s].send_query(sql)?;
        let mut out = Vec::new();
        loop {
            let r = self.conns[s].get_result();
            self.drain_notices(s);
            match r? {
                Some(r) => out.push(r),
                None => break,
            }
        }
        Ok(out)
    }

    fn run_permutation(&mut self, steps: &[PermStep]) -> Result<(), String> {
        let spec = self.spec;
        self.out.push_str("\nstarting permutation:");
        for p in steps {
            self.out.push_str(&format!(" {}", spec.step(p).name));
        }
        self.out.push('\n');
        for sql in &spec.setup {
            let res = self.control.exec(sql)?;
            self.print_exec(res, "setup")?;
        }
        for s in 0..spec.sessions.len() {
            if let Some(sql) = &spec.sessions[s].setup {
                let res = self.session_exec(s, sql)?;
                self.print_exec(res, &format!("setup of session {}", spec.sessions[s].name))?;
            }
        }
        self.target_notices = steps.iter().map(|p| vec![0; p.blockers.len()]).collect();
        let mut waiting: Vec<usize> = Vec::new();
        for i in 0..steps.len() {
            let s = steps[i].session;
            if self.active[s].is_some() {
                let start = Instant::now();
                while let Some(old) = self.active[s] {
                    if !self.try_complete_step(steps, old, STEP_RETRY)? {
                        waiting.retain(|&w| w != old);
                    }
                    waiting =
                        self.try_complete_steps(steps, waiting, STEP_NONBLOCK | STEP_RETRY)?;
                    if self.active[s].is_some() && start.elapsed() > 2 * self.max_step_wait {
                        let active: Vec<&str> = self
                            .active
                            .iter()
                            .flatten()
                            .map(|&a| spec.step(&steps[a]).name.as_str())
                            .collect();
                        return Err(format!(
                            "step {} timed out after {} seconds\nactive steps are: {}",
                            spec.step(&steps[old]).name,
                            start.elapsed().as_secs(),
                            active.join(" ")
                        ));
                    }
                }
            }
            let sql = &spec.step(&steps[i]).sql;
            self.conns[s].send_query(sql).map_err(|e| {
                format!(
                    "failed to send query for step {}: {e}",
                    spec.step(&steps[i]).name
                )
            })?;
            self.active[s] = Some(i);
            for (k, b) in steps[i].blockers.iter().enumerate() {
                if let Blocker::Notices { session, count, .. } = b {
                    self.target_notices[i][k] = u64::from(*count) + self.total_notices[*session];
                }
            }
            let must_wait = self.try_complete_step(steps, i, STEP_NONBLOCK)?;
            waiting = self.try_complete_steps(steps, waiting, STEP_NONBLOCK | STEP_RETRY)?;
            if must_wait {
                waiting.push(i);
            }
        }
        let waiting = self.try_complete_steps(steps, waiting, STEP_RETRY)?;
        if !waiting.is_empty() {
            return Err("failed to complete permutation due to mutually-blocking steps".into());
        }
        for s in 0..spec.sessions.len() {
            if let Some(sql) = &spec.sessions[s].teardown {
                let res = self.session_exec(s, sql)?;
                if let Err(e) = self.print_exec(
                    res,
                    &format!("teardown of session {}", spec.sessions[s].name),
                ) {
                    self.out.push_str(&format!("{e}\n")); // isolationtester does not stop on teardown failure
                }
            }
        }
        if self.explore {
            for s in 0..spec.sessions.len() {
                self.rollback_quietly(s)?;
            }
            self.control.roll_back_prepared()?;
            self.trace.tables = Some(self.control.snapshot().map(|tables| {
                tables
                    .into_iter()
                    .filter(|t| spec.names_table(&t.table))
                    .collect()
            }));
            self.control.limit_lock_waits(true)?;
        }
        if let Some(sql) = &spec.teardown {
            let res = self.control.exec(sql)?;
            if let Err(e) = self.print_exec(res, "teardown") {
                self.out.push_str(&format!("{e}\n"));
            }
        }
        if self.explore {
            self.control.limit_lock_waits(false)?;
        }
        Ok(())
    }

    /// Ends session `s`'s open transaction, if any, printing nothing (exploration only: the
    /// final tables are read once no session holds a lock).
    fn rollback_quietly(&mut self, s: usize) -> Result<(), String> {
        self.conns[s].send_query("ROLLBACK")?;
        while self.conns[s].get_result()?.is_some() {}
        self.conns[s].take_notices();
        Ok(())
    }

    /// Why session `s`'s running step can never complete unless another step is sent: the
    /// model knows by itself; on a server (when exploring) the step waits for a lock held,
    /// directly or through other waiting sessions, by a session with no step running.
    fn stall(&mut self, s: usize) -> Result<Option<String>, String> {
        if let Some(why) = self.conns[s].stalled() {
            return Ok(Some(why));
        }
        if !self.explore {
            return Ok(None);
        }
        let mut seen = vec![s];
        let mut frontier = vec![s];
        while let Some(w) = frontier.pop() {
            for pid in self.control.blockers(self.pids[w])? {
                let Some(b) = self.pids.iter().position(|&p| p == pid) else {
                    continue; // not one of the spec's sessions: the step timeout handles it
                };
                if self.active[b].is_none() {
                    return Ok(Some(format!(
                        "it waits for a lock held by session {}, which has no step running",
                        self.spec.sessions[b].name
                    )));
                }
                if !seen.contains(&b) {
                    seen.push(b);
                    frontier.push(b);
                }
            }
        }
        Ok(None)
    }

    fn try_complete_steps(
        &mut self,
        steps: &[PermStep],
        mut waiting: Vec<usize>,
        flags: u8,
    ) -> Result<Vec<usize>, String> {
        loop {
            self.any_new_notice = false;
            let old = waiting.len();
            let mut have_blocker = false;
            let mut w = 0;
            while w < waiting.len() {
                if self.try_complete_step(steps, waiting[w], flags)? {
                    if !steps[waiting[w]].blockers.is_empty() {
                        have_blocker = true;
                    }
                    w += 1;
                } else {
                    waiting.remove(w);
                }
            }
            if !(have_blocker && (waiting.len() < old || self.any_new_notice)) {
                return Ok(waiting);
            }
        }
    }

    fn has_blocker(&self, steps: &[PermStep], i: usize) -> bool {
        steps[i].blockers.iter().enumerate().any(|(k, b)| match b {
            Blocker::Once => false,
            Blocker::Step { session, step } => self.active[*session]
                .is_some_and(|a| steps[a].session == *session && steps[a].step == *step),
            Blocker::Notices { session, .. } => {
                self.total_notices[*session] < self.target_notices[i][k]
            }
        })
    }

    /// True when the step is *not* complete (waits for a lock, or for its markers).
    fn try_complete_step(
        &mut self,
        steps: &[PermStep],
        i: usize,
        flags: u8,
    ) -> Result<bool, String> {
        let spec = self.spec;
        let step = spec.step(&steps[i]);
        let s = steps[i].session;
        if flags & STEP_RETRY == 0 && steps[i].blockers.contains(&Blocker::Once) {
            self.out
                .push_str(&format!("step {}: {} <waiting ...>\n", step.name, step.sql));
            return Ok(true);
        }
        let start = Instant::now();
        let mut canceled = false;
        while self.is_busy(s) {
            if self.conns[s].wait_readable(POLL)? {
                continue;
            }
            if flags & STEP_NONBLOCK == 0 {
                // Only launching another step could release it, and none will be launched
                // before this one completes: the step timeout is as good as passed, so the
                // model is cancelled at once, as a server would be when it expires.
                // A server's cancel arrives asynchronously: after it, wait for the step's
                // error (or the step timeout) rather than asking again.
                let stall = if canceled && self.conns[s].stalled().is_none() {
                    None
                } else {
                    self.stall(s)?
                };
                if let Some(why) = stall {
                    if canceled {
                        return Err(format!("step {} can never complete: {why}", step.name));
                    }
                    self.trace.stalled.push(format!("{}: {why}", step.name));
                    self.conns[s].cancel()?;
                    self.out.push_str(&format!(
                        "isolationtester: canceling step {} after {} seconds\n",
                        step.name,
                        self.max_step_wait.as_secs()
                    ));
                    canceled = true;
                    continue;
                }
            }
            if flags & STEP_NONBLOCK != 0 {
                let blocked = self
                    .control
                    .is_blocked(self.pids[s], &self.pids)
                    .map_err(|e| format!("lock wait query failed: {e}"))?;
                if blocked {
                    self.conns[s].consume_input()?;
                    if !self.is_busy(s) {
                        break;
                    }
                    if flags & STEP_RETRY == 0 {
                        self.out
                            .push_str(&format!("step {}: {} <waiting ...>\n", step.name, step.sql));
                    }
                    return Ok(true);
                }
            }
            let waited = start.elapsed();
            if waited > self.max_step_wait && !canceled && self.conns[s].cancel().is_ok() {
                self.trace.timed_out.push(step.name.clone());
                self.out.push_str(&format!(
                    "isolationtester: canceling step {} after {} seconds\n",
                    step.name,
                    waited.as_secs()
                ));
                canceled = true;
            }
            if waited > 2 * self.max_step_wait {
                return Err(format!(
                    "step {} timed out after {} seconds",
                    step.name,
                    waited.as_secs()
                ));
            }
        }
        if self.has_blocker(steps, i) {
            if flags & STEP_RETRY == 0 {
                self.out
                    .push_str(&format!("step {}: {} <waiting ...>\n", step.name, step.sql));
            }
            return Ok(true);
        }
        if flags & STEP_RETRY != 0 {
            self.out
                .push_str(&format!("step {}: <... completed>\n", step.name));
        } else {
            self.out
                .push_str(&format!("step {}: {}\n", step.name, step.sql));
        }
        loop {
            let r = self.conns[s].get_result();
            self.drain_notices(s);
            match r? {
                Some(r) => {
                    if let PgResult::Error {
                        sqlstate, message, ..
                    } = &r
                    {
                        let code = if sqlstate.is_empty() {
                            message
                        } else {
                            sqlstate
                        };
                        self.trace.errors.push((step.name.clone(), code.clone()));
                    }
                    print_step_result(&mut self.out, &r)
                }
                None => break,
            }
        }
        self.conns[s].consume_input()?;
        // libpq parses NOTIFY messages on PQconsumeInput's caller's next parse; is_busy parses.
        self.is_busy(s);
        for n in self.conns[s].take_notifies() {
            let sender = self
                .pids
                .iter()
                .position(|&p| p == n.pid)
                .map(|k| spec.sessions[k].name.clone())
                .unwrap_or_else(|| format!("PID {}", n.pid));
            self.out.push_str(&format!(
                "{}: NOTIFY \"{}\" with payload \"{}\" from {}\n",
                spec.sessions[s].name, n.channel, n.payload, sender
            ));
        }
        self.active[s] = None;
        Ok(false)
    }
}

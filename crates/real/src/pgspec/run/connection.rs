//! The connections a spec runs on: a session ([`Link`], libpq's asynchronous API) and the
//! control connection ([`Watch`]: lock waits, blockers, table snapshots), on a real server.

use std::time::Duration;

use super::super::parse::Spec;
use super::super::wire::{Conn, ConnParams, Notify, PgResult};
use racelab_core::error::Error;

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

/// Opens the connections a spec needs: a control connection and one per session. A
/// connection the server refuses is infrastructure.
pub fn connect_real(
    params: &ConnParams,
    test: &str,
    spec: &Spec,
) -> Result<(Conn, Vec<Conn>), Error> {
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

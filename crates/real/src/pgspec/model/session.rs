//! The model's connections: a session ([`Link`]) and the control connection ([`Watch`]).

use std::rc::Rc;
use std::time::Duration;

use super::super::run::{Link, Watch};
use super::super::wire::{Notify, PgResult};
use super::server::{value_text, ModelServer, Shared};
use super::{CONTROL, PID_BASE};
use racelab_core::model::db;
use racelab_lang::ir::Value;

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
    fn snapshot(&mut self) -> Result<Vec<super::super::run::TableRows>, String> {
        let server = self.server.borrow();
        let mut out = Vec::new();
        for table in server.db.table_names() {
            let stmt = db::prepare(&format!("SELECT * FROM {table}"))?;
            let mut rows: Vec<String> = match server.db.query(&stmt, &[])? {
                Value::Rows(rows) => rows
                    .iter()
                    .map(|r| {
                        super::super::run::render_row(&r.iter().map(value_text).collect::<Vec<_>>())
                    })
                    .collect(),
                other => return Err(format!("reading {table} gave {other:?}")),
            };
            rows.sort();
            out.push(super::super::run::TableRows { table, rows });
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

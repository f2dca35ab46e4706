//! Running a spec's permutations step by step, as isolationtester does: sending each step,
//! waiting for it or finding it blocked, and completing waiting steps as others finish.

use std::time::Instant;

use super::super::output::{print_result_set, print_step_result};
use super::super::parse::{Blocker, PermStep};
use super::super::wire::PgResult;
use super::connection::{Link, Watch};
use super::{Runner, POLL, STEP_NONBLOCK, STEP_RETRY};

impl<L: Link, W: Watch> Runner<'_, L, W> {
    fn drain_notices(&mut self, s: usize) {
        for n in self.conns[s].take_notices() {
            self.out
                .push_str(&format!("{}: {n}", self.spec.sessions[s].name));
            self.total_notices[s] += 1;
            self.any_new_notice = true;
        }
    }

    pub(super) fn is_busy(&mut self, s: usize) -> bool {
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

    pub(super) fn run_permutation(&mut self, steps: &[PermStep]) -> Result<(), String> {
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

    pub(super) fn try_complete_steps(
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
    pub(super) fn try_complete_step(
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

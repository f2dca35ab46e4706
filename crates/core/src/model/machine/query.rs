//! What actors and invariants read of the world (queries), the model world's state
//! fingerprint and logs, and a machine's copies (restarted from another, detached).

use super::*;

impl<F: World> Machine<F> {
    /// The world's answer to an invariant's query.
    pub(super) fn query(&self, q: Query, args: &[Value]) -> Result<Value, String> {
        let path = || match args.first() {
            Some(Value::Str(s)) => Ok(s.clone()),
            other => Err(format!(
                "expected a path, got {}",
                other.map_or("nothing", Value::type_name)
            )),
        };
        Ok(match q {
            Query::Holders(s) => {
                Value::Int(self.holders.get(s as usize).map_or(0, Vec::len) as i64)
            }
            Query::LogCount(l) => Value::Int(self.logs[l as usize].len() as i64),
            Query::LogCountMatching(l) => {
                let needle = args.first().map(|v| v.to_string()).unwrap_or_default();
                Value::Int(
                    self.logs[l as usize]
                        .iter()
                        .filter(|e| e.contains(&needle))
                        .count() as i64,
                )
            }
            Query::Cell(c) => self.cells[c as usize].clone(),
            Query::Now => Value::Int(self.clock),
            Query::Exists => Value::Bool(self.fs.observe_exists(&path()?)),
            Query::Contents => self
                .fs
                .observe_contents(&path()?)
                .map_or(Value::None, |c| Value::str(&c)),
            Query::LocalCount(l) => {
                let want = args.first().cloned().unwrap_or(Value::None);
                Value::Int(
                    self.actors
                        .iter()
                        .filter(|a| a.locals[l as usize] == want)
                        .count() as i64,
                )
            }
            Query::Connections => {
                let name = match args.first() {
                    Some(Value::Str(s)) => s.clone(),
                    other => {
                        return Err(format!(
                            "connections() takes a database name, got {}",
                            other.map_or("nothing", Value::type_name)
                        ))
                    }
                };
                let names = self
                    .prog
                    .database
                    .as_ref()
                    .map_or(&[][..], |d| &d.names[..]);
                let Some(db) = names.iter().position(|n| **n == *name) else {
                    return Err(format!(
                        "connections({name}): no such database; the server has {}",
                        names.join(", ")
                    ));
                };
                match self.fs.observe_connections(&name) {
                    Some(n) => Value::Int(n?),
                    None => Value::Int(
                        self.db
                            .as_ref()
                            .map_or(0, |d| d.named_connections(db as u32))
                            as i64,
                    ),
                }
            }
            Query::Sql(id) => match self.fs.observe_sql(&self.prog.sql[id as usize], args) {
                Some(r) => r?,
                None => match &self.db {
                    Some(db) => db.query(&self.prog.sql[id as usize], args)?,
                    None => return Err("the scenario declares no database".into()),
                },
            },
        })
    }
}

impl<F: World> Machine<F> {
    /// Makes this machine a copy of `initial` (as a clone would), keeping the allocations it
    /// made that are not state: the schedule's capacity, the emptied register vectors and the
    /// argument buffer. An engine that runs one execution after another from the same start
    /// then does not grow them again each time.
    pub fn restart_from(&mut self, initial: &Machine<F>)
    where
        F: Clone,
    {
        let mut schedule = std::mem::take(&mut self.schedule);
        let spare_regs = std::mem::take(&mut self.spare_regs);
        let arg_buf = std::mem::take(&mut self.arg_buf);
        *self = initial.clone();
        schedule.clear();
        schedule.extend_from_slice(&self.schedule);
        self.schedule = schedule;
        self.spare_regs = spare_regs;
        self.arg_buf = arg_buf;
    }
}

impl Machine<ModelFs> {
    /// A 128-bit fingerprint of everything that decides this execution's future: every actor's
    /// frames, status and thread-locals, the world (files, cells, logs, sections, locks, the
    /// lock-order graph, the database), the clock, the faults landed and pending, and which
    /// invariants have broken. Not the schedule that led here: two schedules that reach the
    /// same state have the same futures, which is what lets a stateful search expand it once.
    pub fn state_fingerprint(&self) -> u128 {
        use std::hash::Hash;
        // One pass of a fast two-lane hash (see `fingerprint.rs` for its collision bound): the
        // search hashes every successor, and two salted SipHash passes were half its time.
        let mut h = crate::model::fingerprint::Fingerprinter::default();
        self.fs.hash(&mut h);
        self.cells.hash(&mut h);
        self.logs.hash(&mut h);
        self.holders.hash(&mut h);
        self.locks.hash(&mut h);
        self.lock_order.hash(&mut h);
        self.db.hash(&mut h);
        self.clock.hash(&mut h);
        self.actors.hash(&mut h);
        self.fired.hash(&mut h);
        self.timers.hash(&mut h);
        self.deciding.hash(&mut h);
        for b in &self.broken {
            b.invariant.hash(&mut h);
        }
        self.end.hash(&mut h);
        h.finish128()
    }

    /// Gives this machine its own copy of every part it shares with other states, and `prog`
    /// (the same program) as its program handle. The parallel search calls it on a state a
    /// worker takes from another: the states of one worker then share reference counts with
    /// each other only, instead of writing counters the other core also writes at every clone
    /// and drop (cache lines bouncing between the cores).
    pub fn detach(&mut self, prog: &Arc<Program>) {
        debug_assert!(
            *self.prog.variant == *prog.variant,
            "a machine is only rebound to its own program"
        );
        self.prog = Arc::clone(prog);
        self.fs.detach();
        for a in &mut self.actors {
            a.detach();
        }
        self.cells.detach();
        self.logs.detach();
        self.holders.detach();
        self.locks.detach();
        self.lock_order.detach();
        if let Some(db) = &mut self.db {
            db.detach();
        }
    }

    /// The contents of a log, for tests and reports.
    pub fn log(&self, name: &str) -> Option<&[Arc<str>]> {
        let i = self.prog.logs.iter().position(|l| l == name)?;
        Some(&self.logs[i])
    }
}

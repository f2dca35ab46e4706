//! The world operations: filesystem calls (and their two halves), locks, database connections
//! and SQL statements, and waking the actors that waited on them.

use super::*;

impl<F: World> Machine<F> {
    pub(super) fn perform(&mut self, a: usize, op: Op, args: &[Value]) -> Result<Done, String> {
        // `close(x)` in a scenario with databases: an int is a file descriptor, not a connection.
        let op = if op == Op::Close && matches!(args.first(), Some(Value::Int(_))) {
            Op::CloseFd
        } else {
            op
        };
        let int_arg = |i: usize| match args.get(i) {
            Some(Value::Int(n)) => Ok(*n),
            other => Err(format!(
                "{} expects a duration, got {}",
                op.name(),
                other.map_or("nothing", Value::type_name)
            )),
        };
        Ok(Done::Value(match op {
            Op::Now => Value::Int(self.clock),
            Op::Sleep | Op::Work if args.len() == 2 => {
                return self.begin_decision(a, op == Op::Work, int_arg(0)?, int_arg(1)?)
            }
            Op::Sleep | Op::Work => {
                let d = int_arg(0)?.max(0);
                self.actors[a].status = Status::Sleeping(self.clock + d);
                self.actors[a].busy = op == Op::Work;
                Value::None
            }
            Op::Acquire { lock, mode } => return Ok(self.acquire(a, lock, mode)),
            Op::Release { lock } => {
                let freed = self.locks[lock as usize]
                    .release(a)
                    .map_err(|e| format!("{e}: `{}`", self.prog.locks[lock as usize].0))?;
                if let Some(i) = self.actors[a].held.iter().position(|l| *l == lock) {
                    if !self.locks[lock as usize].is_held_by(a) {
                        self.actors[a].held.remove(i);
                    }
                }
                if freed {
                    self.wake_lock_waiters(lock);
                }
                Value::None
            }
            Op::Sql(id) => return Ok(self.sql(a, id, args)),
            Op::Connect => return self.connect(a, args.first()),
            Op::Close => return self.close(args.first()),
            Op::CellGet(id) => self.cells[id as usize].clone(),
            Op::CellSet(id) => {
                self.cells[id as usize] = args[0].clone();
                self.wrote(watch::Part::Cells);
                Value::None
            }
            Op::CellPut(id) => {
                self.wrote(watch::Part::Cells);
                let name = &self.prog.cells[id as usize].0;
                let cell = &mut self.cells[id as usize];
                *cell = racelab_lang::collections::put(cell, &args[0], &args[1])
                    .map_err(|msg| format!("set {name}[{}]: {msg}", args[0]))?;
                Value::None
            }
            Op::Append(id) => {
                self.logs[id as usize].push(Arc::from(args[0].to_string().as_str()));
                self.wrote(watch::Part::Logs);
                Value::None
            }
            fs_op => {
                let fs_op = self.half_of(a, fs_op);
                let result = self.fs.perform(
                    fs_op,
                    args,
                    &OpCtx {
                        now: self.clock,
                        actor: a,
                    },
                )?;
                if matches!(
                    fs_op,
                    Op::StatLookup | Op::StatAttrs | Op::WriteOpen | Op::WriteData
                ) {
                    return Ok(self.halves(a, fs_op, result));
                }
                let others = self.fs.other_answers();
                if !others.is_empty() {
                    return Ok(self.begin_answer(a, result, others));
                }
                if fs_op == Op::Link
                    && std::mem::take(&mut self.actors[a].lose_next_link)
                    && result.is_ok()
                {
                    // The server made the link; its reply was lost; the retransmitted LINK finds
                    // the name taken.
                    return Ok(Done::Error(
                        Errno::EEXIST,
                        "(the first reply was lost: the link was made)".into(),
                    ));
                }
                return Ok(match result {
                    Ok(v) => Done::Value(v),
                    Err(e) => Done::Error(e, String::new()),
                });
            }
        }))
    }

    /// Whether actor `a` has taken the first half of a two-step call (`stat`, `write`) and not
    /// the second.
    pub fn mid_call(&self, a: usize) -> bool {
        self.actors.get(a).is_some_and(|x| x.half_done)
    }

    /// The half of a two-step call (`stat`, `write`) actor `a` takes next; other operations as they are.
    pub(super) fn half_of(&self, a: usize, op: Op) -> Op {
        if !self.prog.split_calls {
            return op;
        }
        match (op, self.actors[a].half_done) {
            (Op::Stat, false) => Op::StatLookup,
            (Op::Stat, true) => Op::StatAttrs,
            (Op::Write, false) => Op::WriteOpen,
            (Op::Write, true) => Op::WriteData,
            (op, _) => op,
        }
    }

    /// What a half of a two-step call came to: a first half that succeeded keeps the actor at
    /// the operation; a failed first half (ENOENT from the lookup) ends the call, as in the kernel.
    pub(super) fn halves(&mut self, a: usize, half: Op, result: Result<Value, Errno>) -> Done {
        let first = matches!(half, Op::StatLookup | Op::WriteOpen);
        self.actors[a].half_done = first && result.is_ok();
        match result {
            Ok(_) if half == Op::StatLookup => {
                Done::Half("looked up: the inode is pinned, its attributes not read yet")
            }
            Ok(_) if half == Op::WriteOpen => {
                Done::Half("opened with O_TRUNC: the file is empty until the write")
            }
            Ok(v) => Done::Value(v),
            Err(e) => Done::Error(e, String::new()),
        }
    }

    pub(super) fn acquire(&mut self, a: usize, lock: u32, mode: LockMode) -> Done {
        let kind = self.prog.locks[lock as usize].1;
        match self.locks[lock as usize].try_acquire(kind, mode, a) {
            Ok(first) => {
                if first {
                    let held = self.actors[a].held.clone();
                    self.lock_order.acquired(a, lock, &held);
                    self.actors[a].held.push(lock);
                }
                Done::Value(Value::None)
            }
            Err(holders) => {
                self.actors[a].status = Status::Blocked;
                self.actors[a].waiting = Some(Wait::Lock(lock));
                let names: Vec<&str> = holders
                    .iter()
                    .map(|h| &*self.prog.actors[*h].name)
                    .collect();
                Done::Blocked(format!(
                    "{} is held by {}",
                    self.prog.locks[lock as usize].0,
                    names.join(", ")
                ))
            }
        }
    }

    /// `connect(name)`: the model's server records the connection; a real server opens it.
    pub(super) fn connect(&mut self, a: usize, name: Option<&Value>) -> Result<Done, String> {
        let prog = Arc::clone(&self.prog);
        let names = prog.database.as_ref().map_or(&[][..], |d| &d.names[..]);
        let found = match name {
            Some(Value::Str(s)) => names.iter().position(|n| **n == **s),
            _ => None,
        };
        let Some(db) = found else {
            let given = name.map_or("nothing".to_string(), Value::to_string);
            return Err(format!(
                "connect({given}): no such database; the server has {}",
                names.join(", ")
            ));
        };
        let handle = self
            .db
            .as_mut()
            .expect("named databases come with the scenario's database")
            .open_named(db as u32);
        if let Some(Err(why)) = self.fs.connect(a, handle, &names[db]) {
            self.abort(format!(
                "could not connect to database {}: {why}",
                names[db]
            ));
        }
        Ok(Done::Value(Value::str(&format!("{}#{handle}", names[db]))))
    }

    /// `close(handle)`: a handle from `connect`; closing twice does nothing.
    pub(super) fn close(&mut self, handle: Option<&Value>) -> Result<Done, String> {
        let number = match handle {
            Some(Value::Str(s)) => s
                .rsplit_once('#')
                .and_then(|(_, n)| n.parse::<usize>().ok()),
            _ => None,
        };
        let known = number.is_some_and(|n| self.db.as_mut().is_some_and(|db| db.close_named(n)));
        let (Some(n), true) = (number, known) else {
            let given = handle.map_or("nothing".to_string(), Value::to_string);
            return Err(format!(
                "close({given}): not a connection; close() takes what connect() returned"
            ));
        };
        if let Some(Err(why)) = self.fs.close(n) {
            self.abort(format!("could not close connection {n}: {why}"));
        }
        Ok(Done::Value(Value::None))
    }

    pub(super) fn sql(&mut self, a: usize, id: u32, args: &[Value]) -> Done {
        let stmt = Arc::clone(&self.prog.sql[id as usize]);
        // A real database backend answers first; the model database otherwise.
        let outcome = match self.fs.sql(a, &stmt, args) {
            Some(o) => o,
            None => match self.db.as_mut() {
                Some(db) => db.execute(a, &stmt, args),
                None => {
                    return Done::Error(
                        Errno::ProgrammingError,
                        "the scenario declares no database".into(),
                    )
                }
            },
        };
        // Another transaction may have ended with this statement: its waiters retry.
        self.wake_row_waiters(a);
        match outcome {
            db::Outcome::Done(v) => Done::Value(v),
            db::Outcome::Failed { error, message } => Done::Error(error, message),
            db::Outcome::Blocked { on, lock } => {
                self.actors[a].status = Status::Blocked;
                let names: Vec<&str> = on
                    .iter()
                    .filter_map(|h| self.prog.actors.get(*h))
                    .map(|x| &*x.name)
                    .collect();
                let what = format!("{lock} is locked by {}", names.join(", "));
                self.actors[a].waiting = Some(Wait::Rows {
                    on,
                    what: what.clone(),
                });
                Done::Blocked(what)
            }
        }
    }

    /// After `lock` became free, every actor blocked on it retries.
    pub(super) fn wake_lock_waiters(&mut self, lock: u32) {
        for w in &mut self.actors {
            if w.status == Status::Blocked && w.waiting == Some(Wait::Lock(lock)) {
                w.status = Status::Ready;
                w.waiting = None;
            }
        }
    }

    /// After actor `a` ran a statement (or died), actors waiting for its rows retry.
    pub(super) fn wake_row_waiters(&mut self, a: usize) {
        for w in &mut self.actors {
            if w.status == Status::Blocked
                && matches!(&w.waiting, Some(Wait::Rows { on, .. }) if on.contains(&a))
            {
                w.status = Status::Ready;
                w.waiting = None;
            }
        }
    }
}

//! The oracles: failures and broken invariants recorded, `always` invariants checked after each
//! step, and the explanations a report prints (deadlock cycles, the values an invariant read).

use super::interp::ActorEnv;
use super::*;

impl<F: World> Machine<F> {
    pub(super) fn fail(&mut self, a: usize, oracle: &str, msg: String) {
        let name = self.prog.actors[a].name.clone();
        self.actors[a].status = Status::Failed;
        // The exception unwinds through `with` blocks (releasing their locks) and the thread
        // or process ends, closing its database connection.
        self.release_everything(a);
        self.record(oracle, format!("{name}: {msg}"));
    }

    pub(super) fn record(&mut self, invariant: &str, message: String) {
        if self.broken.iter().any(|b| b.invariant == invariant) {
            return;
        }
        self.broken.push(Broken {
            invariant: invariant.to_string(),
            at_step: self.schedule.len(),
            message,
        });
    }

    /// Checks the invariants that apply at this point and records the first break of each.
    pub(super) fn check(&mut self, when: When) {
        if self.prog.invariants.is_empty() {
            return;
        }
        let due = self.watch.due(std::mem::take(&mut self.written));
        if when == When::Always && due.is_empty() {
            // The usual step: it wrote nothing any invariant reads.
            return;
        }
        let prog = Arc::clone(&self.prog);
        for (i, inv) in prog.invariants.iter().enumerate() {
            let applies = inv.when == When::Always || when == When::AtEnd;
            // After a step, an invariant whose inputs it did not write answers as before.
            let unchanged = when == When::Always && !due.includes(i);
            if !applies
                || unchanged
                || (!self.broken.is_empty() && self.broken.iter().any(|b| b.invariant == inv.name))
            {
                continue;
            }
            let res = eval::eval_bool(
                &inv.cond,
                &ActorEnv {
                    m: self,
                    actor: None,
                },
            );
            match res {
                Ok(true) => {}
                Ok(false) => {
                    let seen = self.witness(&inv.cond);
                    let seen = if seen.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", seen.join(", "))
                    };
                    self.record(&inv.name, format!("{} is false{seen}", inv.text));
                }
                Err(msg) => self.record(
                    &inv.name,
                    format!("{} could not be evaluated: {msg}", inv.text),
                ),
            }
        }
    }

    /// The wait-for cycle of a deadlock, in words: `a waits for L held by b; b waits for …`.
    pub(super) fn describe_wait_cycle(&self) -> String {
        let waits_for = |a: usize| -> Vec<usize> {
            match &self.actors[a].waiting {
                Some(Wait::Lock(l)) => self.locks[*l as usize].holders(),
                Some(Wait::Rows { on, .. }) => on.clone(),
                None => Vec::new(),
            }
        };
        let what = |a: usize| -> String {
            match &self.actors[a].waiting {
                Some(Wait::Lock(l)) => format!(
                    "{} `{}`",
                    self.prog.locks[*l as usize].1.keyword(),
                    self.prog.locks[*l as usize].0
                ),
                Some(Wait::Rows { what, .. }) => what.clone(),
                None => "nothing".into(),
            }
        };
        let name = |a: usize| self.prog.actors[a].name.to_string();
        let start = (0..self.actors.len()).find(|&a| self.actors[a].status == Status::Blocked);
        let Some(start) = start else {
            return "every live actor is blocked".into();
        };
        // Walk the wait-for graph from a blocked actor until an actor repeats.
        let mut path = vec![start];
        loop {
            let cur = *path.last().unwrap_or(&start);
            let next = waits_for(cur)
                .into_iter()
                .find(|h| *h != cur)
                .or_else(|| waits_for(cur).first().copied());
            match next {
                Some(n) if path.contains(&n) || n == cur => {
                    let from = path.iter().position(|p| *p == n).unwrap_or(0);
                    let cycle: Vec<usize> = path[from..].to_vec();
                    let parts: Vec<String> = cycle
                        .iter()
                        .enumerate()
                        .map(|(i, &a)| {
                            format!(
                                "{} waits for {} held by {}",
                                name(a),
                                what(a),
                                name(cycle[(i + 1) % cycle.len()])
                            )
                        })
                        .collect();
                    return format!("deadlock: {}", parts.join("; "));
                }
                Some(n) if self.actors[n].status == Status::Blocked => path.push(n),
                Some(n) => {
                    return format!(
                        "{} waits for {} held by {}, which {} without releasing it",
                        name(cur),
                        what(cur),
                        name(n),
                        if self.actors[n].status.is_over() {
                            "has ended"
                        } else {
                            "is stuck"
                        }
                    )
                }
                None => {
                    return format!(
                        "{} waits for {} and nobody can release it",
                        name(cur),
                        what(cur)
                    )
                }
            }
        }
    }

    pub(super) fn describe_order_cycle(&self, cycle: &[crate::model::locks::OrderEdge]) -> String {
        let lock = |l: u32| self.prog.locks[l as usize].0.as_str();
        let parts: Vec<String> = cycle
            .iter()
            .map(|e| {
                format!(
                    "{} took {} while holding {}",
                    self.prog.actors[e.actor].name,
                    lock(e.to),
                    lock(e.from)
                )
            })
            .collect();
        format!(
            "potential deadlock (lock-order cycle; this run did not hang): {}",
            parts.join("; ")
        )
    }

    /// What the world answered to the counting queries in a broken invariant, for its message:
    /// `connections("rw_main_master") = 2` says more than "is false".
    pub(super) fn witness(&self, e: &PExpr) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![e];
        while let Some(e) = stack.pop() {
            match e {
                PExpr::Query(q, args) => {
                    let env = ActorEnv {
                        m: self,
                        actor: None,
                    };
                    let vals: Vec<Value> = args
                        .iter()
                        .filter_map(|a| eval::eval(a, &env).ok())
                        .collect();
                    let shown = |v: &Value| match v {
                        Value::Str(s) => format!("{s:?}"),
                        v => v.to_string(),
                    };
                    let name = match q {
                        Query::Connections => format!(
                            "connections({})",
                            vals.iter().map(shown).collect::<Vec<_>>().join(", ")
                        ),
                        Query::Holders(s) => {
                            format!("holders({})", self.prog.sections[*s as usize])
                        }
                        Query::LogCount(l) => format!("count({})", self.prog.logs[*l as usize]),
                        Query::LogCountMatching(l) => format!(
                            "count({}, {})",
                            self.prog.logs[*l as usize],
                            vals.first().map(shown).unwrap_or_default()
                        ),
                        Query::LocalCount(l) => format!(
                            "count({}, {})",
                            self.prog.locals[*l as usize].0,
                            vals.first().map(shown).unwrap_or_default()
                        ),
                        _ => continue,
                    };
                    if let Ok(v) = self.query(*q, &vals) {
                        out.push(format!("{name} = {v}"));
                    }
                }
                PExpr::Neg(x) | PExpr::Not(x) | PExpr::Field(x, _) => stack.push(x),
                PExpr::Bin(_, a, b) => {
                    stack.push(b);
                    stack.push(a);
                }
                PExpr::Concat(xs) | PExpr::Call(_, xs) | PExpr::List(xs) => {
                    stack.extend(xs.iter().rev())
                }
                PExpr::Index { coll, key, .. } => {
                    stack.push(key);
                    stack.push(coll);
                }
                _ => {}
            }
        }
        out.dedup();
        out
    }
}

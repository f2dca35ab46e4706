//! Time: durations chosen digit by digit, the discrete-event clock that jumps when no actor is
//! ready, and the kill timers that fire on it.

use super::*;

impl<F: World> Machine<F> {
    /// `sleep between(lo, hi)` (or `work`): the wake-up becomes the engine's choice among the
    /// representative times; with one, the actor just sleeps.
    pub(super) fn begin_decision(
        &mut self,
        a: usize,
        busy: bool,
        lo: i64,
        hi: i64,
    ) -> Result<Done, String> {
        if lo < 0 || lo > hi {
            return Err(format!(
                "between({}, {}) is not a range of durations (the low end first, neither negative)",
                format_duration(lo),
                format_duration(hi)
            ));
        }
        let wake = self.representative_wake_ups(a, self.clock + lo, self.clock + hi);
        self.actors[a].busy = busy;
        // Until the choice is made no other choice exists, so no time passes: the status only
        // keeps the actor from being stepped as an actor.
        self.actors[a].status = Status::Sleeping(wake[wake.len() - 1]);
        if wake.len() == 1 {
            return Ok(Done::Value(Value::None));
        }
        let (label, dst) = match Self::pending_in(&self.prog, &self.actors[a]) {
            Instr::Op { label, dst, .. } => (*label, *dst),
            _ => (0, None),
        };
        let digits = usize::BITS - (wake.len() - 1).leading_zeros();
        // The text is for a trace (or a register the lowering never names): formatting it at
        // every explored nap was 1.5% of native-random's time.
        let value = if self.details.is_some() || dst.is_some() {
            Value::str(&format!("chooses among {} wake-ups", wake.len()))
        } else {
            Value::None
        };
        self.deciding = Some(Decision {
            actor: a,
            among: Among::Wake { wake, busy },
            prefix: 0,
            digits_left: digits,
            label,
        });
        Ok(Done::Value(value))
    }

    /// The wake-ups that stand for every time in `[from, to]`. Under discrete-event time what a
    /// wake-up changes is its order against the other pending deadlines (sleepers, stalls,
    /// follow-up kills): for each deadline `d` in the window, the times just before (`d - 1 ms`),
    /// at, and just after (`d + 1 ms`) it, and the window's end, which is after every deadline
    /// it holds. Both the last instant before a deadline and the first after it are kept: the
    /// first lets this actor's next steps come as early as they can, the last lets the others'
    /// come before it. The window's start is not a choice of its own: waking at `from` orders
    /// this actor against the others exactly as `d - 1` for the first deadline does (or as
    /// `to`, when the window holds none), and would let a waiter poll every `from` for as long
    /// as it waits (Mailman's 10 ms: 2,500 polls for a 25 s lease), which the step bound
    /// reports as a livelock.
    pub(super) fn representative_wake_ups(&self, a: usize, from: i64, to: i64) -> Vec<i64> {
        // A vector sorted once: a BTreeSet here cost a node allocation per explored nap.
        let mut points = vec![to];
        let sleepers = self
            .actors
            .iter()
            .enumerate()
            .filter(|(b, _)| *b != a)
            .filter_map(|(_, x)| match x.status {
                Status::Sleeping(t) => Some(t),
                _ => None,
            });
        let timers = self
            .timers
            .iter()
            .filter(|k| !self.actors[k.actor].status.is_over())
            .map(|k| k.at);
        for d in sleepers.chain(timers) {
            points.extend(
                [d - 1, d, d + 1]
                    .into_iter()
                    .filter(|p| (from..=to).contains(p)),
            );
        }
        // Latest first: a depth-first search tries long naps before short ones, so its first
        // executions are short (few polls) and it backtracks into the orders near deadlines early.
        points.sort_unstable_by(|x, y| y.cmp(x));
        points.dedup();
        points
    }

    /// One digit of the duration being chosen; the last one puts the sleeper to sleep.
    pub(super) fn decide(&mut self, c: usize) {
        self.schedule.push(c as u8);
        let broken_before = self.broken.len();
        let bit = self
            .digit_of(c)
            .expect("a runnable choice is a digit while deciding");
        let d = self.deciding.as_mut().expect("deciding");
        d.prefix = d.prefix << 1 | bit;
        d.digits_left -= 1;
        if d.digits_left > 0 {
            if self.details.is_some() {
                self.last = Some(StepOutcome::Value(Value::Int(bit as i64)));
            }
            if self.schedule.len() >= self.max_steps {
                self.record(
                    oracle::LIVELOCK,
                    format!("no end after {} steps", self.max_steps),
                );
                self.end = Some(End::Livelock);
            }
            return;
        }
        let d = self.deciding.take().expect("deciding");
        let (wake, busy) = match d.among {
            Among::Wake { wake, busy } => (wake, busy),
            Among::Answer(answers) => {
                return self.answer_chosen(d.actor, answers, d.prefix, broken_before)
            }
        };
        let chosen = wake[d.prefix];
        self.actors[d.actor].status = Status::Sleeping(chosen);
        self.actors[d.actor].busy = busy;
        if self.details.is_some() {
            self.last = Some(StepOutcome::Value(Value::Int(chosen - self.clock)));
        }
        let verb = if busy { "works" } else { "sleeps" };
        let result = if self.details.is_some() {
            format!(
                "{verb} {} (chosen among {} wake-ups)",
                format_duration(chosen - self.clock),
                wake.len()
            )
        } else {
            String::new()
        };
        self.after_step(
            broken_before,
            d.actor,
            self.clock,
            StepWhat::Op(d.label),
            result,
        );
    }

    /// When no actor is runnable: wakes the earliest sleepers (advancing the clock), or ends the
    /// execution as finished or deadlocked.
    pub(super) fn settle(&mut self) {
        // An actor in flight will come back with a result: nothing to decide until it does.
        while self.end.is_none()
            && self.deciding.is_none()
            && !self.any_actor_ready()
            && !self.actors.iter().any(|a| a.status == Status::InFlight)
        {
            let sleepers = self.actors.iter().filter_map(|a| match a.status {
                Status::Sleeping(t) => Some(t),
                _ => None,
            });
            let live = |m: &Self, k: &KillTimer| !m.actors[k.actor].status.is_over();
            let timers = self.timers.iter().filter(|k| live(self, k)).map(|k| k.at);
            match sleepers.chain(timers).min() {
                Some(t) => {
                    if t > self.clock {
                        self.clock = t;
                        self.wrote(watch::Part::Clock);
                    }
                    self.fire_timers();
                    for a in 0..self.actors.len() {
                        if matches!(self.actors[a].status, Status::Sleeping(w) if w <= self.clock) {
                            self.actors[a].status = Status::Ready;
                            self.actors[a].busy = false;
                            self.advance(a);
                        }
                    }
                    self.check(When::Always);
                }
                None => {
                    if self.actors.iter().all(|a| a.status.is_over()) {
                        self.check(When::AtEnd);
                        if let Some(cycle) = self.lock_order.potential_deadlock() {
                            let msg = self.describe_order_cycle(&cycle);
                            self.record(oracle::LOCK_ORDER, msg);
                        }
                        self.end = Some(End::Finished);
                    } else {
                        let msg = self.describe_wait_cycle();
                        self.record(oracle::DEADLOCK, msg);
                        self.end = Some(End::Deadlock);
                    }
                }
            }
        }
    }

    /// Follow-up kills whose time has come land before sleepers at the same instant wake.
    pub(super) fn fire_timers(&mut self) {
        let due: Vec<KillTimer> = self
            .timers
            .iter()
            .copied()
            .filter(|k| k.at <= self.clock)
            .collect();
        self.timers.retain(|k| k.at > self.clock);
        for k in due {
            if self.actors[k.actor].status.is_over() {
                continue;
            }
            if let Err(why) = self.fs.fault(k.actor, &FaultKind::Crash, false) {
                self.abort(format!(
                    "the follow-up SIGKILL could not be made real: {why}"
                ));
                return;
            }
            self.kill(k.actor);
            if let Some(d) = self.details.as_mut() {
                d.push(StepDetail {
                    actor: k.actor,
                    time_ms: self.clock,
                    what: StepWhat::Fault(k.fault),
                    result: "SIGKILL: still alive, so it is killed".into(),
                    broke: Vec::new(),
                });
            }
        }
    }
}

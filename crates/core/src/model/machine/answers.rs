//! Answers: a world operation with more than one allowed answer (an NFS client reading a removed file through a name it still caches), chosen by the engine digit by digit, as a duration is.

use super::*;

impl<F: World> Machine<F> {
    /// Actor `a`'s operation came back with `first` from the world, which says `other` was as
    /// allowed: the actor stays at the operation while the engine chooses, one digit per step
    /// (digit 0 the actor's own choice index: `first`; digit 1 the decision choice: `other`).
    pub(super) fn begin_answer(
        &mut self,
        a: usize,
        first: Result<Value, Errno>,
        other: Result<Value, Errno>,
    ) -> Done {
        let label = match Self::pending_in(&self.prog, &self.actors[a]) {
            Instr::Op { label, .. } => *label,
            _ => 0,
        };
        let text = format!(
            "may answer {} or {}: the engine chooses next",
            show(&first),
            show(&other)
        );
        self.deciding = Some(Decision {
            actor: a,
            among: Among::Answer(vec![first, other]),
            prefix: 0,
            digits_left: 1,
            label,
        });
        Done::Choosing(text)
    }

    /// The last digit chose answer `index` of `answers`: the operation ends with it, as if the
    /// world had given only that one.
    pub(super) fn answer_chosen(
        &mut self,
        a: usize,
        answers: Vec<Result<Value, Errno>>,
        index: usize,
        broken_before: usize,
    ) {
        let count = answers.len();
        let chosen = answers
            .into_iter()
            .nth(index)
            .expect("a digit within the answers");
        let done = match chosen {
            Ok(v) => Done::Value(v),
            Err(e) => Done::Error(e, format!("(chosen among {count} allowed answers)")),
        };
        self.conclude(a, broken_before, Ok(done));
    }

    /// The answers the operation actor `a` is parked at may still come to, while the engine is
    /// choosing among them (a forced replay lets the real system's answer decide, see
    /// [`Machine::choose_answer`]).
    pub fn answers_being_chosen(&self) -> Option<&[Result<Value, Errno>]> {
        match &self.deciding.as_ref()?.among {
            Among::Answer(answers) => Some(answers),
            Among::Wake { .. } => None,
        }
    }

    /// Chooses answer `index` of the decision being made, whatever the schedule says, digit by
    /// digit, most significant first. A forced replay uses it to follow the answer reality gave.
    pub fn choose_answer(&mut self, index: usize) {
        while let Some(d) = &self.deciding {
            let bit = (index >> (d.digits_left - 1)) & 1;
            let c = if bit == 0 {
                d.actor
            } else {
                self.decision_choice()
                    .expect("an answer is chosen by the decision choice")
            };
            self.step(c);
        }
    }
}

fn show(answer: &Result<Value, Errno>) -> String {
    match answer {
        Ok(Value::None) => "ok".into(),
        Ok(v) => v.to_string(),
        Err(e) => e.name().to_string(),
    }
}

//! Answers: a world operation with more than one allowed answer (an NFS client reading a removed file through a name it still caches), chosen by the engine digit by digit, as a duration is.

use super::*;

impl<F: World> Machine<F> {
    /// Actor `a`'s operation came back with `first` from the world, which says `others` were as
    /// allowed: the actor stays at the operation while the engine chooses, one binary digit per
    /// step, most significant first (digit 0 the actor's own choice index, digit 1 the decision
    /// choice), the number they make indexing `first` (0) then `others`. With two answers that
    /// is one digit, so tokens recorded before a third answer existed still replay.
    pub(super) fn begin_answer(
        &mut self,
        a: usize,
        first: Result<Value, Errno>,
        others: Vec<Result<Value, Errno>>,
    ) -> Done {
        let label = match Self::pending_in(&self.prog, &self.actors[a]) {
            Instr::Op { label, .. } => *label,
            _ => 0,
        };
        let mut answers = Vec::with_capacity(1 + others.len());
        answers.push(first);
        answers.extend(others);
        let shown: Vec<String> = answers.iter().map(show).collect();
        let (last, rest) = shown.split_last().expect("at least two answers");
        let text = format!(
            "may answer {} or {last}: the engine chooses next",
            rest.join(", ")
        );
        let digits = usize::BITS - (answers.len() - 1).leading_zeros();
        self.deciding = Some(Decision {
            actor: a,
            among: Among::Answer(answers),
            prefix: 0,
            digits_left: digits,
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
        self.fs.answer_taken(index);
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

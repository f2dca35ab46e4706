//! Portable schedules: the step-level record of an execution, and its compact replay token.
//!
//! A token is engine-independent: it lists which actor took each step, run-length encoded, plus
//! the scenario, variant and a fingerprint of the scenario text, and a checksum. So a token from
//! another scenario, another variant, an edited scenario, or a mangled paste is refused with a
//! message that says which.

use base64::Engine as _;
use std::fmt;

use crate::lang::fnv32;

const PREFIX: &str = "rl1_";
/// Version 1: no parameters. Version 2 adds the values of the scenario's `param`s.
const VERSION: u8 = 1;
const VERSION_WITH_PARAMS: u8 = 2;

/// A recorded schedule and what it reproduces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    pub scenario: String,
    pub variant: String,
    pub fingerprint: u32,
    /// The invariant this schedule breaks, when it was recorded for one.
    pub target: Option<String>,
    /// The actor of each step, in order.
    pub steps: Vec<u8>,
    /// The values of the scenario's `param`s the schedule was recorded with, by name.
    pub params: Vec<(String, i64)>,
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    /// Not a racelab token at all, or cut short.
    Malformed(String),
    /// The checksum does not match: a character was changed or lost in copying.
    Corrupted,
    /// A token recorded for another scenario or variant.
    WrongScenario {
        token_scenario: String,
        token_variant: String,
        scenario: String,
        variant: String,
    },
    /// The scenario's text changed since the token was recorded.
    Stale { scenario: String, variant: String },
    /// The token was recorded with other parameter values than the scenario was compiled with.
    Params { token: String, compiled: String },
    /// A token recorded through the gate, whose steps are a real program's calls, given to a
    /// replay whose steps are the scenario's operations.
    ThroughGate,
    /// The schedule asks for a step the scenario cannot take (an actor that is not runnable).
    Diverged {
        step: usize,
        actor: usize,
        why: String,
    },
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenError::Malformed(why) => write!(f, "not a racelab replay token ({why}); tokens start with `{PREFIX}` and are printed by `racelab explore`"),
            TokenError::Corrupted => write!(f, "the replay token is corrupted (checksum mismatch); copy it again in full"),
            TokenError::WrongScenario { token_scenario, token_variant, scenario, variant } => write!(
                f,
                "this token was recorded for scenario `{token_scenario}` variant `{token_variant}`, not `{scenario}` variant `{variant}`; pass --variant {token_variant} with that scenario's file"
            ),
            TokenError::Stale { scenario, variant } => write!(
                f,
                "the token was recorded for an earlier version of `{scenario}` variant `{variant}`; the scenario has changed since, so run `racelab explore` again for a fresh token"
            ),
            TokenError::Params { token, compiled } => write!(
                f,
                "the token was recorded with parameters {token}, but the scenario was compiled with {compiled}; `racelab replay` compiles it with the token's parameters"
            ),
            TokenError::ThroughGate => write!(
                f,
                "this token was recorded through the gate: its steps are the real program's system calls, not the scenario's operations; replay it with `--backend gate`"
            ),
            TokenError::Diverged { step, actor, why } => {
                write!(f, "the token does not fit this scenario: at step {step}, actor #{actor} {why}")
            }
        }
    }
}

impl std::error::Error for TokenError {}

impl Schedule {
    /// A schedule of `prog` (its scenario, variant, fingerprint and parameter values).
    pub fn of(
        prog: &racelab_lang::ir::Program,
        target: Option<String>,
        steps: Vec<u8>,
    ) -> Schedule {
        Schedule {
            scenario: prog.scenario.clone(),
            variant: prog.variant.clone(),
            fingerprint: prog.fingerprint,
            target,
            steps,
            params: prog
                .params
                .iter()
                .map(|p| (p.name.clone(), p.value))
                .collect(),
        }
    }

    /// The parameter values as `compile_with` takes them.
    pub fn param_values(&self) -> std::collections::BTreeMap<String, i64> {
        self.params.iter().cloned().collect()
    }

    /// Context switches: steps whose actor differs from the previous step's.
    pub fn switches(&self) -> u32 {
        self.steps.windows(2).filter(|w| w[0] != w[1]).count() as u32
    }

    pub fn encode(&self) -> String {
        let mut b = vec![if self.params.is_empty() {
            VERSION
        } else {
            VERSION_WITH_PARAMS
        }];
        b.extend_from_slice(&self.fingerprint.to_le_bytes());
        for s in [
            &self.scenario,
            &self.variant,
            self.target.as_deref().unwrap_or(""),
        ] {
            put_varint(&mut b, s.len() as u64);
            b.extend_from_slice(s.as_bytes());
        }
        if !self.params.is_empty() {
            put_varint(&mut b, self.params.len() as u64);
            for (name, value) in &self.params {
                put_varint(&mut b, name.len() as u64);
                b.extend_from_slice(name.as_bytes());
                // Zigzag, so that small negative values stay short too.
                put_varint(&mut b, ((value << 1) ^ (value >> 63)) as u64);
            }
        }
        let mut i = 0;
        while i < self.steps.len() {
            let a = self.steps[i];
            let run = self.steps[i..].iter().take_while(|x| **x == a).count();
            b.push(a);
            put_varint(&mut b, run as u64);
            i += run;
        }
        let sum = fnv32(0x811c_9dc5, &b);
        b.extend_from_slice(&sum.to_le_bytes());
        format!(
            "{PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
        )
    }

    pub fn decode(token: &str) -> Result<Schedule, TokenError> {
        let body = token
            .trim()
            .strip_prefix(PREFIX)
            .ok_or_else(|| TokenError::Malformed(format!("it does not start with `{PREFIX}`")))?;
        let b = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|e| TokenError::Malformed(format!("invalid characters: {e}")))?;
        if b.len() < 9 {
            return Err(TokenError::Malformed("it is too short".into()));
        }
        let (data, sum) = b.split_at(b.len() - 4);
        if fnv32(0x811c_9dc5, data).to_le_bytes() != sum {
            return Err(TokenError::Corrupted);
        }
        if data[0] != VERSION && data[0] != VERSION_WITH_PARAMS {
            return Err(TokenError::Malformed(format!(
                "token version {} is not supported by this racelab",
                data[0]
            )));
        }
        let mut r = Reader { b: data, i: 1 };
        let fingerprint = u32::from_le_bytes(
            r.take(4)?
                .try_into()
                .map_err(|_| TokenError::Malformed("short fingerprint".into()))?,
        );
        let mut strings = Vec::new();
        for _ in 0..3 {
            let n = r.varint()? as usize;
            let s = std::str::from_utf8(r.take(n)?)
                .map_err(|_| TokenError::Malformed("bad name".into()))?;
            strings.push(s.to_string());
        }
        let mut params = Vec::new();
        if data[0] == VERSION_WITH_PARAMS {
            let n = r.varint()?;
            for _ in 0..n.min(64) {
                let len = r.varint()? as usize;
                let name = std::str::from_utf8(r.take(len)?)
                    .map_err(|_| TokenError::Malformed("bad parameter name".into()))?
                    .to_string();
                let z = r.varint()?;
                params.push((name, ((z >> 1) as i64) ^ -((z & 1) as i64)));
            }
        }
        let mut steps = Vec::new();
        while r.i < data.len() {
            let a = r.take(1)?[0];
            let run = r.varint()?;
            if run == 0 || steps.len() as u64 + run > 10_000_000 {
                return Err(TokenError::Malformed("impossible run length".into()));
            }
            steps.extend(std::iter::repeat_n(a, run as usize));
        }
        let target = Some(strings.pop().unwrap_or_default()).filter(|t| !t.is_empty());
        let variant = strings.pop().unwrap_or_default();
        let scenario = strings.pop().unwrap_or_default();
        Ok(Schedule {
            scenario,
            variant,
            fingerprint,
            target,
            steps,
            params,
        })
    }

    /// Refuses a token recorded for another scenario, variant, version of the scenario, or
    /// other parameter values than `prog` was compiled with.
    pub fn check_fits(&self, prog: &racelab_lang::ir::Program) -> Result<(), TokenError> {
        let (scenario, variant) = (prog.scenario.as_str(), prog.variant.as_str());
        if self.scenario != scenario || self.variant != variant {
            return Err(TokenError::WrongScenario {
                token_scenario: self.scenario.clone(),
                token_variant: self.variant.clone(),
                scenario: scenario.to_string(),
                variant: variant.to_string(),
            });
        }
        if self.params.iter().any(|(n, _)| n.starts_with("gate.")) {
            return Err(TokenError::ThroughGate);
        }
        if self.fingerprint != prog.fingerprint {
            return Err(TokenError::Stale {
                scenario: scenario.to_string(),
                variant: variant.to_string(),
            });
        }
        let compiled: Vec<(String, i64)> = prog
            .params
            .iter()
            .map(|p| (p.name.clone(), p.value))
            .collect();
        if self.params != compiled {
            let show = |ps: &[(String, i64)]| {
                if ps.is_empty() {
                    "none".to_string()
                } else {
                    ps.iter()
                        .map(|(n, v)| format!("{n} = {v}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            };
            return Err(TokenError::Params {
                token: show(&self.params),
                compiled: show(&compiled),
            });
        }
        Ok(())
    }
}

fn put_varint(b: &mut Vec<u8>, mut n: u64) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            b.push(byte);
            return;
        }
        b.push(byte | 0x80);
    }
}

struct Reader<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], TokenError> {
        // A forged length near usize::MAX must not overflow the addition.
        let s = self
            .i
            .checked_add(n)
            .and_then(|end| self.b.get(self.i..end))
            .ok_or_else(|| TokenError::Malformed("it is cut short".into()))?;
        self.i += n;
        Ok(s)
    }
    fn varint(&mut self) -> Result<u64, TokenError> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.take(1)?[0];
            n |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(n);
            }
        }
        Err(TokenError::Malformed("a number is too long".into()))
    }
}

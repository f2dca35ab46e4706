//! Replay tokens for a spec's interleavings: encoding one against the spec's source, and
//! decoding it back into its steps.

use super::super::parse::{PermStep, Spec};
use super::TOKEN_VARIANT;
use racelab_core::schedule::{Schedule, TokenError};

fn fingerprint(source: &str) -> u32 {
    racelab_core::lang::fnv32(0x811c_9dc5, source.as_bytes())
}

/// The replay token of an interleaving of spec `name` (whose text is `source`): the steps by
/// their index among all the spec's steps, session by session.
pub fn token(name: &str, source: &str, spec: &Spec, perm: &[PermStep]) -> Result<String, String> {
    let offsets = offsets(spec);
    let steps = perm
        .iter()
        .map(|p| u8::try_from(offsets[p.session] + p.step))
        .collect::<Result<Vec<u8>, _>>()
        .map_err(|_| {
            format!("spec {name} has more than 256 steps: its interleavings have no token")
        })?;
    Ok(Schedule {
        scenario: name.to_string(),
        variant: TOKEN_VARIANT.to_string(),
        fingerprint: fingerprint(source),
        target: None,
        steps,
        params: vec![],
    }
    .encode())
}

fn offsets(spec: &Spec) -> Vec<usize> {
    let mut acc = 0;
    spec.sessions
        .iter()
        .map(|s| {
            let o = acc;
            acc += s.steps.len();
            o
        })
        .collect()
}

/// The interleaving a token names, refusing a token of another spec, of an edited spec, or
/// of a scenario.
pub fn decode(token: &str, name: &str, source: &str, spec: &Spec) -> Result<Vec<PermStep>, String> {
    let sched = Schedule::decode(token).map_err(|e| e.to_string())?;
    if sched.variant != TOKEN_VARIANT {
        return Err(format!(
            "this token was recorded for scenario `{}` variant `{}` (replay it with `racelab replay`), not for an isolation spec",
            sched.scenario, sched.variant
        ));
    }
    if sched.scenario != name {
        return Err(format!(
            "this token was recorded for isolation spec `{}`, not `{name}`; run `racelab isolation {}.spec --replay TOKEN`",
            sched.scenario, sched.scenario
        ));
    }
    if sched.fingerprint != fingerprint(source) {
        return Err(TokenError::Stale {
            scenario: name.to_string(),
            variant: TOKEN_VARIANT.to_string(),
        }
        .to_string()
        .replace(
            "run `racelab explore` again",
            "run `racelab isolation --explore` again",
        ));
    }
    let offsets = offsets(spec);
    sched
        .steps
        .iter()
        .map(|&g| {
            let g = usize::from(g);
            let session = offsets.iter().rposition(|&o| o <= g).unwrap_or(0);
            let step = g - offsets[session];
            if step >= spec.sessions[session].steps.len() {
                return Err(format!(
                    "the token names step #{g}, and spec {name} has fewer steps"
                ));
            }
            Ok(PermStep {
                session,
                step,
                blockers: vec![],
            })
        })
        .collect()
}

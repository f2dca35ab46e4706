//! Checking a parsed spec: duplicate and unknown names (with suggestions) and misplaced step
//! markers, every problem reported.

use super::grammar::Parsed;
use super::{Blocker, PermStep, Permutation, Spec};
use racelab_core::lang::diag::{Diag, Span};

/// isolationtester's check_testspec: unique step names, steps and blockers that exist, no
/// blocker on its own session. Unlike isolationtester, every problem is reported, not the first.
pub(super) fn check(parsed: Parsed) -> Result<Spec, Vec<Diag>> {
    let (setup, teardown, raw_sessions, raw_perms) = parsed;
    let mut diags = Vec::new();
    let mut by_name: std::collections::BTreeMap<String, (usize, usize, Span)> = Default::default();
    for (si, (_, _, names)) in raw_sessions.iter().enumerate() {
        for (ti, n) in names.iter().enumerate() {
            if let Some((_, _, first)) = by_name.get(&n.text) {
                diags.push(
                    Diag::new(
                        n.span,
                        format!("duplicate step name `{}`", n.text),
                        "defined again here",
                    )
                    .help(format!(
                        "step names are unique across the whole spec; the first `{}` is at byte {}",
                        n.text, first.start
                    )),
                );
            } else {
                by_name.insert(n.text.clone(), (si, ti, n.span));
            }
        }
    }
    let mut session_names: std::collections::BTreeMap<&str, Span> = Default::default();
    for (n, _, _) in &raw_sessions {
        if session_names.insert(&n.text, n.span).is_some() {
            diags.push(Diag::new(
                n.span,
                format!("duplicate session name `{}`", n.text),
                "defined again here",
            ));
        }
    }
    let mut permutations = Vec::new();
    for (steps, span) in &raw_perms {
        let mut out = Vec::new();
        for s in steps {
            let Some(&(own, step, _)) = by_name.get(&s.name.text) else {
                diags.push(
                    Diag::new(
                        s.name.span,
                        format!("undefined step `{}` in permutation", s.name.text),
                        "no step has this name",
                    )
                    .help(suggest(&s.name.text, by_name.keys())),
                );
                continue;
            };
            // A marker may name any step of this permutation, also a later one.
            let mut blockers = Vec::new();
            for (other, count, bspan) in &s.blockers {
                let Some(other) = other else {
                    blockers.push(Blocker::Once);
                    continue;
                };
                let in_perm = steps.iter().any(|x| x.name.text == other.text);
                match by_name.get(&other.text) {
                    Some(&(session, step, _)) if in_perm => {
                        if session == own {
                            diags.push(Diag::new(*bspan, format!("permutation step `{}` cannot block on its own session", s.name.text), format!("`{}` is a step of the same session", other.text)).help("a step of one session always completes before the session's next step starts"));
                        }
                        blockers.push(match count {
                            Some(count) => Blocker::Notices {
                                session,
                                step,
                                count: *count,
                            },
                            None => Blocker::Step { session, step },
                        });
                    }
                    Some(_) => diags.push(
                        Diag::new(
                            other.span,
                            format!("blocking step `{}` is not in this permutation", other.text),
                            "not listed in this permutation",
                        )
                        .help("a marker can only wait for a step of the same permutation"),
                    ),
                    None => diags.push(
                        Diag::new(
                            other.span,
                            format!(
                                "undefined blocking step `{}` referenced in permutation step `{}`",
                                other.text, s.name.text
                            ),
                            "no step has this name",
                        )
                        .help(suggest(&other.text, by_name.keys())),
                    ),
                }
            }
            out.push(PermStep {
                session: own,
                step,
                blockers,
            });
        }
        permutations.push(Permutation {
            steps: out,
            span: *span,
        });
    }
    if !diags.is_empty() {
        return Err(diags);
    }
    let sessions = raw_sessions.into_iter().map(|(_, s, _)| s).collect();
    Ok(Spec {
        setup,
        teardown,
        sessions,
        permutations,
    })
}

/// "did you mean" for a misspelt step name: the closest by edit distance, when close.
fn suggest<'a>(name: &str, known: impl Iterator<Item = &'a String>) -> String {
    let best = known.map(|k| (edit_distance(name, k), k)).min();
    match best {
        Some((d, k)) if d <= 2.max(name.len() / 3) => format!("did you mean `{k}`?"),
        _ => "steps are declared inside sessions: `step NAME { SQL }`".into(),
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            cur.push(
                (prev[j] + usize::from(ca != *cb))
                    .min(prev[j + 1] + 1)
                    .min(cur[j] + 1),
            );
        }
        prev = cur;
    }
    prev[b.len()]
}

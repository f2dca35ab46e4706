//! Every model token a scenario documents (`racelab replay scenarios/X.race --variant V rl1_…`
//! in its comments) still fits that variant and breaks what it was recorded for: a scenario or
//! model change that invalidates one fails here, not in a reader's terminal.

use std::sync::Arc;

use racelab_core::schedule::Schedule;

/// `(file stem, variant, token)` of every documented model token (gate tokens, which name a
/// `--backend`, are the gate tests' and the NFS part's).
fn documented_model_tokens() -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(scenarios::dir())
        .expect("the scenarios directory")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "race"))
        .collect();
    files.sort();
    for path in files {
        let text = std::fs::read_to_string(&path).expect("a readable scenario");
        for line in text.lines() {
            let Some(at) = line.find("racelab replay scenarios/") else {
                continue;
            };
            let words: Vec<&str> = line[at..].split_whitespace().collect();
            let [_, _, file, "--variant", variant, token] = words[..] else {
                continue;
            };
            let stem = file
                .trim_start_matches("scenarios/")
                .trim_end_matches(".race");
            out.push((stem.to_string(), variant.to_string(), token.to_string()));
        }
    }
    out
}

#[test]
fn every_documented_model_token_replays_and_breaks_its_invariant() {
    let tokens = documented_model_tokens();
    assert!(
        tokens.len() >= 10,
        "expected the lock scenarios' documented tokens, found {}",
        tokens.len()
    );
    let mut stale = Vec::new();
    for (stem, variant, token) in &tokens {
        let scenario = crate::load(stem);
        let prog = scenario
            .variants
            .iter()
            .find(|p| &p.variant == variant)
            .unwrap_or_else(|| {
                panic!("{stem}.race documents a token for a missing variant {variant}")
            });
        let prog = Arc::new(prog.clone());
        let sched = Schedule::decode(token).expect("a well-formed token");
        match racelab_core::replay::replay(&prog, &sched) {
            Ok(r) if r.reproduced(&sched) => {}
            Ok(_) => stale.push(format!(
                "{stem} {variant}: replays but does not break {:?}",
                sched.target
            )),
            Err(e) => stale.push(format!("{stem} {variant}: {e}")),
        }
    }
    assert!(
        stale.is_empty(),
        "stale documented tokens (run `racelab explore` for fresh ones):\n{}",
        stale.join("\n")
    );
}

//! The README's worked example is generated, not pasted: each trace block in README.md between
//! `<!-- trace: SCENARIO VARIANT INVARIANT -->` and `<!-- end trace -->` must be exactly what
//! this test renders (native-random's finding for that invariant with its default seed, which
//! is deterministic, shrunk, replayed, and printed as
//! `racelab replay` prints it), so the story cannot drift from the code. After a change to the
//! scenario or the engines, `RACELAB_BLESS=1 cargo test -p scenarios --test it readme` rewrites
//! the blocks; review the diff of README.md like any other.

use std::sync::Arc;
use std::time::Duration;

use racelab_core::explore::{explore, Budget, EngineConfig, EngineKind};
use reports::table::{render_trace, Style};

use super::load;

const BEGIN: &str = "<!-- trace: ";
const END: &str = "<!-- end trace -->";

/// The block for one marker: the replay command with its token, then the step table.
fn render(stem: &str, variant: &str, invariant: &str) -> String {
    let prog = Arc::new(
        load(stem)
            .variant(variant)
            .unwrap_or_else(|| panic!("{stem} has no variant {variant}"))
            .clone(),
    );
    // A schedule budget, not a time budget: the same schedules on any machine.
    let cfg = EngineConfig::new(
        EngineKind::NativeRandom,
        Budget::new(100_000, Duration::from_secs(3600)),
    );
    let ex = explore(&prog, &cfg).expect("native-random explores every scenario");
    let found = ex
        .findings
        .iter()
        .find(|f| f.invariant == invariant)
        .unwrap_or_else(|| panic!("native-random did not find {invariant} in {stem}/{variant}"));
    let shrunk = racelab_core::replay::shrink(&prog, &found.schedule);
    let replayed = racelab_core::replay::replay(&prog, &shrunk).expect("our own token fits");
    assert!(
        replayed.reproduced(&shrunk),
        "the shrunk schedule must still break {invariant}"
    );
    format!(
        "```text\n$ racelab replay scenarios/{stem}.race --variant {variant} {}\n{}```\n",
        shrunk.encode(),
        render_trace(&replayed.trace, Style::plain())
    )
}

#[test]
fn the_readme_traces_are_what_racelab_prints() {
    let path = scenarios::dir().join("../README.md");
    let readme = std::fs::read_to_string(&path).expect("README.md");
    let mut out = String::new();
    let mut rest = readme.as_str();
    let mut blocks = 0;
    while let Some(at) = rest.find(BEGIN) {
        let header_end = at + rest[at..].find("-->").expect("a marker ends with -->") + 3;
        let marker = rest[at + BEGIN.len()..header_end - 3].trim();
        let words: Vec<&str> = marker.split_whitespace().collect();
        let [stem, variant, invariant] = words[..] else {
            panic!("a trace marker names SCENARIO VARIANT INVARIANT, not `{marker}`")
        };
        let end = header_end
            + rest[header_end..]
                .find(END)
                .expect("every trace marker has its end marker");
        out.push_str(&rest[..header_end]);
        out.push('\n');
        out.push_str(&render(stem, variant, invariant));
        rest = &rest[end..];
        blocks += 1;
    }
    out.push_str(rest);
    assert!(blocks > 0, "README.md has no generated trace blocks");
    if std::env::var_os("RACELAB_BLESS").is_some() {
        std::fs::write(&path, &out).expect("README.md is writable");
        return;
    }
    if out != readme {
        let diff: Vec<String> = readme
            .lines()
            .zip(out.lines())
            .enumerate()
            .filter(|(_, (a, b))| a != b)
            .take(5)
            .map(|(i, (a, b))| format!("line {}:\n  README: {a}\n  now:    {b}", i + 1))
            .collect();
        panic!("README.md's traces differ from what racelab prints now (RACELAB_BLESS=1 rewrites them):\n{}", diff.join("\n"));
    }
}

//! Sharding: `racelab suite --shard 1/2` and `--shard 2/2`, merged with `racelab merge`, give the
//! same results as one unsharded run; bad shard arguments and incomplete merges are refused.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

const RACELAB: &str = env!("CARGO_BIN_EXE_racelab");

fn scenario(stem: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../scenarios")
        .join(format!("{stem}.race"))
}

/// Runs `racelab ARGS` and returns its exit code and stderr.
fn racelab(args: &[&str]) -> (i32, String) {
    let out = Command::new(RACELAB)
        .args(args)
        .output()
        .expect("racelab runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The suite on three small scenarios with the exhaustive engines only, so every run is
/// deterministic (no time budget is reached), written to `out`.
fn suite(out: &Path, shard: Option<&str>) {
    let files: Vec<String> = [
        "patchwork-person",
        "django-import-deadlock",
        "launchpad-readonly-switch",
    ]
    .iter()
    .map(|s| scenario(s).display().to_string())
    .collect();
    let mut args: Vec<&str> = vec!["suite"];
    args.extend(files.iter().map(String::as_str));
    let out_s = out.display().to_string();
    args.extend([
        "--quick",
        "--engines",
        "native-dfs,loom,shuttle-dfs",
        "--out",
        &out_s,
    ]);
    if let Some(s) = shard {
        args.extend(["--shard", s]);
    }
    let (code, err) = racelab(&args);
    assert_eq!(code, 0, "racelab {args:?} failed: {err}");
}

type Row = (
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    bool,
    bool,
    u64,
);

fn rows(summary: &Path) -> BTreeSet<Row> {
    let s: reports::Summary =
        serde_json::from_str(&std::fs::read_to_string(summary).expect("summary written"))
            .expect("summary parses");
    s.results
        .into_iter()
        .map(|r| {
            let outcome = r.outcome_label().to_string();
            // An exhaustive search covers the same schedules however it is split; a search that
            // ran out of time covers as many as the machine allowed then (a loaded 2-core CI box
            // ran shuttle-dfs to 13,515 of its 20,000 in one run and all of them in the other).
            let schedules = if r.exhaustive { r.schedules } else { 0 };
            (
                r.scenario,
                r.variant,
                r.engine,
                r.backend,
                outcome,
                r.invariant,
                r.met,
                r.exhaustive,
                schedules,
            )
        })
        .collect()
}

#[test]
fn two_shards_merged_equal_one_unsharded_run() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (full, one, two, merged) = (
        dir.path().join("full"),
        dir.path().join("1"),
        dir.path().join("2"),
        dir.path().join("merged"),
    );
    suite(&full, None);
    suite(&one, Some("1/2"));
    suite(&two, Some("2/2"));
    let (a, b) = (
        rows(&one.join("summary.json")),
        rows(&two.join("summary.json")),
    );
    assert!(!a.is_empty() && !b.is_empty(), "a shard ran nothing");
    let (code, err) = racelab(&[
        "merge",
        &one.join("summary.json").display().to_string(),
        &two.join("summary.json").display().to_string(),
        "--out",
        &merged.display().to_string(),
    ]);
    assert_eq!(code, 0, "{err}");
    let whole = rows(&full.join("summary.json"));
    assert_eq!(rows(&merged.join("summary.json")), whole);
    // The shards split the variants: no variant ran in both.
    let variants = |r: &BTreeSet<Row>| {
        r.iter()
            .map(|x| (x.0.clone(), x.1.clone()))
            .collect::<BTreeSet<_>>()
    };
    assert!(variants(&a).is_disjoint(&variants(&b)));
    assert!(merged.join("summary.html").exists() && merged.join("junit.xml").exists());
}

#[test]
fn bad_shards_and_incomplete_merges_are_refused() {
    for bad in ["0/2", "3/2", "x", "1/0", "2"] {
        let (code, err) = racelab(&[
            "suite",
            &scenario("patchwork-person").display().to_string(),
            "--shard",
            bad,
        ]);
        assert_eq!(code, 2, "--shard {bad}: {err}");
        assert!(err.contains("expected I/N"), "--shard {bad}: {err}");
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let one = dir.path().join("1");
    let (code, err) = racelab(&[
        "suite",
        &scenario("patchwork-person").display().to_string(),
        "--quick",
        "--engines",
        "native-dfs",
        "--shard",
        "1/2",
        "--out",
        &one.display().to_string(),
    ]);
    assert_eq!(code, 0, "{err}");
    let s1 = one.join("summary.json").display().to_string();
    let (code, err) = racelab(&[
        "merge",
        &s1,
        "--out",
        &dir.path().join("m").display().to_string(),
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("missing shard 2/2"), "{err}");
    let (code, err) = racelab(&[
        "merge",
        &s1,
        &s1,
        "--out",
        &dir.path().join("m").display().to_string(),
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("both shard 1/2"), "{err}");
}

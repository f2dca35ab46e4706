//! A synthetic run the size of a CI run and then some (3,000 rows over 200 variants), written
//! with `write_all`: the summaries stay small enough to open (sizes, not times), and every
//! row's trace is still a file that its row links to.

use std::collections::HashMap;
use std::path::Path;

use reports::{
    trace_key, write_all, Coverage, Finding, InvariantRate, Outcome, Rate, RunResult, Summary,
    Trace, TraceStep, Verdict,
};

use crate::fixtures;

const VARIANTS: usize = 200;
const MODEL_ENGINES: [&str; 7] = [
    "shuttle-random",
    "shuttle-pct",
    "shuttle-dfs",
    "loom",
    "native-random",
    "native-pct",
    "native-dfs",
];
const FILESYSTEMS: [&str; 6] = [
    "fs:tempdir",
    "fs:tmpfs",
    "fs:ext4",
    "fs:xfs",
    "fs:btrfs",
    "fs:overlay",
];

/// A lock race of `steps` steps between three actors; `salt` makes it distinct.
fn trace(scenario: &str, variant: &str, steps: usize, salt: usize) -> Trace {
    let steps = (0..steps)
        .map(|i| TraceStep {
            actor: Some(i % 3),
            time_ms: 1_700_000_000_000 + (i * 7 + salt) as i64,
            operation: format!("link(tmp{}, LOCKFILE)", i % 5),
            result: if i % 4 == 0 { "EEXIST" } else { "ok" }.to_string(),
            broke: if i + 1 == steps {
                vec!["mutual_exclusion".to_string()]
            } else {
                Vec::new()
            },
            line: 10 + i as u32,
        })
        .collect();
    Trace {
        scenario: scenario.to_string(),
        variant: variant.to_string(),
        actors: vec!["holder1".into(), "holder2".into(), "breaker".into()],
        steps,
        verdict: "mutual_exclusion broke: holders(section) <= 1".to_string(),
    }
}

fn violation(r: &mut RunResult, t: Trace) {
    r.expected = Verdict::Violation;
    r.expected_invariants = vec!["mutual_exclusion".into(), "no_lost_increment".into()];
    r.outcome = Outcome::Violation;
    r.invariant = Some("mutual_exclusion".into());
    r.trace = Some(t);
}

fn rate(hits: u64, runs: u64) -> Rate {
    Rate {
        hits,
        runs,
        low: hits as f64 / runs as f64 * 0.8,
        high: (hits as f64 / runs as f64 * 1.1).min(1.0),
    }
}

/// One variant's rows: seven model engines (each its own trace), a model replay, forced replays
/// and stress runs on `filesystems` (sharing the shortest trace), one skip; every 50th variant
/// also has a run that missed its expectation and one that errored.
fn variant_rows(v: usize, filesystems: &[&str]) -> Vec<RunResult> {
    let scenario = format!("lock{}", v / 4);
    let variant = format!("v{v}");
    let mut rows = Vec::new();
    let assumptions = vec![
        "durations: fixed as written: every sleep, work and stall takes exactly its stated virtual time".to_string(),
        format!("faults: at most {} per execution, landing at any step boundary", v % 3),
        "atomicity: `stat` is a path lookup then an attribute read; every other world operation is one indivisible step".to_string(),
    ];
    for (e, engine) in MODEL_ENGINES.iter().enumerate() {
        let mut r = fixtures::run(&scenario, &variant, engine, "model");
        violation(&mut r, trace(&scenario, &variant, 30 + 3 * e, e));
        r.coverage = Some(Coverage::Budget);
        r.covers = Some("not refuted by 20000 schedules".into());
        r.bound = Some("20000 schedules or 20s".into());
        r.assumptions = assumptions.clone();
        r.schedules = 1000 + e as u64;
        r.first_failure_after = Some(17);
        let token = format!("rl1:{scenario}:{variant}:{}", "AbCdEfGh".repeat(12));
        r.replay = Some(token.clone());
        r.findings = ["mutual_exclusion", "no_lost_increment"]
            .iter()
            .map(|inv| Finding {
                invariant: inv.to_string(),
                replay: token.clone(),
                original: String::new(),
                after: 17,
                switches: 4,
                shrunk_switches: 2,
            })
            .collect();
        rows.push(r);
    }
    let shortest = trace(&scenario, &variant, 30, 0);
    let mut replay = fixtures::run(&scenario, &variant, "replay", "model");
    violation(&mut replay, shortest.clone());
    rows.push(replay);
    for (f, fs) in filesystems.iter().enumerate() {
        let mut forced = fixtures::run(&scenario, &variant, "forced-replay", fs);
        violation(&mut forced, shortest.clone());
        forced.rate = Some(rate(20, 20));
        rows.push(forced);
        if f % 2 == 0 {
            let mut stress = fixtures::run(&scenario, &variant, "stress", fs);
            violation(&mut stress, trace(&scenario, &variant, 40, 100 + f));
            let r = rate(30 + f as u64, 50);
            stress.rates = ["mutual_exclusion", "no_lost_increment"]
                .iter()
                .map(|inv| InvariantRate {
                    invariant: inv.to_string(),
                    hits: r.hits,
                    runs: r.runs,
                    low: r.low,
                    high: r.high,
                })
                .collect();
            stress.rate = Some(r);
            rows.push(stress);
        }
    }
    let mut skipped = fixtures::run(&scenario, &variant, "forced-replay", "fs:nfs3");
    skipped.outcome = Outcome::Skipped;
    skipped.met = false;
    skipped.reason = Some(
        "the variant models two NFS clients' caches; this target is nfs3 with 1 mount(s)".into(),
    );
    rows.push(skipped);
    if v.is_multiple_of(50) {
        let mut missed = fixtures::run(&scenario, &variant, "stress-chaos", "fs:ext4");
        missed.expected = Verdict::Violation;
        missed.met = false;
        missed.rate = Some(rate(0, 50));
        rows.push(missed);
        let mut errored = fixtures::run(&scenario, &variant, "replay", "db:postgres");
        errored.outcome = Outcome::Error;
        errored.met = false;
        errored.reason = Some("connection refused: is the server running?".into());
        rows.push(errored);
    }
    rows
}

fn run_of(filesystems: &[&str]) -> Summary {
    Summary {
        ok: false,
        results: (0..VARIANTS)
            .flat_map(|v| variant_rows(v, filesystems))
            .collect(),
        shard: None,
    }
}

/// How often each trace key is linked in `text` as `{before}KEY{after}`.
fn links(text: &str, before: &str, after: &str) -> HashMap<String, usize> {
    let mut out: HashMap<String, usize> = HashMap::new();
    for (i, _) in text.match_indices(before) {
        let rest = &text[i + before.len()..];
        if let Some(end) = rest.find(after) {
            *out.entry(rest[..end].to_string()).or_default() += 1;
        }
    }
    out
}

fn size(dir: &Path, name: &str) -> usize {
    std::fs::metadata(dir.join(name)).unwrap().len() as usize
}

#[test]
fn a_run_of_3000_rows_keeps_the_summaries_small_and_every_trace_reachable() {
    let summary = run_of(&FILESYSTEMS[..4]);
    let rows = summary.results.len();
    assert!((3000..3100).contains(&rows), "{rows} rows");
    let tmp = tempfile::tempdir().unwrap();
    write_all(&summary, tmp.path()).unwrap();
    let dir = tmp.path();

    let md = size(dir, "summary.md");
    let html = size(dir, "summary.html");
    assert!(md < 300_000, "summary.md is {md} bytes for {rows} rows");
    // Headroom: well under the 5 MB a browser opens comfortably, also for the page of every run.
    assert!(
        html < 1_000_000,
        "summary.html is {html} bytes for {rows} rows"
    );
    let runs_html = size(dir, "runs.html");
    eprintln!(
        "{rows} rows: summary.md {md} B ({} B/row), summary.html {html} B, runs.html {runs_html} B, runs.md {} B",
        md / rows,
        size(dir, "runs.md")
    );
    assert!(runs_html < 5_000_000, "runs.html is {runs_html} bytes");

    // Every row's trace is a file, linked from its row's details in runs.md and runs.html, and
    // each distinct trace is written once.
    let runs_md = std::fs::read_to_string(dir.join("runs.md")).unwrap();
    let runs_page = std::fs::read_to_string(dir.join("runs.html")).unwrap();
    let mut rows_per_trace: HashMap<String, usize> = HashMap::new();
    for r in &summary.results {
        if let Some(t) = &r.trace {
            *rows_per_trace.entry(trace_key(t)).or_default() += 1;
        }
    }
    assert!(
        rows_per_trace.len() > 1000,
        "{} traces",
        rows_per_trace.len()
    );
    let md_links = links(&runs_md, "](traces/", ".txt)");
    let html_links = links(&runs_page, "href=\"traces/", ".html\"");
    for (key, rows) in &rows_per_trace {
        for ext in ["txt", "html"] {
            assert!(
                dir.join(format!("traces/{key}.{ext}")).is_file(),
                "{key}.{ext}"
            );
        }
        assert_eq!(
            md_links.get(key),
            Some(rows),
            "runs.md links {key} once per row that recorded it"
        );
        assert_eq!(
            html_links.get(key),
            Some(rows),
            "runs.html links {key} once per row"
        );
    }
    let files = std::fs::read_dir(dir.join("traces")).unwrap().count();
    assert_eq!(
        files,
        2 * rows_per_trace.len(),
        "one .txt and one .html per distinct trace"
    );

    // The summaries show every run that needs attention in full, with its trace or reason.
    let summary_md = std::fs::read_to_string(dir.join("summary.md")).unwrap();
    let summary_page = std::fs::read_to_string(dir.join("summary.html")).unwrap();
    for r in summary
        .results
        .iter()
        .filter(|r| r.outcome != Outcome::Skipped && !r.is_met())
    {
        let name = format!("{}/{}/{}/{}", r.scenario, r.variant, r.engine, r.backend);
        assert!(
            summary_md.contains(&format!("### {name}\n")),
            "{name} not in summary.md"
        );
        assert!(
            summary_page.contains(&format!("<h3>{name}</h3>")),
            "{name} not in summary.html"
        );
    }
    assert!(summary_md.contains("error: connection refused: is the server running?"));
    // Every variant's shortest trace is linked from the overview.
    for v in 0..VARIANTS {
        let key = trace_key(&trace(&format!("lock{}", v / 4), &format!("v{v}"), 30, 0));
        assert!(
            summary_md.contains(&format!("[30 steps](traces/{key}.txt), 9 distinct")),
            "v{v}"
        );
    }
}

/// The summary grows with variants and backends, not with runs: three times the filesystems
/// per variant (and so some 1.8 times the runs) leave `summary.md` within 1.3 times its size.
#[test]
fn summary_md_grows_sublinearly_in_runs() {
    let extra: Vec<String> = FILESYSTEMS.iter().map(|f| format!("{f}-2")).collect();
    let mut tripled: Vec<&str> = FILESYSTEMS.to_vec();
    tripled.extend(extra.iter().map(String::as_str));
    let small = run_of(&FILESYSTEMS[..4]);
    let large = run_of(&tripled);
    let md = |s: &Summary| reports::markdown::render_summary(s).len();
    let (small_md, large_md) = (md(&small), md(&large));
    let runs = large.results.len() as f64 / small.results.len() as f64;
    assert!(runs > 1.7, "{runs}");
    assert!(
        (large_md as f64) < 1.3 * small_md as f64,
        "{small_md} bytes for {} runs, {large_md} for {}",
        small.results.len(),
        large.results.len()
    );
}

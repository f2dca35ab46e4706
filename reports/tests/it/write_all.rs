//! Writing every report to a directory.

use reports::{markdown, write_all, Divergence, Summary};

use crate::fixtures;

#[test]
fn writes_every_format_and_json_round_trips() {
    let mut summary = fixtures::failing_summary();
    // Exercise the optional fields the other fixtures leave empty.
    summary.results[3].divergence = Some(Divergence {
        step: 4,
        actor: "qrunner1".to_string(),
        operation: "link(tmp, LOCKFILE)".to_string(),
        model: "EEXIST".to_string(),
        real: "ok".to_string(),
    });
    summary.results[3].faults = Some("1 crash".to_string());
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("out").join("nested");

    let paths = write_all(&summary, &dir).unwrap();

    let names: Vec<&str> = paths
        .iter()
        .map(|p| p.file_name().unwrap().to_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "summary.json",
            "summary.md",
            "summary.html",
            "junit.xml",
            "runs.md",
            "runs.html"
        ]
    );
    assert!(paths.iter().all(|p| p.starts_with(&dir) && p.is_file()));

    let json = std::fs::read_to_string(&paths[0]).unwrap();
    let back: Summary = serde_json::from_str(&json).unwrap();
    assert_eq!(back, summary);

    let md = std::fs::read_to_string(&paths[1]).unwrap();
    assert_eq!(md, markdown::render_summary(&summary));
    assert!(md.contains(
        "- divergence at step 4: `qrunner1` ran `link(tmp, LOCKFILE)`; the model returned `EEXIST`, the real backend `ok`"
    ));
}

#[test]
fn json_keeps_the_contract_field_names() {
    let tmp = tempfile::tempdir().unwrap();
    let paths = write_all(&fixtures::passing_summary(), tmp.path()).unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&paths[0]).unwrap()).unwrap();
    let first = &json["results"][0];
    assert_eq!(json["ok"], true);
    assert_eq!(first["expected"], "violation");
    assert_eq!(first["first_failure_after"], 17);
    assert_eq!(first["trace"]["steps"][6]["broke"][0], "mutual_exclusion");
    assert_eq!(first["coverage"], "budget");
    assert_eq!(first["assumptions"][0], "faults: none declared");
    // Optional facts are omitted, not written as null.
    assert!(first.get("rate").is_none());
}

/// The same interleaving in several rows (found by several engines, replayed on several
/// filesystems) is written once beside the reports, as `traces/KEY.txt` and `traces/KEY.html`;
/// the Markdown and the HTML link every row to it instead of inlining it, and summary.json
/// keeps every row's trace.
#[test]
fn each_distinct_trace_is_written_once_and_the_reports_link_to_it() {
    let mut summary = fixtures::failing_summary();
    let lead = summary.results[0].clone();
    for engine in ["native-dfs", "loom", "forced-replay"] {
        summary.results.push(reports::RunResult {
            engine: engine.to_string(),
            ..lead.clone()
        });
    }
    assert_eq!(
        summary.results.iter().filter(|r| r.trace.is_some()).count(),
        5,
        "four rows share one trace, one has its own"
    );
    let tmp = tempfile::tempdir().unwrap();
    // A file of the user's in the traces directory is left alone; a stale trace file is not.
    std::fs::create_dir_all(tmp.path().join("traces")).unwrap();
    std::fs::write(tmp.path().join("traces/notes.txt"), "mine").unwrap();
    std::fs::write(tmp.path().join("traces/t0123456789abcdef.txt"), "stale").unwrap();
    let paths = write_all(&summary, tmp.path()).unwrap();

    let back: Summary = serde_json::from_str(&std::fs::read_to_string(&paths[0]).unwrap()).unwrap();
    assert_eq!(back, summary, "summary.json keeps every row's trace");

    let key = reports::trace_key(lead.trace.as_ref().unwrap());
    let mut files: Vec<String> = std::fs::read_dir(tmp.path().join("traces"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files.len(), 5, "{files:?}");
    assert!(
        files.contains(&"notes.txt".to_string())
            && !files.contains(&"t0123456789abcdef.txt".to_string()),
        "{files:?}"
    );
    let text = std::fs::read_to_string(tmp.path().join(format!("traces/{key}.txt"))).unwrap();
    assert!(
        text.contains("link(tmp, LOCKFILE) -> EEXIST")
            && text.contains("verdict: mutual_exclusion broke"),
        "{text}"
    );
    let page = std::fs::read_to_string(tmp.path().join(format!("traces/{key}.html"))).unwrap();
    assert_eq!(
        page.matches("<g class=\"row ").count(),
        lead.trace.as_ref().unwrap().steps.len(),
        "one box per step"
    );
    assert!(
        page.contains("link(tmp, LOCKFILE) → EEXIST")
            && page.contains(&format!("<a href=\"{key}.txt\">")),
        "the diagram's boxes name each step, and the page links the table: {page}"
    );

    let md = std::fs::read_to_string(&paths[4]).unwrap();
    assert_eq!(
        md.matches(&format!("[traces/{key}.txt](traces/{key}.txt)"))
            .count(),
        4,
        "{md}"
    );
    assert!(!md.contains("-> EEXIST"), "no trace is inlined in runs.md");
    assert!(
        !std::fs::read_to_string(&paths[1])
            .unwrap()
            .contains("-> EEXIST"),
        "no trace is inlined in summary.md"
    );
    let html = std::fs::read_to_string(&paths[5]).unwrap();
    assert_eq!(
        html.matches(&format!("href=\"traces/{key}.html\"")).count(),
        4,
        "runs.html links every row to its trace"
    );
    assert!(
        !html.contains("<svg class=\"sequence\""),
        "no diagram is inlined in the page"
    );
}

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
        ["summary.json", "summary.md", "summary.html", "junit.xml"]
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
    // Optional facts are omitted, not written as null.
    assert!(first.get("rate").is_none());
}

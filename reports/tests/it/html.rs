//! The HTML report.

use reports::html::{escape, render_html, render_runs_html};

use crate::fixtures;

#[test]
fn page_is_self_contained() {
    let page = render_html(&fixtures::failing_summary());
    assert!(page.starts_with("<!DOCTYPE html>\n"));
    assert!(page.contains("<style>"));
    for external in ["<script", "<link", "src=", "http://", "https://"] {
        assert!(!page.contains(external), "page refers to {external}");
    }
    assert!(page.ends_with("</html>\n"));
}

#[test]
fn page_has_the_same_content_as_the_markdown() {
    let page = render_html(&fixtures::failing_summary());
    assert!(page.contains("<strong class=\"status-failed\">FAILED</strong> (6 runs: 2 met, 2 not met, 1 skipped, 1 error)"));
    // The summary page: the matrix links each cell to its run on runs.html; the runs that need
    // attention (two missed, one error) are here in full; skips are grouped by reason.
    assert!(page.contains("<a href=\"runs.html#run-0\">✓ violation (mutual_exclusion)</a>"));
    assert!(page.contains("<h2>Not met and errors</h2>"));
    for i in [3, 4, 5] {
        assert!(
            page.contains(&format!("<section id=\"run-{i}\">")),
            "run-{i}"
        );
    }
    assert!(
        !page.contains("<section id=\"run-0\">"),
        "met runs' details are on runs.html"
    );
    assert!(
        page.contains("<li><strong>1 skipped</strong>: <span class=\"reason\">no NFS mount found")
    );
    assert!(
        page.contains("error: connection refused"),
        "the error's reason"
    );

    // runs.html: a row per run, each with details linked, and the details themselves.
    let runs = render_runs_html(&fixtures::failing_summary());
    assert_eq!(runs.matches("<tr class=").count(), 6);
    assert_eq!(runs.matches("<tr class=\"not-met\">").count(), 2);
    assert!(runs.contains("<h2>Skipped and errors</h2>"));
    assert!(runs.contains("<a href=\"#run-0\">violation (mutual_exclusion)</a>"));
    assert!(runs.contains("<section id=\"run-0\">"));
    assert!(runs.contains("<pre class=\"token\">rl1:lockfile:naive:AAECAwQFBgc</pre>"));
    // The interleaving is a page of its own (`write_all` writes it), linked from the run.
    assert!(
        runs.contains("<a href=\"traces/t"),
        "no link to the run's interleaving"
    );
    assert!(runs.contains("rate: 0/500 runs (0.00%, 95% CI 0.00%-0.76%)"));
    assert!(
        runs.contains("env: filesystem <code>ext4</code>, mount options <code>rw,relatime</code>")
    );
}

#[test]
fn every_string_is_escaped() {
    let mut s = fixtures::failing_summary();
    s.results[0].variant = "<img onerror=\"x\">".to_string();
    let page = render_html(&s);
    assert!(!page.contains("<img"));
    assert!(page.contains("&lt;img onerror=&quot;x&quot;&gt;"));
    assert!(page.contains("&lt;is the server running?&gt;"));
    let runs = render_runs_html(&s);
    assert!(!runs.contains("<img") && runs.contains("&lt;img onerror=&quot;x&quot;&gt;"));
    assert_eq!(escape("a&b<'c'>"), "a&amp;b&lt;&#39;c&#39;&gt;");
}

/// The sequence diagram of a failing interleaving: lanes, one box per step, the fault and
/// blocked steps marked, the verdict at the end.
#[test]
fn the_sequence_diagram_has_a_lane_per_actor_and_marks_faults_blocks_and_the_break() {
    let mut trace = fixtures::lockfile_trace();
    trace.steps[1].operation = "FAULT crash_holder: crash".into();
    trace.steps[2].result = "blocked: import_lock is held by thread2".into();
    let svg = reports::sequence::render_sequence(&trace);
    assert!(svg.starts_with("<svg class=\"sequence\""));
    for actor in &trace.actors {
        assert!(
            svg.contains(&format!(">{actor}</text>")),
            "no lane header for {actor}"
        );
    }
    assert_eq!(svg.matches("<g class=\"row ").count(), trace.steps.len());
    assert!(svg.contains("class=\"fault\""), "the fault is not marked");
    assert!(
        svg.contains("class=\"blocked\""),
        "the blocked step is not marked"
    );
    let broke = trace.steps.iter().filter(|s| !s.broke.is_empty()).count();
    assert_eq!(svg.matches("class=\"broke\"").count(), broke);
    assert!(
        svg.contains(&reports::html::escape(&trace.verdict)),
        "the verdict is not at the end"
    );
}

/// Self-contained: nothing on the page would be fetched (no src, no external href, no url()).
#[test]
fn the_page_references_no_external_resource() {
    let charts = vec![(
        "throughput".to_string(),
        "<?xml version=\"1.0\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\"><rect/></svg>"
            .to_string(),
    )];
    let page = reports::html::render_html_with_charts(&fixtures::failing_summary(), &charts);
    assert!(
        page.contains("<figure class=\"chart\">"),
        "the lock chart is not inlined"
    );
    assert!(!page.contains("<?xml"), "an XML prolog was inlined");
    for pattern in ["src=", "url(", "@import", "<link", "<script"] {
        assert!(!page.contains(pattern), "the page has `{pattern}`");
    }
    // Links stay on the page or go to the pages written beside it.
    for (i, _) in page.match_indices("href=\"") {
        assert!(
            page[i + 6..].starts_with('#')
                || page[i + 6..].starts_with("traces/t")
                || page[i + 6..].starts_with("runs.html"),
            "an external link: {}",
            &page[i..(i + 60).min(page.len())]
        );
    }
}

//! The HTML report.

use reports::html::{escape, render_html};

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
    assert_eq!(page.matches("<tr class=").count(), 6);
    assert_eq!(page.matches("<tr class=\"not-met\">").count(), 2);
    assert!(page.contains("<h2>Skipped and errors</h2>"));
    // Runs with details link to their section.
    assert!(page.contains("<a href=\"#run-0\">violation (mutual_exclusion)</a>"));
    assert!(page.contains("<section id=\"run-0\">"));
    assert!(page.contains("<pre class=\"token\">rl1:lockfile:naive:AAECAwQFBgc</pre>"));
    assert!(page.contains("link(tmp, LOCKFILE) -&gt; EEXIST"));
    assert!(page.contains("rate: 0/500 runs (0.00%, 95% CI 0.00%-0.76%)"));
    assert!(
        page.contains("env: filesystem <code>ext4</code>, mount options <code>rw,relatime</code>")
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
    assert_eq!(escape("a&b<'c'>"), "a&amp;b&lt;&#39;c&#39;&gt;");
}

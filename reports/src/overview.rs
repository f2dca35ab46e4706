//! The compact views `summary.md` and `summary.html` open with, computed once for both formats:
//! one row per scenario × variant with a tally per backend group, reproduction rates pivoted
//! to one row per run kind and invariants with a column per backend, skipped runs grouped by
//! reason, and model assumptions grouped by identical sets.
//!
//! Why: a row per run (and a line per invariant per run) made a CI run's `summary.md` 644 KB
//! for 2,166 rows; these views grow with variants and backends, not with runs. Every run stays
//! in full in `runs.md` / `runs.html`.

use crate::model::{Outcome, RunResult, Trace};

/// The backend group a run's column in the overview: `model` (every model engine and model
/// replay), `nfs` (real NFS mounts), `fs` (other real filesystems), `db`, `gate`, or the
/// backend's own prefix for anything newer.
pub fn backend_group(backend: &str) -> &str {
    let kind = backend.split(':').next().unwrap_or(backend);
    match kind {
        "fs" if backend.starts_with("fs:nfs") => "nfs",
        other => other,
    }
}

/// How many runs of a cell met, missed, were skipped or errored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub met: usize,
    pub not_met: usize,
    pub skipped: usize,
    pub errors: usize,
}

impl Counts {
    fn add(&mut self, r: &RunResult) {
        match r.outcome {
            Outcome::Skipped => self.skipped += 1,
            Outcome::Error => self.errors += 1,
            _ if r.is_met() => self.met += 1,
            _ => self.not_met += 1,
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == Counts::default()
    }

    /// `7✓ 1✗ 2– 1!`, leaving out zeros; empty for an empty cell.
    pub fn compact(&self) -> String {
        let parts = [
            (self.met, "✓"),
            (self.not_met, "✗"),
            (self.skipped, "–"),
            (self.errors, "!"),
        ];
        parts
            .iter()
            .filter(|(n, _)| *n > 0)
            .map(|(n, mark)| format!("{n}{mark}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// One scenario × variant: its expectation, a tally per backend group (in [`Overview::groups`]
/// order) and the shortest trace any of its runs recorded.
pub struct VariantRow<'a> {
    pub scenario: &'a str,
    pub variant: &'a str,
    pub expected: String,
    pub cells: Vec<Counts>,
    pub shortest: Option<&'a Trace>,
    /// How many distinct traces the variant's runs recorded (every one is linked from runs.md).
    pub traces: usize,
}

/// The per-variant overview.
pub struct Overview<'a> {
    pub groups: Vec<&'a str>,
    /// Each group's backends (in [`Overview::groups`] order), as first seen.
    pub members: Vec<Vec<&'a str>>,
    pub rows: Vec<VariantRow<'a>>,
}

/// Rows in the order the runs first show each variant; groups in the order first seen.
pub fn overview(results: &[RunResult]) -> Overview<'_> {
    let mut groups: Vec<&str> = Vec::new();
    for r in results {
        let g = backend_group(&r.backend);
        if !groups.contains(&g) {
            groups.push(g);
        }
    }
    // Model first, then real filesystems, NFS, databases, the gate: from the model outwards.
    let rank = |g: &str| {
        ["model", "fs", "nfs", "db", "gate"]
            .iter()
            .position(|k| *k == g)
            .unwrap_or(5)
    };
    groups.sort_by_key(|g| rank(g));
    let mut members: Vec<Vec<&str>> = vec![Vec::new(); groups.len()];
    for r in results {
        let g = groups
            .iter()
            .position(|g| *g == backend_group(&r.backend))
            .expect("every group was collected above");
        if !members[g].contains(&r.backend.as_str()) {
            members[g].push(&r.backend);
        }
    }
    let mut index: std::collections::HashMap<(&str, &str), usize> = Default::default();
    let mut rows: Vec<VariantRow> = Vec::new();
    let mut keys: Vec<std::collections::HashSet<String>> = Vec::new();
    for r in results {
        let at = *index
            .entry((r.scenario.as_str(), r.variant.as_str()))
            .or_insert_with(|| {
                rows.push(VariantRow {
                    scenario: &r.scenario,
                    variant: &r.variant,
                    expected: r.expected_label(),
                    cells: vec![Counts::default(); groups.len()],
                    shortest: None,
                    traces: 0,
                });
                keys.push(Default::default());
                rows.len() - 1
            });
        let row = &mut rows[at];
        let g = groups
            .iter()
            .position(|g| *g == backend_group(&r.backend))
            .expect("every group was collected above");
        row.cells[g].add(r);
        if let Some(t) = &r.trace {
            if keys[at].insert(crate::trace_key(t)) {
                row.traces += 1;
            }
            if row.shortest.is_none_or(|s| t.steps.len() < s.steps.len()) {
                row.shortest = Some(t);
            }
        }
    }
    Overview {
        groups,
        members,
        rows,
    }
}

/// One rate: hits of runs with its 95% Wilson interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateCell {
    pub hits: u64,
    pub runs: u64,
    pub low: f64,
    pub high: f64,
}

impl RateCell {
    pub fn percent(&self) -> f64 {
        if self.runs == 0 {
            0.0
        } else {
            self.hits as f64 * 100.0 / self.runs as f64
        }
    }
}

/// One row of the pivoted rates: a scenario × variant × run kind, the invariants that share
/// exactly these rates, and a cell per backend (in [`RatePivot::backends`] order).
pub struct RateRow<'a> {
    pub scenario: &'a str,
    pub variant: &'a str,
    pub engine: &'a str,
    pub invariants: Vec<&'a str>,
    pub cells: Vec<Option<RateCell>>,
}

pub struct RatePivot<'a> {
    pub backends: Vec<&'a str>,
    pub rows: Vec<RateRow<'a>>,
}

/// Every stress or forced-replay rate, pivoted; invariants whose rates agree on every backend
/// share a row (a lock that lets two holders in usually loses the increment too).
pub fn rate_pivot(results: &[RunResult]) -> RatePivot<'_> {
    let mut backends: Vec<&str> = Vec::new();
    // (scenario, variant, engine) -> invariant -> backend -> cell, in first-seen order.
    type Cells<'a> = Vec<(&'a str, RateCell)>;
    type Key<'a> = (&'a str, &'a str, &'a str);
    let mut keyed: Vec<(Key, Vec<(&str, Cells)>)> = Vec::new();
    for r in results {
        let lines: Vec<(&str, RateCell)> = if !r.rates.is_empty() {
            r.rates
                .iter()
                .map(|x| {
                    let cell = RateCell {
                        hits: x.hits,
                        runs: x.runs,
                        low: x.low,
                        high: x.high,
                    };
                    (x.invariant.as_str(), cell)
                })
                .collect()
        } else if let Some(x) = &r.rate {
            let cell = RateCell {
                hits: x.hits,
                runs: x.runs,
                low: x.low,
                high: x.high,
            };
            vec![(r.invariant.as_deref().unwrap_or(""), cell)]
        } else {
            continue;
        };
        if !backends.contains(&r.backend.as_str()) {
            backends.push(&r.backend);
        }
        let key = (r.scenario.as_str(), r.variant.as_str(), r.engine.as_str());
        let at = match keyed.iter().position(|(k, _)| *k == key) {
            Some(at) => at,
            None => {
                keyed.push((key, Vec::new()));
                keyed.len() - 1
            }
        };
        let invariants = &mut keyed[at].1;
        for (inv, cell) in lines {
            match invariants.iter_mut().find(|(i, _)| *i == inv) {
                Some((_, cells)) => cells.push((&r.backend, cell)),
                None => invariants.push((inv, vec![(&r.backend, cell)])),
            }
        }
    }
    let mut rows: Vec<RateRow> = Vec::new();
    for ((scenario, variant, engine), invariants) in keyed {
        let first = rows.len();
        for (inv, found) in invariants {
            let cells: Vec<Option<RateCell>> = backends
                .iter()
                .map(|b| found.iter().find(|(fb, _)| fb == b).map(|(_, c)| *c))
                .collect();
            match rows[first..].iter_mut().find(|row| row.cells == cells) {
                Some(row) => row.invariants.push(inv),
                None => rows.push(RateRow {
                    scenario,
                    variant,
                    engine,
                    invariants: vec![inv],
                    cells,
                }),
            }
        }
    }
    RatePivot { backends, rows }
}

/// Skipped runs with one reason: `scenario/variant/engine` and the backends it was skipped on.
pub struct SkipGroup<'a> {
    pub reason: &'a str,
    pub runs: Vec<(String, Vec<&'a str>)>,
}

/// Skipped runs grouped by their exact reason, in first-seen order.
pub fn skipped_by_reason(results: &[RunResult]) -> Vec<SkipGroup<'_>> {
    let mut groups: Vec<SkipGroup> = Vec::new();
    for r in results.iter().filter(|r| r.outcome == Outcome::Skipped) {
        let reason = r.reason.as_deref().unwrap_or("no reason given");
        let at = match groups.iter().position(|g| g.reason == reason) {
            Some(at) => at,
            None => {
                groups.push(SkipGroup {
                    reason,
                    runs: Vec::new(),
                });
                groups.len() - 1
            }
        };
        let name = format!("{}/{}/{}", r.scenario, r.variant, r.engine);
        let runs = &mut groups[at].runs;
        match runs.iter_mut().find(|(n, _)| *n == name) {
            Some((_, backends)) => backends.push(&r.backend),
            None => runs.push((name, vec![&r.backend])),
        }
    }
    groups
}

/// Variants (`scenario/variant`) that state exactly the same model assumptions, with them;
/// in first-seen order. Most variants of a CI run share a handful of sets.
pub fn assumption_sets(results: &[RunResult]) -> Vec<(Vec<String>, &[String])> {
    let mut sets: Vec<(Vec<String>, &[String])> = Vec::new();
    for (name, list) in crate::facts::assumptions_by_variant(results) {
        match sets.iter_mut().find(|(_, l)| *l == list) {
            Some((names, _)) => names.push(name),
            None => sets.push((vec![name], list)),
        }
    }
    sets
}

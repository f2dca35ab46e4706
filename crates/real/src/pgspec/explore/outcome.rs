//! What one interleaving came to (results, errors, final rows), how it differs from the
//! outcomes the expected file lists, and its class: listed, new, or failed to run.

use std::collections::{BTreeMap, BTreeSet};

use super::super::run::{Recorded, TableRows, Trace};

/// What a run changed and what failed (see the module's documentation).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Outcome {
    /// (step, SQLSTATE) of each error raised.
    pub errors: BTreeSet<(String, String)>,
    /// The tables at the end, or why they could not be read.
    pub tables: Result<Vec<TableRows>, String>,
}

/// PostgreSQL's names for the SQLSTATEs isolation specs run into.
fn condition(code: &str) -> &'static str {
    match code {
        "40P01" => "deadlock_detected",
        "40001" => "serialization_failure",
        "55P03" => "lock_not_available",
        "23505" => "unique_violation",
        "23503" => "foreign_key_violation",
        "57014" => "query_canceled",
        "25P02" => "in_failed_sql_transaction",
        "42P01" => "undefined_table",
        "22012" => "division_by_zero",
        "P0001" => "raise_exception",
        _ => "",
    }
}

fn describe_error((step, code): &(String, String)) -> String {
    match condition(code) {
        "" => format!("{step} {code}"),
        name => format!("{step} {code} {name}"),
    }
}

impl Outcome {
    pub(super) fn of(trace: &Trace) -> Outcome {
        Outcome {
            errors: trace.errors.iter().cloned().collect(),
            tables: trace
                .tables
                .clone()
                .unwrap_or_else(|| Err("the run ended before the tables were read".into())),
        }
    }

    /// One line: the errors, then each table's rows.
    pub fn describe(&self) -> String {
        let errors = if self.errors.is_empty() {
            "no errors".to_string()
        } else {
            let e: Vec<String> = self.errors.iter().map(describe_error).collect();
            format!("errors {}", e.join(", "))
        };
        let tables = match &self.tables {
            Ok(t) => t
                .iter()
                .map(|t| format!("{} {}", t.table, show_rows(&t.rows)))
                .collect::<Vec<_>>()
                .join("; "),
            Err(e) => format!("tables unreadable: {e}"),
        };
        format!("{errors}; {tables}")
    }

    /// How far apart two outcomes are: errors and rows in one and not the other.
    pub(super) fn distance(&self, other: &Outcome) -> usize {
        let errors = self.errors.symmetric_difference(&other.errors).count();
        let rows = match (&self.tables, &other.tables) {
            (Ok(a), Ok(b)) => {
                let flat = |t: &[TableRows]| -> BTreeSet<(String, String)> {
                    t.iter()
                        .flat_map(|t| t.rows.iter().map(|r| (t.table.clone(), r.clone())))
                        .collect()
                };
                flat(a).symmetric_difference(&flat(b)).count()
            }
            (a, b) => usize::from(a != b) * 100,
        };
        errors + rows
    }

    /// What this outcome has that `listed` has not, and the reverse.
    pub fn differences(&self, listed: &Outcome) -> Vec<String> {
        let mut out = Vec::new();
        for e in self.errors.difference(&listed.errors) {
            out.push(format!("error {} (no such error there)", describe_error(e)));
        }
        for e in listed.errors.difference(&self.errors) {
            out.push(format!("no error {} (there is)", describe_error(e)));
        }
        match (&self.tables, &listed.tables) {
            (Ok(a), Ok(b)) => {
                let by_name = |t: &[TableRows]| -> BTreeMap<String, Vec<String>> {
                    t.iter()
                        .map(|t| (t.table.clone(), t.rows.clone()))
                        .collect()
                };
                let (a, b) = (by_name(a), by_name(b));
                for (name, rows) in &a {
                    match b.get(name) {
                        Some(other) if other == rows => {}
                        Some(other) => out.push(format!(
                            "table {name} {} (there: {})",
                            show_rows(rows),
                            show_rows(other)
                        )),
                        None => out.push(format!("table {name} exists (not there)")),
                    }
                }
                for name in b.keys().filter(|n| !a.contains_key(*n)) {
                    out.push(format!("no table {name} (there is)"));
                }
            }
            (a, b) if a != b => out.push(format!("tables {:?} (there: {:?})", a, b)),
            _ => {}
        }
        out
    }
}

fn show_rows(rows: &[String]) -> String {
    const SHOWN: usize = 12;
    if rows.len() <= SHOWN {
        format!("[{}]", rows.join(" "))
    } else {
        format!(
            "[{} … {} more, {} rows]",
            rows[..SHOWN].join(" "),
            rows.len() - SHOWN,
            rows.len()
        )
    }
}

/// How an unlisted interleaving's run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Class {
    /// Its outcome is one a listed permutation produced.
    Seen,
    /// Its outcome is new (a finding when a second run confirms it).
    New(Outcome),
    /// A step waited on a session with no step before it; cancelled at once.
    Stalled(Vec<String>),
    /// A step ran past the step timeout and was cancelled.
    TimedOut(Vec<String>),
    /// The run failed (isolationtester would have exited).
    Failed(String),
}

/// How an unlisted interleaving's run ends, given the listed permutations' outcomes.
pub fn classify(rec: &Recorded, listed: &BTreeSet<Outcome>) -> Class {
    if let Some(e) = &rec.fatal {
        return Class::Failed(e.clone());
    }
    if !rec.trace.stalled.is_empty() {
        return Class::Stalled(rec.trace.stalled.clone());
    }
    if !rec.trace.timed_out.is_empty() {
        return Class::TimedOut(rec.trace.timed_out.clone());
    }
    let o = Outcome::of(&rec.trace);
    if listed.contains(&o) {
        Class::Seen
    } else {
        Class::New(o)
    }
}

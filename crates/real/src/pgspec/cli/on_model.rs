//! `racelab isolation --backend model`: the specs on the model database instead of a server.

use std::time::{Duration, Instant};

use super::super::suite;
use super::super::suite::Case;
use super::summary::{merge_model_into_summary, Totals};
use super::{print_report, Args, Explored, BAD_INPUT, INFRASTRUCTURE};
use racelab_core::error::ErrorKind;

/// `--backend model`: every spec on the model database; a verdict per spec, the agreement
/// figures, and (with `--summary`) one `model` row per spec and one for the suite. Exit code 0
/// when every spec the model runs agrees with PostgreSQL's expected output, 1 otherwise.
pub(super) fn main_model(args: &Args, cases: &[Case]) -> u8 {
    if args.isolationtester != "none" {
        eprintln!("error: --isolationtester runs PostgreSQL's tester on a server; it has nothing to compare with --backend model");
        return BAD_INPUT;
    }
    println!(
        "the model database (PostgreSQL flavour), {} specs",
        cases.len()
    );
    let started = Instant::now();
    let mut ours = Vec::new();
    for c in cases {
        let r = suite::run_case_on_model(
            c,
            &args.results.join("model"),
            Duration::from_secs(args.step_timeout.max(1)),
        );
        print_report(&r, args.full_diffs);
        ours.push(r);
    }
    let totals = Totals::new(&ours, &[], started.elapsed().as_secs_f64(), 0.0);
    println!("\n{}", totals.describe_model());
    let mut explored = None;
    if args.explore > 0 {
        use super::super::explore_cli as x;
        let started = Instant::now();
        println!(
            "\nunlisted interleavings on the model (at most {} per spec, seed {}):",
            args.explore, args.seed
        );
        let mut all = Vec::new();
        for c in cases {
            match x::on_model(c, args.explore_settings()) {
                Ok(ex) => {
                    x::print("model", &ex);
                    all.push(ex);
                }
                Err(e) if e.kind() == ErrorKind::Refused => {}
                Err(e) => println!("{:<44} model        {e}", c.name),
            }
        }
        let line = x::totals(&all, None);
        println!("\n{line}");
        explored = Some(Explored {
            server: Vec::new(),
            model: all,
            line,
            seconds: started.elapsed().as_secs_f64(),
        });
    }
    if let Some(path) = &args.summary {
        if let Err(e) = merge_model_into_summary(path, &ours, &totals, explored.as_ref()) {
            eprintln!("error: {e}");
            return INFRASTRUCTURE;
        }
    }
    u8::from(totals.differs + totals.errors > 0)
}

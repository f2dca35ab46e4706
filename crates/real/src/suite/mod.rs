//! The suite: every scenario × variant × engine, turned into `summary.json` result rows.
//!
//! Planning (`jobs`, here), running the model's portfolio (`portfolio.rs`), judging an
//! exploration (`model_row.rs`), the real filesystems and databases (`real_fs.rs`,
//! `real_db.rs`), the model rows written for other runs (`findings.rs`); every row starts from
//! `row::blank_row`, the one place its fields are written out.

mod findings;
mod model_row;
mod portfolio;
mod real_db;
mod real_fs;
mod row;

use std::sync::Arc;
use std::time::Duration;

use reports::{Outcome, RunResult};

use racelab_core::error::exit;
use racelab_core::explore::{Budget, EngineConfig, EngineKind};
use racelab_core::lang::Scenario;
use racelab_lang::ir::{Expected, Program};

pub use findings::{model_rows_from, write_model_rows, MODEL_ROWS_FILE};
pub use model_row::result_row;
pub use portfolio::{is_proof, judge_portfolio, proved_row, run};
pub use real_db::{db_rows, db_stress_row, model_schedules, RealDbTarget};
pub use real_fs::{real_rows, runs_on_real_fs, stress_row, RealConfig, RealFsTarget};
pub(crate) use row::base_row;

/// How hard the suite explores.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct SuiteConfig {
    /// Per engine run.
    pub budget: Budget,
    /// Per engine run other than native-dfs on a variant expected to hold. They run only when
    /// native-dfs did not prove it (see [`run`]), and can then only end "not refuted" however
    /// long they search: quick mode gives them a sample, not a search that must find something.
    pub holds_budget: Budget,
    /// Random and PCT seed.
    pub seed: u64,
    pub preemption_bound: usize,
}

impl SuiteConfig {
    /// `--quick`: CI's smoke budget. Measured on CI's last run before the holds budget: the
    /// unproved variants expected to hold cost 340 of the model's 550 row-seconds, six engines
    /// spending 5-8 s each on a verdict none of them can change.
    pub fn quick() -> SuiteConfig {
        SuiteConfig {
            budget: Budget::new(20_000, Duration::from_secs(8)),
            holds_budget: Budget::new(5_000, Duration::from_secs(3)),
            seed: 0x5eed,
            preemption_bound: 2,
        }
    }
    pub fn full() -> SuiteConfig {
        let budget = Budget::new(200_000, Duration::from_secs(60));
        SuiteConfig {
            budget,
            holds_budget: budget,
            seed: 0x5eed,
            preemption_bound: 3,
        }
    }
}

/// One unit of work: a variant under an engine.
pub struct Job {
    pub scenario: String,
    pub prog: Arc<Program>,
    pub config: EngineConfig,
}

/// Every variant of every scenario under every engine, with the budget its expectation earns.
pub fn jobs(
    scenarios: &[(String, Scenario)],
    cfg: &SuiteConfig,
    engines: &[EngineKind],
) -> Vec<Job> {
    let mut out = Vec::new();
    for (stem, sc) in scenarios {
        for prog in &sc.variants {
            for &kind in engines {
                // One thread per search: the suite already runs variants on every core, and
                // measured so (quick suite, 2 cores) a parallel proof search got fewer states
                // in its time than a sequential one.
                let expected_to_hold = matches!(prog.expected, Some(Expected::Holds));
                let budget = if expected_to_hold && kind != EngineKind::NativeDfs {
                    cfg.holds_budget
                } else {
                    cfg.budget
                };
                let config = EngineConfig::new(kind, budget)
                    .seed(cfg.seed)
                    .preemption_bound(cfg.preemption_bound)
                    .workers(1);
                out.push(Job {
                    scenario: stem.clone(),
                    prog: Arc::new(prog.clone()),
                    config,
                });
            }
        }
    }
    out
}

/// Exit code of a run of results ([`racelab_core::error::exit`]): 0 all met, 1 an expectation failed, 3 an infrastructure error.
pub fn exit_code(results: &[RunResult]) -> i32 {
    if results.iter().any(|r| r.outcome == Outcome::Error) {
        return exit::INFRASTRUCTURE.into();
    }
    // Nothing ran at all: that is not a pass.
    if results.iter().all(|r| r.outcome == Outcome::Skipped) {
        return exit::INFRASTRUCTURE.into();
    }
    if results
        .iter()
        .any(|r| r.outcome != Outcome::Skipped && !r.met)
    {
        return exit::EXPECTATION_FAILED.into();
    }
    0
}

//! The public API for a project's own tests: load a scenario, judge every variant against its `expect` line, explore one with a chosen engine, replay a token.
//!
//! This is the thin layer over the rest of the crate that a `cargo test` calls, as loom's
//! `model` and shuttle's `check_random` are called: the same portfolio, judgement and replay
//! as `racelab suite`, `racelab explore` and `racelab replay`, with no files written and no
//! process started (the model engines only; the real backends stay in the CLI).
//!
//! ```no_run
//! // tests/races.rs of a project with its scenarios in races/
//! #[test]
//! fn every_lock_race_meets_its_expectation() {
//!     racelab::check("races/lockfile.race");
//! }
//!
//! #[test]
//! fn the_patched_lock_is_proved() {
//!     let scenario = racelab::Scenario::load("races/lockfile.race").unwrap();
//!     let verdict = scenario.explore("patched", racelab::Engine::dfs()).unwrap();
//!     assert!(verdict.proved(), "{verdict}");
//! }
//! ```
//!
//! Architecture invariant: this module only composes what the CLI composes (compile, the
//! suite's portfolio and judgement, replay); a verdict here and a row of `summary.json` for the
//! same variant, engine, budget and seed are the same verdict.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use reports::{Outcome, RunResult};

use racelab_core::explore::{EngineConfig, EngineKind};
use racelab_core::schedule::{Schedule, TokenError};
use racelab_lang::ir::Program;

/// Why a scenario could not be loaded, explored or replayed. Its `Display` says what and where
/// (a scenario error is rendered as `racelab check` renders it: file:line:col with a caret).
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The scenario file could not be read.
    Read { path: String, why: String },
    /// The scenario does not compile; `rendered` is every diagnostic with its source line.
    Scenario { rendered: String },
    /// No variant of that name.
    UnknownVariant { name: String, variants: Vec<String> },
    /// A token that is not this variant's, or is mangled.
    Token(TokenError),
    /// The engine cannot run this variant (loom beyond its actor limit) or a parameter draw
    /// failed to compile.
    Refused(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Read { path, why } => write!(f, "cannot read {path}: {why}"),
            Error::Scenario { rendered } => write!(f, "{rendered}"),
            Error::UnknownVariant { name, variants } => write!(
                f,
                "no variant `{name}`; the variants are {}",
                variants.join(", ")
            ),
            Error::Token(e) => write!(f, "{e}"),
            Error::Refused(why) => write!(f, "{why}"),
        }
    }
}

impl std::error::Error for Error {}

/// Draws of a variant's `param`s per exploration, as `racelab explore`'s default.
const PARAM_DRAWS: u32 = 8;

/// One engine with its budget, for [`Scenario::explore`].
#[derive(Debug, Clone, Copy)]
pub struct Engine {
    config: EngineConfig,
}

impl Engine {
    /// `native-dfs`: every reachable state once; a `holds` within its budget is a proof.
    pub fn dfs() -> Engine {
        Engine::of(EngineKind::NativeDfs)
    }
    /// `native-random`: uniformly random schedules.
    pub fn random() -> Engine {
        Engine::of(EngineKind::NativeRandom)
    }
    /// `native-pct`: probabilistic concurrency testing, few preemptions each.
    pub fn pct() -> Engine {
        Engine::of(EngineKind::NativePct)
    }
    /// Any engine `racelab explore --engine` accepts, by name.
    pub fn named(name: &str) -> Option<Engine> {
        EngineKind::from_name(name).map(Engine::of)
    }
    fn of(kind: EngineKind) -> Engine {
        let quick = racelab_real::suite::SuiteConfig::quick();
        Engine {
            config: EngineConfig::new(kind, quick.budget).seed(quick.seed),
        }
    }
    /// At most this many schedules.
    pub fn schedules(mut self, n: u64) -> Engine {
        self.config.budget.schedules = n;
        self
    }
    /// At most this much wall time.
    pub fn time(mut self, limit: Duration) -> Engine {
        self.config.budget.time = limit;
        self
    }
    /// The seed of the random and PCT engines.
    pub fn seed(self, seed: u64) -> Engine {
        Engine {
            config: self.config.seed(seed),
        }
    }
    /// The engine's name, as rows and tokens show it.
    pub fn name(&self) -> &'static str {
        self.config.kind.name()
    }
}

/// A compiled scenario: its variants, ready to explore.
pub struct Scenario {
    stem: String,
    file: String,
    source: String,
    compiled: racelab_core::lang::Scenario,
}

impl Scenario {
    /// Reads and compiles a `.race` file (its imports relative to it).
    pub fn load(path: impl AsRef<Path>) -> Result<Scenario, Error> {
        let path = path.as_ref();
        let source = std::fs::read_to_string(path).map_err(|e| Error::Read {
            path: path.display().to_string(),
            why: e.to_string(),
        })?;
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        Scenario::compile(stem, path.display().to_string(), source)
    }

    /// Compiles scenario text; `name` stands for its file in diagnostics and tokens.
    pub fn parse(name: &str, text: &str) -> Result<Scenario, Error> {
        let stem = Path::new(name)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| name.to_string());
        Scenario::compile(stem, name.to_string(), text.to_string())
    }

    fn compile(stem: String, file: String, source: String) -> Result<Scenario, Error> {
        let compiled =
            racelab_core::lang::compile(&file, &source).map_err(|e| Error::Scenario {
                rendered: racelab_core::lang::render_plain(&e),
            })?;
        Ok(Scenario {
            stem,
            file,
            source,
            compiled,
        })
    }

    /// The scenario's name (its `scenario NAME`).
    pub fn name(&self) -> &str {
        &self.compiled.name
    }

    /// The variants' names, in the file's order.
    pub fn variants(&self) -> Vec<&str> {
        self.compiled.variant_names()
    }

    fn program(&self, variant: &str) -> Result<Arc<Program>, Error> {
        self.compiled
            .variant(variant)
            .map(|p| Arc::new(p.clone()))
            .ok_or_else(|| Error::UnknownVariant {
                name: variant.to_string(),
                variants: self.variants().iter().map(|v| v.to_string()).collect(),
            })
    }

    /// Explores one variant with one engine and judges the result against the variant's
    /// `expect` line. A variant with `param`s is explored over draws of their values, a
    /// failure shrunk to the smallest values, as `racelab explore` does.
    pub fn explore(&self, variant: &str, engine: Engine) -> Result<Verdict, Error> {
        let prog = self.program(variant)?;
        let row = if prog.params.is_empty() {
            let outcome = racelab_core::explore::explore(&prog, &engine.config);
            racelab_real::suite::result_row(&self.stem, &prog, &engine.config, outcome)
        } else {
            let search = racelab_core::params::search(
                &self.file,
                &self.source,
                variant,
                &prog.params,
                &engine.config,
                PARAM_DRAWS,
                engine.config.seed,
            )
            .map_err(Error::Refused)?;
            let (prog, outcome) = (search.result.prog, search.result.outcome);
            racelab_real::suite::result_row(&self.stem, &prog, &engine.config, outcome)
        };
        if row.outcome == Outcome::Error {
            return Err(Error::Refused(row.reason.unwrap_or_default()));
        }
        Ok(Verdict::of(row, &self.file))
    }

    /// Every variant through the suite's model portfolio (native-dfs first: a proof settles
    /// the variant; else native-pct and native-random with the quick budgets), judged against
    /// its `expect` line. One verdict per variant: a failing engine's when any engine missed
    /// the expectation, else the most informative one (a proof, or the first finding).
    pub fn check(&self) -> Vec<Verdict> {
        let kinds = [
            EngineKind::NativeDfs,
            EngineKind::NativePct,
            EngineKind::NativeRandom,
        ];
        let jobs = racelab_real::suite::jobs(
            &[(self.stem.clone(), self.compiled.clone())],
            &racelab_real::suite::SuiteConfig::quick(),
            &kinds,
        );
        let rows = racelab_real::suite::run(&jobs, &|_| {});
        self.variants()
            .iter()
            .filter_map(|v| {
                let mine: Vec<&RunResult> = rows.iter().filter(|r| r.variant == *v).collect();
                let pick = mine
                    .iter()
                    .find(|r| !r.met)
                    .or_else(|| mine.iter().find(|r| r.exhaustive))
                    .or_else(|| mine.iter().find(|r| r.replay.is_some()))
                    .or(mine.first())?;
                Some(Verdict::of((*pick).clone(), &self.file))
            })
            .collect()
    }

    /// Replays a token on the model: the step table it gives, and whether its invariant broke.
    pub fn replay(&self, variant: &str, token: &str) -> Result<Replay, Error> {
        let sched = Schedule::decode(token.trim()).map_err(Error::Token)?;
        let prog = if sched.params.is_empty() {
            self.program(variant)?
        } else {
            let values = sched.params.iter().cloned().collect();
            let sc = racelab_core::lang::compile_with(&self.file, &self.source, &values).map_err(
                |e| Error::Scenario {
                    rendered: racelab_core::lang::render_plain(&e),
                },
            )?;
            Arc::new(
                sc.variant(variant)
                    .cloned()
                    .ok_or_else(|| Error::UnknownVariant {
                        name: variant.to_string(),
                        variants: self.variants().iter().map(|v| v.to_string()).collect(),
                    })?,
            )
        };
        let run = racelab_core::replay::replay(&prog, &sched).map_err(Error::Token)?;
        Ok(Replay {
            reproduced: run.reproduced(&sched),
            broken: run.broken.iter().map(|b| b.invariant.clone()).collect(),
            table: reports::table::render_trace(&run.trace, reports::table::Style::plain()),
        })
    }
}

/// What one exploration showed, judged against the variant's `expect` line.
#[derive(Debug, Clone)]
pub struct Verdict {
    row: RunResult,
    /// The scenario's file, for the replay commands.
    file: String,
}

impl Verdict {
    fn of(row: RunResult, file: &str) -> Verdict {
        Verdict {
            row,
            file: file.to_string(),
        }
    }
    pub fn variant(&self) -> &str {
        &self.row.variant
    }
    pub fn engine(&self) -> &str {
        &self.row.engine
    }
    /// Violation, deadlock or holds.
    pub fn outcome(&self) -> Outcome {
        self.row.outcome
    }
    /// The result matches the variant's `expect` line.
    pub fn met(&self) -> bool {
        self.row.met
    }
    /// `holds` over every reachable state (native-dfs within its budget), not a sample.
    pub fn proved(&self) -> bool {
        self.row.outcome == Outcome::Holds && self.row.exhaustive
    }
    /// The invariants that broke, each with its shrunk replay token.
    pub fn findings(&self) -> Vec<(&str, &str)> {
        self.row
            .findings
            .iter()
            .map(|f| (f.invariant.as_str(), f.replay.as_str()))
            .collect()
    }
    /// The lead finding's step table, plain text, as `racelab explore` prints it.
    pub fn table(&self) -> Option<String> {
        self.row
            .trace
            .as_ref()
            .map(|t| reports::table::render_trace(t, reports::table::Style::plain()))
    }
    /// The whole row, as `summary.json` would hold it.
    pub fn row(&self) -> &RunResult {
        &self.row
    }
    /// Panics unless the result meets the expectation, with the result line, the step table
    /// and the replay token: the message a failing `cargo test` should show.
    #[track_caller]
    pub fn assert_met(&self) {
        assert!(self.met(), "{self}");
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", reports::table::render_result_line(&self.row))?;
        for (invariant, token) in self.findings() {
            writeln!(
                f,
                "  {invariant}: racelab replay {} --variant {} {token}",
                self.file, self.row.variant
            )?;
        }
        if let Some(table) = self.table() {
            write!(f, "\n{table}")?;
        }
        Ok(())
    }
}

/// What replaying a token on the model showed.
#[derive(Debug, Clone)]
pub struct Replay {
    /// The token's invariant broke (any invariant, for a token recorded without one).
    pub reproduced: bool,
    /// Every invariant that broke, in order.
    pub broken: Vec<String>,
    /// The step table, plain text.
    pub table: String,
}

/// Loads `path` and checks every variant against its `expect` line with the model portfolio,
/// panicking with each unmet variant's result, step table and replay token: the one line a
/// project's test needs. A scenario that does not compile panics with its diagnostics.
#[track_caller]
pub fn check(path: impl AsRef<Path>) {
    let scenario = Scenario::load(path).unwrap_or_else(|e| panic!("{e}"));
    let unmet: Vec<String> = scenario
        .check()
        .iter()
        .filter(|v| !v.met())
        .map(|v| v.to_string())
        .collect();
    assert!(
        unmet.is_empty(),
        "{} of {} variants of {} miss their expectation:\n{}",
        unmet.len(),
        scenario.variants().len(),
        scenario.name(),
        unmet.join("\n")
    );
}

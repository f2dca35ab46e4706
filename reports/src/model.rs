//! The result types: plain serde data shared by the harness (which produces them) and the renderers.
//!
//! Field names follow the `summary.json` contract in DESIGN.md; tools read them, so renaming one
//! is a breaking change.

use serde::{Deserialize, Serialize};

/// What a scenario variant is expected to do, or what a run showed it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// An invariant broke (or an implicit oracle fired: an unhandled error, a failed assertion).
    Violation,
    /// Every live actor was blocked and nothing could wake them.
    Deadlock,
    /// No violation within the bound or budget; see [`RunResult::exhaustive`] for which.
    Holds,
}

/// The outcome of one run: a verdict, or the reason there is none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Violation,
    Deadlock,
    Holds,
    /// The engine or backend could not run here; `reason` says why and how to enable it.
    Skipped,
    /// The harness or a backend failed; never counted as a pass.
    Error,
}

impl From<Verdict> for Outcome {
    fn from(v: Verdict) -> Self {
        match v {
            Verdict::Violation => Outcome::Violation,
            Verdict::Deadlock => Outcome::Deadlock,
            Verdict::Holds => Outcome::Holds,
        }
    }
}

/// One invariant found broken by an exploration, with the schedule that breaks it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// The invariant's name, or an implicit oracle (`unhandled_error`, `assertion`, `deadlock`, `livelock`).
    pub invariant: String,
    /// The replay token of the failing schedule, shrunk to the fewest context switches (then
    /// steps, then faults) that still break the invariant.
    pub replay: String,
    /// The token of the schedule as the engine found it, before shrinking.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub original: String,
    /// How many schedules were explored up to and including the one that broke it.
    pub after: u64,
    /// Context switches in the recorded schedule.
    pub switches: u32,
    /// Context switches after shrinking (never more than `switches`).
    pub shrunk_switches: u32,
}

/// What a run's search covered, so that `holds` says what it is worth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Coverage {
    /// Every reachable state of the model was visited (native-dfs, or a stateless DFS that ran
    /// out of schedules with no bound): `holds` is a proof, under the run's `assumptions`.
    Proof,
    /// Every schedule within a stated bound (loom's preemption bound) was covered: `holds` is a
    /// proof within that bound only; `covers` names it.
    Bounded,
    /// Only what the budget allowed was tried (random, PCT, a search cut short, free runs,
    /// forced replays): `holds` means "not refuted".
    Budget,
}

impl Coverage {
    /// The lowercase name used in `summary.json`.
    pub fn as_str(self) -> &'static str {
        match self {
            Coverage::Proof => "proof",
            Coverage::Bounded => "bounded",
            Coverage::Budget => "budget",
        }
    }
}

/// A 95% Wilson score interval over `hits` of `runs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rate {
    pub hits: u64,
    pub runs: u64,
    pub low: f64,
    pub high: f64,
}

/// The first step where a real backend answered differently from the model.
/// A stress campaign's rate for one invariant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InvariantRate {
    pub invariant: String,
    pub hits: u64,
    pub runs: u64,
    pub low: f64,
    pub high: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Divergence {
    pub step: usize,
    pub actor: String,
    pub operation: String,
    pub model: String,
    pub real: String,
}

/// Facts about where a run happened.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Env {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fs_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mount_options: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub isolation_level: Option<String>,
}

/// One scenario × variant × engine × backend run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    /// The scenario file's stem.
    pub scenario: String,
    pub variant: String,
    /// `shuttle-random`, `shuttle-pct`, `shuttle-dfs`, `loom`, `replay`, `stress`, `stress-chaos`.
    pub engine: String,
    /// `model`, `model:nfs`, `fs:tmpfs`, …, `db:sqlite`, ….
    pub backend: String,
    /// The fault budget, or null when the run injects no faults.
    pub faults: Option<String>,
    pub expected: Verdict,
    /// The invariants the expectation names (empty for `holds`).
    #[serde(default)]
    pub expected_invariants: Vec<String>,
    pub outcome: Outcome,
    /// The invariant that broke (the first expected one found, else the first found), or null.
    pub invariant: Option<String>,
    /// True when the whole search space within the stated bound was covered. Kept for tools;
    /// `coverage` says whether that bound is the whole state space.
    pub exhaustive: bool,
    /// `proof` | `bounded` | `budget`: what the run covered. Absent for skipped and errored
    /// runs (and in summaries written before this field existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coverage: Option<Coverage>,
    /// The coverage in words, naming its bound: "every reachable state (52576 states)",
    /// "every schedule within preemption bound 2", "not refuted by 20000 schedules".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub covers: Option<String>,
    /// The model assumptions a verdict holds under, one per line: the isolation level per
    /// database, how durations are chosen, the fault budget, atomicity.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub assumptions: Vec<String>,
    pub schedules: u64,
    pub seconds: f64,
    pub first_failure_after: Option<u64>,
    pub replay: Option<String>,
    /// Whether this run met the expectation.
    pub met: bool,
    /// Every invariant this run saw broken, each with its own replay token.
    #[serde(default)]
    pub findings: Vec<Finding>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub switches: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shrunk_switches: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<Rate>,
    /// Stress runs: every invariant's rate (`rate` is the primary one's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rates: Vec<InvariantRate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub divergence: Option<Divergence>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env: Option<Env>,
    /// The engine's bound, in words ("preemption bound 2", "10000 schedules or 20s").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bound: Option<String>,
    /// Distinct states the stateful search (`native-dfs`) expanded; with `exhaustive: true`,
    /// every reachable state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub states: Option<u64>,
    /// Why a run was skipped or errored, and what to do about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The failing interleaving of the primary finding, for the human summary.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace: Option<Trace>,
    /// Set when this engine was not run because another engine (`native-dfs`) proved the
    /// variant over every reachable state; the row then carries that proof's verdict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proved_by: Option<String>,
}

/// The whole `summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub ok: bool,
    pub results: Vec<RunResult>,
    /// Set on the summary of one shard of a sharded run (`--shard I/N`); `racelab merge`
    /// combines the shards' summaries into one without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<Shard>,
}

/// Shard `index` of `count` (1-based): the scenario variants whose position in the sorted list
/// is `index - 1` modulo `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

/// A failing interleaving, step by step, ready to render as a table with one column per actor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trace {
    pub scenario: String,
    pub variant: String,
    /// Column headers: one per actor instance (`qrunner1`, `qrunner2`, …).
    pub actors: Vec<String>,
    pub steps: Vec<TraceStep>,
    /// What the trace ends with, in words ("mutual_exclusion broke: holders(section) <= 1").
    pub verdict: String,
}

/// One step of a trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceStep {
    /// Index into [`Trace::actors`]; `None` for events of the world itself (the clock jumping).
    pub actor: Option<usize>,
    /// Virtual time in milliseconds since the epoch when the step ran.
    pub time_ms: i64,
    /// The operation as written in the scenario, e.g. `link(tmp, LOCKFILE)`.
    pub operation: String,
    /// What it returned, e.g. `EEXIST`, `ok`, `-1`.
    pub result: String,
    /// Invariants that broke right after this step.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub broke: Vec<String>,
    /// Source line of the operation.
    pub line: u32,
}

// Presentation helpers shared by every renderer, so that the text table, Markdown, HTML and
// JUnit output name things the same way.

impl Verdict {
    /// The lowercase name used in `summary.json` and in scenario expectations.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Violation => "violation",
            Verdict::Deadlock => "deadlock",
            Verdict::Holds => "holds",
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Outcome {
    /// The lowercase name used in `summary.json`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Violation => "violation",
            Outcome::Deadlock => "deadlock",
            Outcome::Holds => "holds",
            Outcome::Skipped => "skipped",
            Outcome::Error => "error",
        }
    }

    /// True for outcomes that carry no verdict (the run did not really happen).
    pub fn is_skipped_or_error(self) -> bool {
        matches!(self, Outcome::Skipped | Outcome::Error)
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl RunResult {
    /// A row with nothing measured yet: which run it is and the expectation it is judged
    /// against; an error until a result says otherwise, every other field empty. The one place
    /// a row's fields are written out: every row (model, real filesystem, real database, gate,
    /// NFS) starts from it.
    pub fn unmeasured(
        scenario: &str,
        variant: &str,
        engine: &str,
        backend: String,
        (expected, expected_invariants): (Verdict, Vec<String>),
    ) -> RunResult {
        RunResult {
            scenario: scenario.to_string(),
            variant: variant.to_string(),
            engine: engine.to_string(),
            backend,
            faults: None,
            expected,
            expected_invariants,
            outcome: Outcome::Error,
            invariant: None,
            exhaustive: false,
            coverage: None,
            covers: None,
            assumptions: vec![],
            schedules: 0,
            seconds: 0.0,
            first_failure_after: None,
            replay: None,
            met: false,
            findings: vec![],
            switches: None,
            shrunk_switches: None,
            rate: None,
            rates: vec![],
            divergence: None,
            env: None,
            bound: None,
            states: None,
            reason: None,
            trace: None,
            proved_by: None,
        }
    }

    /// `variant/engine/backend`: the run's name within its scenario (the JUnit test case name).
    pub fn case_name(&self) -> String {
        format!("{}/{}/{}", self.variant, self.engine, self.backend)
    }

    /// The expectation in words, e.g. `violation (mutual_exclusion)` or `holds`.
    pub fn expected_label(&self) -> String {
        with_names(self.expected.as_str(), &self.expected_invariants)
    }

    /// The outcome in words, e.g. `violation (mutual_exclusion)` or `skipped`.
    pub fn outcome_label(&self) -> String {
        with_names(self.outcome.as_str(), self.invariant.as_slice())
    }

    /// Whether the run met its expectation; an error never does, whatever `met` says.
    pub fn is_met(&self) -> bool {
        self.met && self.outcome != Outcome::Error
    }

    /// What the verdict is worth, in a few words, for the result line and the reports:
    /// "proof over every reachable state", "exhaustive within preemption bound 2", "not
    /// refuted: budget spent". A violation is settled by its counterexample, so a budget says nothing more
    /// about it (empty); empty too for runs with no coverage (skipped, errors, old summaries).
    pub fn coverage_label(&self) -> String {
        let holds = self.outcome == Outcome::Holds;
        match self.coverage {
            None => String::new(),
            Some(Coverage::Proof) if holds => "proof over every reachable state".to_string(),
            Some(Coverage::Proof) => "exhaustive over every reachable state".to_string(),
            Some(Coverage::Bounded) => match self
                .covers
                .as_deref()
                .and_then(|c| c.strip_prefix("every schedule "))
            {
                Some(within) => format!("exhaustive {within}"),
                None => "exhaustive within a bound".to_string(),
            },
            Some(Coverage::Budget) if holds => "not refuted: budget spent".to_string(),
            Some(Coverage::Budget) => String::new(),
        }
    }

    /// The coverage in one short table cell: `proof`, `bounded (preemption bound 2)`, `budget`,
    /// or a dash.
    pub fn coverage_cell(&self) -> String {
        match self.coverage {
            None => "–".to_string(),
            Some(Coverage::Bounded) => match self
                .covers
                .as_deref()
                .and_then(|c| c.strip_prefix("every schedule within "))
            {
                Some(bound) => format!("bounded ({bound})"),
                None => "bounded".to_string(),
            },
            Some(c) => c.as_str().to_string(),
        }
    }

    /// The first line of `reason`, for places that have room for one line only.
    pub fn reason_line(&self) -> Option<&str> {
        self.reason.as_deref().and_then(|r| r.lines().next())
    }

    /// Whether a renderer has anything to say about this run beyond its table row.
    pub fn has_details(&self) -> bool {
        self.replay.is_some()
            || self.trace.is_some()
            || self.rate.is_some()
            || self.divergence.is_some()
            || self.env.as_ref().is_some_and(Env::has_fs_facts)
    }
}

/// `kind (a, b)`, or just `kind` when there are no names.
fn with_names(kind: &str, names: &[String]) -> String {
    if names.is_empty() {
        kind.to_string()
    } else {
        format!("{kind} ({})", names.join(", "))
    }
}

impl Rate {
    /// `hits / runs` as a percentage; 0 when nothing ran (rather than NaN).
    pub fn percent(&self) -> f64 {
        if self.runs == 0 {
            0.0
        } else {
            self.hits as f64 * 100.0 / self.runs as f64
        }
    }

    /// E.g. `12/1000 runs (1.20%, 95% CI 0.69%-2.09%)`; `low`/`high` are fractions of 1.
    pub fn describe(&self) -> String {
        format!(
            "{}/{} runs ({:.2}%, 95% CI {:.2}%-{:.2}%)",
            self.hits,
            self.runs,
            self.percent(),
            self.low * 100.0,
            self.high * 100.0
        )
    }
}

impl Env {
    /// Whether the filesystem facts the reports show (type, mount options) are known.
    pub fn has_fs_facts(&self) -> bool {
        self.fs_type.is_some() || self.mount_options.is_some()
    }
}

/// How many runs of a summary landed in each bucket; `met + not_met + skipped + errors` is the total.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub met: usize,
    pub not_met: usize,
    pub skipped: usize,
    pub errors: usize,
}

impl Summary {
    /// Counts runs by bucket; errors are never counted as met, whatever `met` says.
    pub fn tally(&self) -> Tally {
        let mut t = Tally::default();
        for r in &self.results {
            match r.outcome {
                Outcome::Skipped => t.skipped += 1,
                Outcome::Error => t.errors += 1,
                _ if r.is_met() => t.met += 1,
                _ => t.not_met += 1,
            }
        }
        t
    }
}

impl Tally {
    /// E.g. `3 runs: 1 met, 1 not met, 1 skipped, 0 errors`.
    pub fn describe(&self) -> String {
        let total = self.met + self.not_met + self.skipped + self.errors;
        format!(
            "{total} run{}: {} met, {} not met, {} skipped, {} error{}",
            if total == 1 { "" } else { "s" },
            self.met,
            self.not_met,
            self.skipped,
            self.errors,
            if self.errors == 1 { "" } else { "s" },
        )
    }
}

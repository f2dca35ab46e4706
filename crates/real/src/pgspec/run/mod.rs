//! Runs a spec's permutations the way isolationtester does (run_permutation,
//! try_complete_step, try_complete_steps in isolationtester.c), over the [`Link`] and [`Watch`]
//! traits: the real server through [`super::wire::Conn`], and the model through the same
//! interface ([`super::model`]). A launched step is watched by polling every 10 ms whether its session waits for a
//! lock (`pg_isolation_test_session_is_blocked`), never by a fixed sleep.

use std::time::Duration;

use super::parse::{PermStep, Spec};

mod connection;
mod runner;

pub use self::connection::{connect_real, render_row, Link, TableRows, Watch, MAX_ROWS_LISTED};

const STEP_NONBLOCK: u8 = 1;
const STEP_RETRY: u8 = 2;
/// isolationtester checks for lock waits every 10 ms.
const POLL: Duration = Duration::from_millis(10);

/// One spec's run: the output isolationtester would print (stdout and stderr, as pg_regress
/// captures both), and whether it ran to the end.
pub struct Outcome {
    pub output: String,
    /// Why the run stopped early (isolationtester would have exited 1), if it did.
    pub fatal: Option<String>,
    pub permutations: usize,
}

struct Runner<'a, L: Link, W: Watch> {
    spec: &'a Spec,
    control: W,
    conns: Vec<L>,
    pids: Vec<i32>,
    /// Per session: the index (in the current permutation) of its active step.
    active: Vec<Option<usize>>,
    total_notices: Vec<u64>,
    any_new_notice: bool,
    /// Per permutation step, per marker: the notice count to reach (`notices N`).
    target_notices: Vec<Vec<u64>>,
    out: String,
    max_step_wait: Duration,
    /// Exploring interleavings nobody vetted: a step that waits on a session with no step
    /// left before it is cancelled at once (as isolationtester would after its step timeout),
    /// sessions are rolled back after each permutation, and the tables are read.
    explore: bool,
    trace: Trace,
}

/// What happened in one permutation, beyond its printed output: the errors by step, the
/// steps cancelled, and (when exploring) the tables' rows at the end.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trace {
    /// (step, SQLSTATE) of every error a step's statements raised, in order.
    pub errors: Vec<(String, String)>,
    /// Steps cancelled because they waited on a session that had no step left before them.
    pub stalled: Vec<String>,
    /// Steps cancelled because the step timeout passed.
    pub timed_out: Vec<String>,
    /// The tables at the end (after every session's open transaction was rolled back).
    pub tables: Option<Result<Vec<TableRows>, String>>,
}

/// One permutation's run during an exploration.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// What isolationtester prints for it, from `starting permutation:` on.
    pub output: String,
    pub trace: Trace,
    /// Why the run stopped (isolationtester would have exited), if it did; the connections
    /// are then unusable.
    pub fatal: Option<String>,
}

/// Runs `perms` (in order, on the same connections) recording each one's [`Trace`], with
/// stalled steps cancelled at once and every session rolled back after each permutation.
/// Stops after the first permutation that fails fatally (its record says why): the caller
/// reconnects and goes on.
pub(crate) fn run_recorded<L: Link, W: Watch>(
    spec: &Spec,
    control: W,
    conns: Vec<L>,
    perms: &[Vec<PermStep>],
    max_step_wait: Duration,
) -> Vec<Recorded> {
    let pids = conns.iter().map(Link::pid).collect();
    let mut r = Runner {
        spec,
        control,
        active: vec![None; conns.len()],
        total_notices: vec![0; conns.len()],
        pids,
        conns,
        any_new_notice: false,
        target_notices: vec![],
        out: String::new(),
        max_step_wait,
        explore: true,
        trace: Trace::default(),
    };
    let mut out = Vec::new();
    for p in perms {
        r.out.clear();
        r.trace = Trace::default();
        let fatal = r.run_permutation(p).err();
        if let Some(e) = &fatal {
            r.out.push_str(e);
            if !e.ends_with('\n') {
                r.out.push('\n');
            }
        }
        out.push(Recorded {
            output: std::mem::take(&mut r.out),
            trace: std::mem::take(&mut r.trace),
            fatal: fatal.clone().map(|e| e.trim_end().to_string()),
        });
        if fatal.is_some() {
            break;
        }
    }
    out
}

/// Runs every permutation of `spec` (listed, or all interleavings) on the given connections.
pub fn run_spec<L: Link, W: Watch>(
    spec: &Spec,
    control: W,
    conns: Vec<L>,
    max_step_wait: Duration,
) -> Outcome {
    let pids = conns.iter().map(Link::pid).collect();
    let mut r = Runner {
        spec,
        control,
        active: vec![None; conns.len()],
        total_notices: vec![0; conns.len()],
        pids,
        conns,
        any_new_notice: false,
        target_notices: vec![],
        out: String::new(),
        max_step_wait,
        explore: false,
        trace: Trace::default(),
    };
    if !spec.permutations.is_empty() {
        let mut unused: Vec<&str> = spec
            .sessions
            .iter()
            .flat_map(|s| s.steps.iter().map(|t| t.name.as_str()))
            .filter(|name| {
                !spec
                    .permutations
                    .iter()
                    .any(|p| p.steps.iter().any(|ps| spec.step(ps).name == *name))
            })
            .collect();
        unused.sort();
        for u in unused {
            r.out.push_str(&format!("unused step name: {u}\n"));
        }
    }
    r.out.push_str(&format!(
        "Parsed test spec with {} sessions\n",
        spec.sessions.len()
    ));
    let perms = spec.permutations_to_run();
    let mut fatal = None;
    let mut ran = 0;
    for p in &perms {
        ran += 1;
        if let Err(e) = r.run_permutation(p) {
            r.out.push_str(&e);
            if !e.ends_with('\n') {
                r.out.push('\n');
            }
            fatal = Some(e.trim_end().to_string());
            break;
        }
    }
    Outcome {
        output: r.out,
        fatal,
        permutations: ran,
    }
}

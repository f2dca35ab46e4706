//! Actors on several clients of one directory, and the threads of a gated process scheduled
//! and replayed.

use std::path::PathBuf;

use racelab_core::schedule::Schedule;
use racelab_real::gate::explore::{explore, replay, GateBudget, Strategy};
use racelab_real::gate::run::{execute, Chooser, Last};

use super::{processes_mentioning, setup, Lowest};

const CLIENTS: &str = r#"
scenario clients {
  gate "sh $SCENARIO_DIR/where.sh $INDEX"
  actor p x 2 {
    write("/f", "x")
  }
  expect holds
}
"#;

/// Says where the process runs (outside the run's root: not a step), then writes a file under it.
const WHERE: &str =
    "echo \"$RACELAB_ROOT\" > \"$RACELAB_ROOT/../../where-$1\"\necho x > \"$RACELAB_ROOT/f\"\n";

/// Unmounts a bind mount when dropped, however the test ends.
struct BindMount(PathBuf);

impl Drop for BindMount {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

#[test]
fn actors_alternate_between_clients_and_each_clients_calls_are_steps() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipped: a second client of one directory is a bind mount here, which needs root (CI runs as root; the NFS guest uses two real NFS clients)");
        return;
    }
    let (dir, progs, mut opts) = setup(CLIENTS, &[("where.sh", WHERE)]);
    // The same directory through a second path the kernel does not resolve back to the first,
    // as a second NFS mount of one export is.
    let other = tempfile::tempdir().expect("a mount point");
    nix::mount::mount(
        Some(dir.path()),
        other.path(),
        None::<&str>,
        nix::mount::MsFlags::MS_BIND,
        None::<&str>,
    )
    .expect("bind mount");
    let _mounted = BindMount(other.path().to_path_buf());
    opts.clients = vec![other.path().to_path_buf()];
    let exec = execute(&progs[0], &opts, &mut Lowest).expect("the run works");
    let root_of = |i: usize| {
        std::fs::read_to_string(dir.path().join(format!("where-{i}")))
            .unwrap_or_else(|e| panic!("actor {i} said where it ran: {e}"))
    };
    let (first, second) = (root_of(0), root_of(1));
    assert!(
        first.starts_with(
            &dir.path()
                .canonicalize()
                .expect("canonical")
                .display()
                .to_string()
        ),
        "{first}"
    );
    assert!(
        second.starts_with(
            &other
                .path()
                .canonicalize()
                .expect("canonical")
                .display()
                .to_string()
        ),
        "{second}"
    );
    // Each actor's write under its own client's root was a step of the schedule.
    for actor in [0, 1] {
        assert!(
            exec.trace
                .iter()
                .any(|s| s.actor == Some(actor) && s.operation.contains("(f)")),
            "actor {actor} made no step: {:#?}",
            exec.trace
        );
    }
    assert!(processes_mentioning(dir.path()).is_empty());
}

// ---- threads ----

const THREADED: &str = r#"
scenario threaded-counter {
  fs { file "/counter" = "0" }
  gate "/usr/bin/python3 $SCENARIO_DIR/inc_threads.py"
  actor p {
    write("/counter", "1")
  }
  invariant no_lost_update: at end int(read("/counter")) == 2
  expect violates no_lost_update
}
"#;

/// Two threads of one process read the counter and write it back plus one, no lock; the main
/// thread waits for them in a futex (idle outside the gate).
const INC_THREADS: &str = r#"import os, threading
root = os.environ["RACELAB_ROOT"]
def inc():
    with open(root + "/counter") as f:
        n = int(f.read() or 0)
    with open(root + "/counter", "w") as f:
        f.write(str(n + 1))
ts = [threading.Thread(target=inc) for _ in range(2)]
for t in ts:
    t.start()
for t in ts:
    t.join()
"#;

/// Always the lowest enabled actor, and its threads at gated calls by turns.
struct Alternate(usize);

impl Chooser for Alternate {
    fn next_choice(&mut self, runnable: &[usize], _last: Option<Last>) -> Option<usize> {
        runnable.first().copied()
    }
    fn next_thread(&mut self, _actor: usize, ready: usize) -> Option<usize> {
        self.0 += 1;
        Some(self.0 % ready)
    }
}

#[test]
fn the_threads_of_a_gated_process_are_scheduled_and_their_tokens_replay() {
    let (dir, progs, opts) = setup(THREADED, &[("inc_threads.py", INC_THREADS)]);
    let prog = &progs[0];
    // Oldest thread first at every choice: one thread's whole increment, then the other's.
    let serial = execute(prog, &opts, &mut Lowest).expect("a threaded program runs under the gate");
    assert!(
        serial.broken.is_empty(),
        "{:?}\n{:#?}",
        serial.broken,
        serial.trace
    );
    // By turns: the second thread reads before the first writes back. The actor's two threads
    // at gated calls make such a step two choices (the actor, then which thread).
    let racy = execute(prog, &opts, &mut Alternate(0)).expect("a threaded run");
    assert!(racy.broke("no_lost_update"), "{:#?}", racy.trace);
    assert!(
        racy.choices.len() > racy.trace.len(),
        "no thread choice was recorded: {:?} for {} steps",
        racy.choices,
        racy.trace.len()
    );
    // Exploring finds it too, and the shrunk token replays the same steps every time.
    let want = vec!["no_lost_update".to_string()];
    let ex = explore(
        prog,
        &opts,
        Strategy::Random,
        GateBudget {
            executions: 60,
            seconds: 120.0,
        },
        &want,
        7,
        &mut |_, _| {},
    )
    .expect("exploring a threaded program");
    let finding = ex
        .findings
        .iter()
        .find(|f| f.invariant == "no_lost_update")
        .expect("the random walk finds the lost update between two threads");
    let token = finding.shrunk.encode();
    let sched = Schedule::decode(&token).expect("the token decodes");
    let first = replay(prog, &opts, &sched).expect("the token replays");
    let second = replay(prog, &opts, &sched).expect("the token replays again");
    assert!(first.broke("no_lost_update"), "{:#?}", first.trace);
    let steps = |e: &racelab_real::gate::run::Execution| -> Vec<(Option<usize>, String, String)> {
        e.trace
            .iter()
            .map(|s| (s.actor, s.operation.clone(), s.result.clone()))
            .collect()
    };
    assert_eq!(steps(&first), steps(&second));
    assert!(
        processes_mentioning(dir.path()).is_empty(),
        "left behind: {:?}",
        processes_mentioning(dir.path())
    );
}

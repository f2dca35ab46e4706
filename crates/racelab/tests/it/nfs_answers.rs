//! An operation with two allowed answers: every engine explores the NFS client's other answer, and a forced replay follows the answer reality gives.

use std::sync::Arc;
use std::time::Duration;

use racelab_core::explore::{explore, Budget, EngineConfig, EngineKind};
use racelab_core::schedule::Schedule;
use racelab_lang::ir::Program;
use racelab_real::backend::forced::{forced_replay, Forced, FsRun};
use racelab_real::backend::ActorMode;

/// Client A reads its file, client B removes it, client A reads it again through the name it
/// still caches. The server says ENOENT; a real NFSv4.2 client was measured answering with the
/// removed file's old contents. Only that answer breaks `sees_removal`.
const STALE_READ: &str = r#"
scenario nfs-stale-read {
  about "a read through a cached name of a file another client removed"
  const LOCK = "/locks/test.lock"
  fs { dir "/locks" }
  log seen
  cell looked = false
  cell removed = false
  actor owner on A {
    write(LOCK, "owner")
    let mine = read(LOCK)
    set looked = true
    while not removed {
      sleep 100ms
    }
    match read(LOCK) {
      ok(text) => { append seen "still {text}" }
      err(ENOENT) => { append seen "gone" }
    }
  }
  actor breaker on B {
    while not looked {
      sleep 100ms
    }
    unlink(LOCK)
    set removed = true
  }
  invariant sees_removal: at end count(seen, "gone") == 1
  variant nfs {
    nfs cache 3s
    expect violates sees_removal
  }
  variant posix {
    expect holds
  }
}
"#;

fn variant(name: &str) -> Arc<Program> {
    variant_of(STALE_READ, name)
}

fn variant_of(src: &str, name: &str) -> Arc<Program> {
    let sc = racelab_core::lang::compile("stale.race", src)
        .unwrap_or_else(|e| panic!("{}", racelab_core::lang::render_plain(&e)));
    let v = sc
        .variants
        .iter()
        .find(|v| v.variant == name)
        .expect("variant");
    Arc::new(v.clone())
}

/// native-dfs's first finding on `prog`, forced with threads on one local directory for both
/// "clients", where reality always answers ENOENT.
fn force_first_finding(prog: &Arc<Program>) -> (Schedule, Forced<FsRun>) {
    let ex = explore(prog, &EngineConfig::new(EngineKind::NativeDfs, budget())).expect("runs");
    let token = ex.findings[0].schedule.clone();
    let root = tempfile::tempdir().expect("temp dir");
    let r = forced_replay(
        prog,
        &token,
        &[root.path().to_path_buf()],
        ActorMode::Threads,
    )
    .expect("a token reality steers elsewhere is no token error");
    (token, r)
}

fn budget() -> Budget {
    Budget::new(5_000, Duration::from_secs(30))
}

#[test]
fn every_engine_finds_the_answer_only_an_nfs_client_gives() {
    let nfs = variant("nfs");
    assert!(nfs.explores_answers() && !variant("posix").explores_answers());
    for kind in EngineKind::ALL {
        let ex = explore(&nfs, &EngineConfig::new(kind, budget())).expect("engine runs");
        let f = ex
            .findings
            .iter()
            .find(|f| f.invariant == "sees_removal")
            .unwrap_or_else(|| panic!("{} missed the stale read", kind.name()));
        let replayed = racelab_core::replay::replay(&nfs, &f.schedule).expect("token fits");
        assert!(replayed.reproduced(&f.schedule), "{}", kind.name());
        let shown: Vec<&str> = replayed
            .trace
            .steps
            .iter()
            .map(|s| s.result.as_str())
            .collect();
        assert!(
            shown
                .iter()
                .any(|r| r.starts_with("may answer ENOENT or owner")),
            "{}: the step table shows the choice: {shown:?}",
            kind.name()
        );
    }
    // Without NFS there is one answer, and nothing breaks.
    let posix = variant("posix");
    let ex = explore(&posix, &EngineConfig::new(EngineKind::NativeDfs, budget())).expect("runs");
    assert!(ex.findings.is_empty() && ex.exhaustive, "{:?}", ex.findings);
}

#[test]
fn a_forced_replay_follows_the_answer_reality_gives_and_says_so() {
    let (token, r) = force_first_finding(&variant("nfs"));
    let token = &token;
    assert_eq!(
        r.divergence, None,
        "reality's answer is one the model allows"
    );
    assert!(!r.reproduced(token), "the race needs the other answer");
    let steer = r.steered.first().expect("reality chose another answer");
    assert_eq!(
        (steer.real.as_str(), steer.token.as_str()),
        ("ENOENT", "owner")
    );
    // The replay went on past that step, on reality's answer, to the end.
    assert!(r.trace.steps.len() > steer.step, "{:?}", r.trace.steps);
    let again = Schedule::decode(&token.encode()).expect("round trip");
    assert_eq!(&again, token);
}

#[test]
fn a_token_reality_steers_off_its_path_ends_there_without_a_divergence() {
    // The owner reads through its cached name right after the removal; then, only on the old
    // contents, it reads a second time: a token that took the old contents has a step more
    // than reality, which answers ENOENT, can follow.
    let src = STALE_READ.replace(
        r#"ok(text) => { append seen "still {text}" }"#,
        r#"ok(text) => {
        append seen "still {text}"
        let again = read("/locks")
      }"#,
    );
    let (token, r) = force_first_finding(&variant_of(&src, "nfs"));
    let token = &token;
    assert_eq!(r.divergence, None);
    assert_eq!(r.steered.len(), 1);
    assert!(!r.reproduced(token));
}

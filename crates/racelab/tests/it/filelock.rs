//! scenarios/filelock.race: filelock's UnixFileLock per release on the model (every release
//! proved to hold over every reachable state of three lockers), and the report's mechanism
//! (unlink, then unlock, without the nlink check) found by the model and forced on real
//! directories with real processes and threads, each descriptor a real open file and each
//! flock a real flock(2).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use racelab_core::explore::{explore, Budget, EngineConfig, EngineKind};
use racelab_lang::ir::Program;
use racelab_real::backend::forced::forced_replay;
use racelab_real::backend::ActorMode;

const FILELOCK: &str = include_str!("../../../../scenarios/filelock.race");

fn variant(name: &str) -> Arc<Program> {
    let sc =
        racelab_core::lang::compile("filelock.race", FILELOCK).expect("filelock.race compiles");
    Arc::new(sc.variant(name).expect("variant").clone())
}

fn dfs() -> EngineConfig {
    EngineConfig::new(
        EngineKind::NativeDfs,
        Budget::new(u64::MAX, Duration::from_secs(120)),
    )
}

#[test]
fn every_filelock_release_holds_over_every_reachable_state_on_a_local_filesystem() {
    for v in ["v3.20.3", "v3.20.4", "v3.29.4", "v3.29.5"] {
        let ex = explore(&variant(v), &dfs()).expect("native-dfs runs");
        assert!(ex.findings.is_empty(), "{v}: {:?}", ex.findings);
        assert!(
            ex.exhaustive,
            "{v}: native-dfs did not finish ({})",
            ex.bound
        );
        assert!(
            ex.states.unwrap_or(0) > 1000,
            "{v}: only {:?} states",
            ex.states
        );
    }
}

#[test]
fn unlink_then_unlock_without_the_nlink_check_gives_two_holders_for_real() {
    std::env::set_var("RACELAB_WORKER_EXE", env!("CARGO_BIN_EXE_racelab"));
    let prog = variant("unlink-no-check");
    let ex = explore(&prog, &dfs()).expect("native-dfs runs");
    let found = ex
        .findings
        .iter()
        .find(|f| f.invariant == "mutual_exclusion")
        .expect("the model finds two holders");
    // The second holder's step is a flock: on the old inode (the waiter) or the new one.
    let mut roots = vec![std::env::temp_dir()];
    if std::path::Path::new("/dev/shm").is_dir() {
        roots.push(PathBuf::from("/dev/shm"));
    }
    for root in roots {
        for mode in [ActorMode::Processes, ActorMode::Threads] {
            let r = forced_replay(&prog, &found.schedule, std::slice::from_ref(&root), mode)
                .unwrap_or_else(|e| panic!("{}: {e}", root.display()));
            assert_eq!(r.divergence, None, "{} {mode:?}", root.display());
            assert!(
                r.reproduced(&found.schedule),
                "{} {mode:?}: no second holder",
                root.display()
            );
            let step = r
                .trace
                .steps
                .iter()
                .find(|s| s.broke.iter().any(|b| b == "mutual_exclusion"))
                .expect("the breaking step");
            assert_eq!(step.operation, "flock(fd)", "{step:?}");
            assert_eq!(step.result, "ok");
        }
    }
}

#[test]
fn on_nfs_the_silly_rename_defeats_the_nlink_check_and_a_stale_handle_raises() {
    // Two NFS clients (locker1 and locker3 on A, locker2 on B). The releaser's unlink is a
    // silly rename (it has the file open), so a waiter that flocks the old file between the
    // releaser's LOCK_UN and its close reads nlink 1; once the releaser's client closed its
    // last descriptor the file is gone on the server and a waiter on the other client gets
    // ESTALE from fstat, which filelock does not catch. 3.29.5 never unlinks: it holds.
    let ex = explore(&variant("nfs-v3.29.4"), &dfs()).expect("native-dfs runs");
    let found: Vec<&str> = ex.findings.iter().map(|f| f.invariant.as_str()).collect();
    for want in ["mutual_exclusion", "unhandled_error"] {
        assert!(found.contains(&want), "{want} not in {found:?}");
    }
    let stale = ex
        .findings
        .iter()
        .find(|f| f.invariant == "unhandled_error")
        .expect("found");
    assert!(stale.message.contains("ESTALE"), "{}", stale.message);
    let fixed = explore(&variant("nfs-v3.29.5"), &dfs()).expect("native-dfs runs");
    assert!(
        fixed.findings.is_empty() && fixed.exhaustive,
        "{:?}",
        fixed.findings
    );
}

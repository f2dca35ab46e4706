//! Two real NFSv3 clients against the models: the NFS-flavoured model predicts client B's stale
//! st_nlink step by step; the plain POSIX model diverges at exactly that step.

use std::process::Command;

const XTASK: &str = env!("CARGO_BIN_EXE_xtask");

mod common;
use common::{racelab, workspace};

#[test]
fn client_b_sees_a_stale_link_count_that_only_the_nfs_model_predicts() {
    let racelab = racelab();
    let scenario = workspace().join("scenarios").join("nfs-two-clients.race");
    // The model's schedule: client B looks, client A links, client B looks again.
    let out = Command::new(&racelab)
        .args(["explore"])
        .arg(&scenario)
        .args(["--variant", "nfs", "--engine", "loom"])
        .output()
        .expect("racelab runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let token = text
        .split_whitespace()
        .find(|w| w.starts_with("rl1_"))
        .unwrap_or_else(|| panic!("no token in:\n{text}"))
        .to_string();
    // Both replays inside one guest boot: the NFS model first, then the POSIX model.
    let script = format!(
        "set -u; mkdir -p \"$RACELAB_NFS3\"; \
         {rl} replay {sc} --variant nfs {tok} --backend \"fs:$RACELAB_NFS3,$RACELAB_NFS3B\"; echo \"nfs-model-exit=$?\"; \
         {rl} replay {sc} --variant nfs {tok} --on-variant posix --backend \"fs:$RACELAB_NFS3,$RACELAB_NFS3B\"; echo \"posix-model-exit=$?\"",
        rl = racelab.display(),
        sc = scenario.display(),
        tok = token
    );
    let out = Command::new(XTASK)
        .args(["nfs", "run", "--", "sh", "-c", &script])
        .current_dir(workspace())
        .output()
        .expect("xtask runs");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !nix::unistd::Uid::effective().is_root() {
        assert_eq!(
            out.status.code(),
            Some(3),
            "without root `nfs run` must refuse with exit 3:\n{all}"
        );
        return;
    }
    if out.status.code() == Some(3) && all.contains("cannot run on this host kernel") {
        // No guest can boot on this host (see tests/nfs.rs): refused, saying why; nothing ran.
        assert!(!all.contains("nfs-model-exit"), "{all}");
        return;
    }
    assert!(
        all.contains("nfs-model-exit=0"),
        "the NFS model must agree with two real clients:\n{all}"
    );
    assert!(all.contains("reproduced sees_link on the real system in 1 of 1 forced replays, no divergence from the model"), "{all}");
    assert!(
        all.contains("posix-model-exit=1"),
        "the POSIX model must diverge:\n{all}"
    );
    let divergence = all
        .lines()
        .find(|l| l.contains("reality diverged from the model"))
        .unwrap_or_else(|| panic!("no divergence line:\n{all}"));
    assert!(
        divergence.contains("(reader: stat(FILE))")
            && divergence.contains("the model says {nlink 2")
            && divergence.contains("the real system said {nlink 1"),
        "{divergence}"
    );
}

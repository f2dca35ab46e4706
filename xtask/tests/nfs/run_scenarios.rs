//! `cargo xtask run-scenarios` merges the guest suite's rows into the main summary.

use super::{is_root, one_guest, workspace, RIG};

/// The NFS part of `cargo xtask run-scenarios`: racelab's suite runs inside the guest with the
/// four NFS targets (one client, then two), and its `fs:nfs…` rows (with the guest's mount options) are merged into
/// the main summary. The guest and its mounts are real; racelab is a stand-in script here, so
/// the test takes seconds instead of the real suite's minutes.
#[test]
fn run_scenarios_merges_the_guest_suite_rows_into_the_main_summary() {
    let _g = one_guest();
    let dir = tempfile::tempdir().expect("temp dir");
    let target = dir.path();
    // The main suite's summary: a lock-scenario variant that ran on a local real filesystem.
    let row = |backend: &str| -> reports::RunResult {
        serde_json::from_str(&format!(
            r#"{{"scenario":"mailman-lockfile","variant":"mailman-2.1","engine":"forced-replay","backend":"{backend}","faults":null,"expected":"violation","expected_invariants":["mutual_exclusion"],"outcome":"violation","invariant":"mutual_exclusion","exhaustive":false,"schedules":100,"seconds":1.0,"first_failure_after":1,"replay":"rl1_x","met":true}}"#
        ))
        .expect("a valid row")
    };
    let main = reports::Summary {
        ok: true,
        results: vec![row("fs:tempdir")],
        shard: None,
    };
    reports::write_all(&main, &target.join("racelab")).expect("main summary written");
    // The stand-in racelab: records its arguments and writes one row per NFS target, with the
    // options of the mount its directory is on, as racelab's fsinfo would.
    let fake = target.join("fake-racelab");
    let args_file = target.join("args");
    std::fs::write(
        &fake,
        format!(
            r#"#!/bin/sh
echo "$@" >> {args}
out=; prev=
for a; do [ "$prev" = --out ] && out=$a; prev=$a; done
mkdir -p "$out"
opts() {{ awk -v m="$1" '$2 == m {{ print $4 }}' /proc/mounts; }}
row() {{ printf '{{"scenario":"mailman-lockfile","variant":"mailman-2.1","engine":"forced-replay","backend":"fs:%s","faults":null,"expected":"violation","outcome":"violation","invariant":"mutual_exclusion","exhaustive":false,"schedules":10,"seconds":1.0,"first_failure_after":1,"replay":"rl1_x","met":true,"env":{{"fs_type":"%s","mount_options":"%s"}}}}' "$1" "$2" "$3"; }}
rows=
for a; do
  case "$a" in
    --real=*=!*) ;;
    --real=nfs3=*) rows="$rows$(row nfs3 nfs3 "$(opts {rig}/nfs3)"),";;
    --real=nfs4=*) rows="$rows$(row nfs4 nfs4 "$(opts {rig}/nfs4)"),";;
    --real=nfs3x2=*) rows="$rows$(row nfs3x2 nfs3 "$(opts {rig}/nfs3b)"),";;
    --real=nfs4x2=*) rows="$rows$(row nfs4x2 nfs4 "$(opts {rig}/nfs4b)"),";;
  esac
done
printf '{{"ok":true,"results":[%s%s]}}' "$rows" \
  '{{"scenario":"mailman-lockfile","variant":"mailman-2.1","engine":"loom","backend":"model","faults":null,"expected":"violation","outcome":"violation","invariant":"mutual_exclusion","exhaustive":false,"schedules":10,"seconds":1.0,"first_failure_after":1,"replay":"rl1_x","met":true}}' > "$out/summary.json"
"#,
            args = args_file.display(),
            rig = RIG
        ),
    )
    .expect("stand-in written");
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let params = xtask::nfs::suite::Params::new(fake.clone(), workspace(), target);
    let code = xtask::nfs::suite::run(&params).expect("the NFS part runs");
    let merged: reports::Summary = serde_json::from_str(
        &std::fs::read_to_string(target.join("racelab/summary.json")).expect("merged summary"),
    )
    .expect("parses");
    let backends: Vec<&str> = merged.results.iter().map(|r| r.backend.as_str()).collect();
    if !is_root() {
        assert_eq!(code, Some(0));
        assert_eq!(
            backends,
            ["fs:tempdir", "fs:nfs3", "fs:nfs4", "fs:nfs3x2", "fs:nfs4x2"]
        );
        assert!(merged.results[1..]
            .iter()
            .all(|r| r.outcome == reports::Outcome::Skipped
                && r.reason.as_deref().is_some_and(|w| w.contains("not root"))));
        return;
    }
    assert_eq!(code, Some(0), "merged rows: {backends:?}");
    assert_eq!(
        backends,
        ["fs:tempdir", "fs:nfs3", "fs:nfs4", "fs:nfs3x2", "fs:nfs4x2"],
        "only the guest's NFS rows are merged, after the main ones (one client, then two)"
    );
    let opts = |i: usize| {
        merged.results[i]
            .env
            .as_ref()
            .and_then(|e| e.mount_options.clone())
            .unwrap_or_default()
    };
    assert!(
        opts(1).contains("vers=3")
            && opts(2).contains("vers=4.2")
            && opts(3).contains("nosharecache")
            && opts(4).contains("vers=4.2")
            && opts(4).contains("nosharecache"),
        "mount options from the guest: {:?}",
        (opts(1), opts(2), opts(3), opts(4))
    );
    let served_by = |i: usize| {
        merged.results[i]
            .env
            .as_ref()
            .and_then(|e| e.server_version.clone())
            .unwrap_or_default()
    };
    assert!(
        (1..5).all(|i| served_by(i).starts_with("Linux knfsd in ")
            && (served_by(i).contains("User-mode Linux") || served_by(i).contains("qemu"))),
        "each row names the guest and kernel: {:?}",
        served_by(1)
    );
    let args = std::fs::read_to_string(&args_file).expect("racelab ran in the guest");
    // Only the lock scenarios the main run covered (here mailman-lockfile alone) are rerun.
    assert!(
        !args.contains("mailman-stale-lock"),
        "mailman-stale-lock was not in the main run: {args}"
    );
    for want in [
        "suite",
        "mailman-lockfile.race",
        "--quick",
        "--engines loom",
        "--engines native-random",
        &format!("--real=nfs3={RIG}/nfs3/racelab"),
        &format!("--real=nfs4={RIG}/nfs4/racelab"),
        &format!("--real=nfs3x2={RIG}/nfs3/racelab,{RIG}/nfs3b/racelab"),
        &format!("--real=nfs4x2={RIG}/nfs4/racelab,{RIG}/nfs4b/racelab"),
    ] {
        assert!(
            args.contains(want),
            "racelab suite should get {want}: {args}"
        );
    }
    let md =
        std::fs::read_to_string(target.join("racelab/summary.md")).expect("summary.md re-rendered");
    assert!(md.contains("nfs4"), "summary.md lists the NFS rows:\n{md}");
}

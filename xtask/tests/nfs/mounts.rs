//! The guest's mounts: nfs4 and nfs3 with the exit status coming back, a second NFSv3 client's
//! stale attribute cache, and never a mount on the host.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{
    as_root_or_refused, host_nfs_mounts, is_root, mountinfo, one_guest, text, workspace, RIG, XTASK,
};

#[test]
fn the_command_sees_nfs4_and_nfs3_mounts_and_its_exit_status_comes_back() {
    let _g = one_guest();
    let script = r#"grep -E ' nfs4? ' /proc/mounts | while read -r src dir fs opts rest; do echo "mount $dir $fs $opts"; done
echo "cwd=$(pwd)"
echo "dirs: $(test -d "$RACELAB_NFS4" && echo nfs4) $(test -d "$RACELAB_NFS3" && echo nfs3) $(test -d "$RACELAB_NFS3B" && echo nfs3b) $(test -d "$RACELAB_NFS4B" && echo nfs4b)"
grep -h '^name:' /proc/fs/nfsd/clients/*/info | sed 's/^/nfsd-client /'
exit 7"#;
    let Some(out) = as_root_or_refused(script) else {
        return;
    };
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(7),
        "the command's own exit status must come back\nstdout:\n{stdout}\nstderr:\n{}",
        text(&out.stderr)
    );
    let has = |needle: &str| {
        stdout
            .lines()
            .any(|l| l.starts_with("mount ") && l.contains(needle))
    };
    assert!(
        has(&format!("{RIG}/nfs4 nfs4 ")) && has("vers=4.2"),
        "no NFSv4.2 mount inside:\n{stdout}"
    );
    assert!(
        has(&format!("{RIG}/nfs3 nfs ")) && has("vers=3"),
        "no NFSv3 mount inside:\n{stdout}"
    );
    assert!(
        stdout.lines().any(
            |l| l.starts_with(&format!("mount {RIG}/nfs3b nfs ")) && l.contains("nosharecache")
        ),
        "no second NFSv3 client (nosharecache) inside:\n{stdout}"
    );
    assert!(
        stdout.contains(&format!("cwd={}", workspace().display())),
        "the command runs in the caller's directory:\n{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with(&format!("mount {RIG}/nfs4b nfs4 "))
                && l.contains("nosharecache")),
        "no second NFSv4.2 mount (nosharecache) inside:\n{stdout}"
    );
    // Two NFSv4 *clients*, as two machines would be: the server tells them apart (their own
    // client IDs, leases and open owners), not one client with two superblocks.
    let clients: std::collections::BTreeSet<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("nfsd-client "))
        .collect();
    assert_eq!(
        clients.len(),
        2,
        "nfsd must see the nfs4 and nfs4b mounts as two clients with their own names:\n{stdout}"
    );
    assert!(
        stdout.contains("dirs: nfs4 nfs3 nfs3b nfs4b"),
        "RACELAB_NFS4/3/3B/4B name existing directories:\n{stdout}"
    );
    assert!(
        host_nfs_mounts().is_empty(),
        "host mounts: {:?}",
        host_nfs_mounts()
    );
}

/// Real NFS semantics racelab's NFS model must predict: client B (nfs3b) keeps the attributes
/// it fetched, so right after client A links a file, B still reports st_nlink == 1; after the
/// attribute cache times out (acregmin, 3 s) it sees 2.
#[test]
fn a_second_nfs3_client_sees_a_stale_link_count_right_after_a_link() {
    let _g = one_guest();
    let script = r#"set -e
cd "$RACELAB_NFS3"
rm -f claim lock
echo x > claim
echo "B-before=$(stat -c %h "$RACELAB_NFS3B/claim")"
ln claim lock
echo "A-after=$(stat -c %h claim)"
echo "B-after=$(stat -c %h "$RACELAB_NFS3B/claim")"
sleep 4
echo "B-later=$(stat -c %h "$RACELAB_NFS3B/claim")"
rm -f claim lock"#;
    let Some(out) = as_root_or_refused(script) else {
        return;
    };
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{}",
        text(&out.stderr)
    );
    for (what, want) in [
        ("B-before", "1"),
        ("A-after", "2"),
        ("B-after", "1"),
        ("B-later", "2"),
    ] {
        assert!(
            stdout.lines().any(|l| l == format!("{what}={want}")),
            "expected {what}={want} (client B's attribute cache):\n{stdout}"
        );
    }
}

/// Watches the host's mount table for a whole run: the guest's mounts live in its own kernel.
#[test]
fn nothing_is_ever_mounted_on_the_host() {
    let _g = one_guest();
    let before = mountinfo();
    let mut child = Command::new(XTASK)
        .args([
            "nfs",
            "run",
            "--",
            "sh",
            "-c",
            "touch \"$RACELAB_NFS4/x\" \"$RACELAB_NFS3/y\"; sleep 1",
        ])
        .current_dir(workspace())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("xtask starts");
    let mut appeared: Vec<String> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(300);
    let status = loop {
        for l in mountinfo() {
            if !before.contains(&l) && !appeared.contains(&l) {
                appeared.push(l);
            }
        }
        if let Some(s) = child.try_wait().expect("waiting") {
            break s;
        }
        assert!(Instant::now() < deadline, "nfs run did not finish");
        std::thread::sleep(Duration::from_millis(20));
    };
    if !is_root() {
        assert_eq!(status.code(), Some(3));
        assert_eq!(
            appeared,
            Vec::<String>::new(),
            "mounts appeared on the host during a refused run"
        );
        return;
    }
    let mut err = String::new();
    let _ = child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err);
    assert_eq!(status.code(), Some(0), "stderr:\n{err}");
    assert!(
        err.contains("guest up in"),
        "the guest should have booted:\n{err}"
    );
    assert_eq!(
        appeared,
        Vec::<String>::new(),
        "mounts appeared on the host during a run"
    );
}

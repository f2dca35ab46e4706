//! Booting the guest: the qemu fallback when User-mode Linux fails, the error when nothing
//! boots, and the refusal when not root.

use std::process::Command;

use super::{
    assert_nothing_left, assert_refusal, is_root, nfs_sh_failing, one_guest, text, workspace, RIG,
    XTASK,
};

/// The fallback: when User-mode Linux fails (forced), qemu boots instead, with the same mounts,
/// the same view of the host, and the failed attempt named.
#[test]
fn the_qemu_fallback_is_taken_when_uml_fails() {
    let _g = one_guest();
    let script = r#"echo "kernel=$(uname -r)"; grep -E ' nfs4? ' /proc/mounts | while read -r src dir fs opts rest; do echo "mount $dir $fs"; done; echo "cwd=$(pwd)"; echo hi > "$RACELAB_NFS3/f"; echo "B sees: $(cat "$RACELAB_NFS3B/f")"; exit 5"#;
    let out = nfs_sh_failing(script, "uml");
    if !is_root() {
        assert_refusal(&out);
        return;
    }
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(
        out.status.code(),
        Some(5),
        "the command's status comes back from qemu too\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stderr.contains("did not boot") && stderr.contains("forced to fail on purpose"),
        "the failed UML attempt is named:\n{stderr}"
    );
    assert!(
        stderr.contains("guest up in") && stderr.contains("qemu with TCG"),
        "qemu should have booted:\n{stderr}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("kernel=") && !l.starts_with("kernel=7.")),
        "a Debian 12 kernel, not UML's:\n{stdout}"
    );
    for m in [
        format!("mount {RIG}/nfs4 nfs4"),
        format!("mount {RIG}/nfs3 nfs"),
        format!("mount {RIG}/nfs3b nfs"),
    ] {
        assert!(stdout.lines().any(|l| l == m), "missing `{m}`:\n{stdout}");
    }
    assert!(
        stdout.contains(&format!("cwd={}", workspace().display())),
        "the host's files at the same paths:\n{stdout}"
    );
    assert!(
        stdout.contains("B sees: hi"),
        "client B reads what client A wrote:\n{stdout}"
    );
    assert_nothing_left();
}

/// No guest boots: exit 3, and the error names each attempt with its failing line.
#[test]
fn when_no_guest_boots_the_error_names_each_attempt_and_exits_3() {
    let _g = one_guest();
    let out = nfs_sh_failing("echo should-not-run", "uml,qemu");
    if !is_root() {
        assert_refusal(&out);
        return;
    }
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(
        out.status.code(),
        Some(3),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        !stdout.contains("should-not-run"),
        "the command must not have run:\n{stdout}"
    );
    let report: Vec<&str> = stderr
        .lines()
        .skip_while(|l| !l.contains("no NFS guest could boot"))
        .collect();
    assert!(
        report
            .iter()
            .any(|l| l.trim_start().starts_with("uml (User-mode Linux")
                && l.contains("forced to fail on purpose")),
        "the UML attempt and its line:\n{stderr}"
    );
    assert!(
        report.iter().any(
            |l| l.trim_start().starts_with("qemu (") && l.contains("forced to fail on purpose")
        ),
        "the qemu attempt and its line:\n{stderr}"
    );
    assert_nothing_left();
}

#[test]
fn not_root_is_refused_with_exit_3() {
    let out = if is_root() {
        // Drop to nobody for this one run.
        Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                XTASK,
                "nfs",
                "run",
                "--",
                "true",
            ])
            .current_dir("/")
            .output()
            .expect("setpriv runs")
    } else {
        Command::new(XTASK)
            .args(["nfs", "run", "--", "true"])
            .output()
            .expect("xtask runs")
    };
    assert_refusal(&out);
}

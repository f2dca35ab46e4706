//! Teardown after Ctrl-C and SIGKILL during a run: no guest process, no runtime files, nothing
//! left behind.

use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::{
    assert_nothing_left, assert_refusal, guest_processes, host_nfs_mounts, is_root, nfs_sh,
    one_guest, runtime_files_left, start_sleeping_run, wait_limited, RIG,
};

#[test]
fn sigint_during_a_run_leaves_no_guest_process_and_no_runtime_files() {
    let _g = one_guest();
    if !is_root() {
        assert_refusal(&nfs_sh("true"));
        return;
    }
    let mut child = start_sleeping_run("");
    // Mid-run: the guest is up with its three NFS mounts, and none of them is on the host.
    assert!(
        !guest_processes().is_empty(),
        "expected the guest's processes while the command runs"
    );
    assert!(
        host_nfs_mounts().is_empty(),
        "NFS mounted on the host: {:?}",
        host_nfs_mounts()
    );
    assert!(
        Path::new(RIG).join("cmd").exists(),
        "expected the command file while the command runs"
    );

    kill(
        Pid::from_raw(i32::try_from(child.id()).expect("pid")),
        Signal::SIGINT,
    )
    .expect("SIGINT delivered");
    let status = wait_limited(&mut child, Duration::from_secs(30));
    assert_eq!(
        status.code(),
        Some(130),
        "an interrupted run exits 128 + SIGINT"
    );
    assert_nothing_left();
    assert!(
        Path::new(RIG).join("uml72/uml/usr/bin/linux.uml").exists(),
        "the unpacked UML package is a cache and stays"
    );
}

/// SIGKILL gives the run no chance to clean up: its watchdog kills the guest (here the qemu
/// fallback, forced) and removes the runtime files, holding the rig's lock until it is done.
#[test]
fn sigkill_during_a_run_leaves_nothing_behind_either() {
    let _g = one_guest();
    if !is_root() {
        assert_refusal(&nfs_sh("true"));
        return;
    }
    let mut child = start_sleeping_run("uml");
    assert!(
        !guest_processes().is_empty(),
        "expected the guest's processes while the command runs"
    );
    child.kill().expect("SIGKILL delivered");
    let _ = child.wait();
    // The watchdog works asynchronously: give it a moment, then everything must be gone.
    let deadline = Instant::now() + Duration::from_secs(30);
    while (!guest_processes().is_empty() || !runtime_files_left().is_empty())
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_nothing_left();
}

//! A bootable guest, as the runner needs it: the program and its arguments, where the init finds the kernel's modules, and how to name it in messages and rows.

use std::ffi::OsString;
use std::path::PathBuf;

/// One way to boot an NFS guest on this host (User-mode Linux, or qemu with TCG).
#[derive(Debug, Clone)]
pub(crate) struct Machine {
    /// Short name, as `RACELAB_NFS_FAIL` and the failure report spell it: `uml`, `qemu`.
    pub name: &'static str,
    /// What it is, for messages and the rows' `env` (guest, kernel and how the host is shared).
    pub title: String,
    /// The host program that runs the guest.
    pub program: PathBuf,
    pub args: Vec<OsString>,
    /// `modprobe -d` root for the guest kernel's modules (`lib/modules/VERSION` under it).
    pub modules: PathBuf,
}

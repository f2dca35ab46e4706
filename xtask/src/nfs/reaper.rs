//! A watchdog process that cleans up after a run killed outright (SIGKILL): it kills the guest's process group and removes the rig's runtime files.
//!
//! A run cleans up after itself on every path it controls, Ctrl-C included. SIGKILL gives it no
//! chance, so each run starts a small `sh` watchdog in its own process group. The run tells it,
//! through a pipe on its stdin, the process group of the guest it started (`pgid N`), that the
//! guest is gone (`pgid -`), and finally that it finished cleanly (`done`). When the pipe closes
//! without `done`, the run died: the watchdog kills the guest's group and removes the runtime
//! files.
//!
//! The watchdog's stdout is the rig's lock file, the same open file description as the run's
//! lock, so the rig stays locked until the watchdog has finished: no next run can start in a
//! rig that is still being cleaned.

use std::fs::File;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};

use super::Error;

/// The running watchdog of one run.
pub(crate) struct Reaper {
    child: Child,
    pipe: Option<ChildStdin>,
}

/// The watchdog's script: `$@` are the runtime files (removed with rm -rf) and, after a `--`,
/// the mount-point directories (removed with rmdir: they are empty on the host).
const SCRIPT: &str = r#"g=-
while read -r what arg; do
  case $what in
    pgid) g=$arg ;;
    done) exit 0 ;;
  esac
done
[ "$g" != - ] && kill -s KILL -- "-$g" 2>/dev/null
sleep 0.5
files=1
for p; do
  if [ "$p" = -- ]; then files=; continue; fi
  if [ -n "$files" ]; then rm -rf -- "$p"; else rmdir -- "$p" 2>/dev/null; fi
done
exit 0
"#;

impl Reaper {
    /// Starts the watchdog, holding `lock` (a clone of the rig's locked file) as its stdout.
    pub fn start(lock: File, files: &[PathBuf], dirs: &[PathBuf]) -> Result<Reaper, Error> {
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c").arg(SCRIPT).arg("racelab-nfs-reaper");
        cmd.args(files).arg("--").args(dirs);
        // Its own process group: a terminal's Ctrl-C goes to the run, which cleans up itself.
        cmd.process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::from(lock))
            .stderr(Stdio::null());
        let mut child = cmd
            .spawn()
            .map_err(|e| Error::Io(format!("starting the clean-up watchdog (/bin/sh): {e}")))?;
        let pipe = child.stdin.take();
        Ok(Reaper { child, pipe })
    }

    /// Tells the watchdog which process group to kill should this process die.
    pub fn guard(&mut self, pgid: i32) {
        self.say(&format!("pgid {pgid}"));
    }

    /// The guest's group is gone (killed and reaped): nothing to kill any more.
    pub fn unguard(&mut self) {
        self.say("pgid -");
    }

    fn say(&mut self, line: &str) {
        if let Some(p) = self.pipe.as_mut() {
            let _ = writeln!(p, "{line}");
            let _ = p.flush();
        }
    }
}

impl Drop for Reaper {
    /// The run cleaned up itself: dismiss the watchdog and wait for it (it holds the lock).
    fn drop(&mut self) {
        self.say("done");
        self.pipe = None;
        let _ = self.child.wait();
    }
}

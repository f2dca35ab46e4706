//! One guest run: write the init script and the command file into the rig, boot `linux.uml`, stream its console, read the command's exit status, and tear down.

use std::ffi::{OsStr, OsString};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use super::setup::{Kernel, Rig};
use super::{Error, Options};

/// The init script's template; `@RIG@` becomes the rig's path, shell-quoted.
const INIT_TEMPLATE: &str = include_str!("guest-init.sh");

/// Console markers the init script prints (see guest-init.sh).
const BEGIN: &str = "racelab-nfs-begin";
const COMMAND: &str = "racelab-nfs-command";
const EXIT: &str = "racelab-nfs-exit=";
const SETUP_FAILED: &str = "racelab-nfs-setup-failed: ";

/// How many console lines to keep for an error message when the guest fails.
const KEEP_LINES: usize = 80;

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The command ran and exited with this status (a shell's: 128 + N when killed by signal N).
    Exited(i32),
    /// Ctrl-C/SIGTERM (this signal) stopped the run; the guest was killed and the rig cleaned.
    Interrupted(i32),
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct Run {
    pub ended: Ended,
    /// From starting `linux.uml` to the mounts being up; None when it never got there.
    pub boot: Option<Duration>,
    /// The guest's /proc/mounts lines for the three NFS mounts (the real mount options).
    pub mounts: Vec<String>,
}

impl Run {
    pub(crate) fn interrupted(sig: i32) -> Run {
        Run { ended: Ended::Interrupted(sig), boot: None, mounts: vec![] }
    }
}

/// The rig's runtime files: created for one run, removed when it ends, however it ends.
struct Runtime {
    init: PathBuf,
    cmd: PathBuf,
    umid: PathBuf,
    dirs: Vec<PathBuf>,
}

impl Runtime {
    fn new(rig: &Path) -> Runtime {
        Runtime {
            init: rig.join("init"),
            cmd: rig.join("cmd"),
            umid: rig.join("umid"),
            dirs: ["export", "nfs4", "nfs3", "nfs3b"].iter().map(|d| rig.join(d)).collect(),
        }
    }

    fn remove(&self) {
        for f in [&self.init, &self.cmd] {
            let _ = std::fs::remove_file(f);
        }
        // UML's own directory (pid file, mconsole socket): left behind when UML is killed.
        let _ = std::fs::remove_dir_all(&self.umid);
        for d in &self.dirs {
            // Only ever mount points inside the guest, so empty on the host. rmdir, not rm -r:
            // should one hold anything, it is not ours to delete, and the message says where.
            match std::fs::remove_dir(d) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => eprintln!("nfs: warning: could not remove {}: {e}", d.display()),
            }
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.remove();
    }
}

/// The UML process group: killed and waited for when dropped, so no error path leaves a
/// guest running.
struct Guest {
    child: Child,
    pgid: Pid,
}

impl Guest {
    fn stop(&mut self) {
        // UML runs as several host processes (the kernel and one per guest address space), all
        // in the group it was started as leader of. The leader is not reaped until after the
        // kill, so the group id cannot have been reused.
        let _ = killpg(self.pgid, Signal::SIGKILL);
        let _ = self.child.wait();
        let deadline = Instant::now() + Duration::from_secs(5);
        while killpg(self.pgid, None).is_ok() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What the console reader sees, line by line.
enum Line {
    Out(Vec<u8>),
    Err(String),
    OutClosed,
}

pub(crate) fn boot_and_run(rig: &Rig, kernel: &Kernel, opts: &Options, argv: &[OsString]) -> Result<Run, Error> {
    let io = |what: &str, path: &Path, e: std::io::Error| Error::Io(format!("{what} {}: {e}", path.display()));
    let rt = Runtime::new(&rig.dir);
    // Leftovers of a run that was killed outright (SIGKILL leaves no chance to clean up).
    rt.remove();
    std::fs::write(&rt.init, render_init(&rig.dir)).map_err(|e| io("writing", &rt.init, e))?;
    std::fs::set_permissions(&rt.init, std::fs::Permissions::from_mode(0o755)).map_err(|e| io("chmod", &rt.init, e))?;
    let env: Vec<(OsString, OsString)> = std::env::vars_os().collect();
    std::fs::write(&rt.cmd, render_cmd(&opts.cwd, &env, &opts.mounts(), argv)).map_err(|e| io("writing", &rt.cmd, e))?;

    let started = Instant::now();
    let mut cmd = Command::new(&kernel.binary);
    cmd.arg(format!("mem={}", opts.memory))
        .args(["root=/dev/root", "rootfstype=hostfs", "rootflags=/", "rw"])
        .arg(format!("init={}", rt.init.display()))
        // `quiet`: the boot log is kept for error messages, not shown.
        .arg("quiet")
        // The guest console on our pipes; no other consoles (UML would open xterms or ptys).
        .args(["con=null", "con0=fd:0,fd:1"])
        // UML's pid file and mconsole socket go into the rig, not ~/.uml.
        .arg(format!("uml_dir={}", rt.umid.display()))
        .arg("umid=racelab-nfs")
        // Our stdin stays open and silent: EOF on the console's input would hang it up.
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so it can be killed as a whole, and a terminal's Ctrl-C
        // reaches only us: we decide how the guest stops.
        .process_group(0);
    let child = cmd.spawn().map_err(|e| io("starting", &kernel.binary, e))?;
    let pgid = Pid::from_raw(i32::try_from(child.id()).unwrap_or(0));
    let mut guest = Guest { child, pgid };
    let (tx, rx) = mpsc::channel();
    let stdout = guest.child.stdout.take().ok_or_else(|| Error::Io("no stdout pipe for linux.uml".into()))?;
    let stderr = guest.child.stderr.take().ok_or_else(|| Error::Io("no stderr pipe for linux.uml".into()))?;
    let tx_out = tx.clone();
    std::thread::spawn(move || {
        let mut r = BufReader::new(stdout);
        let mut buf = Vec::new();
        while matches!(r.read_until(b'\n', &mut buf), Ok(n) if n > 0) {
            // The guest console is a tty: lines end in \r\n.
            while matches!(buf.last(), Some(b'\n' | b'\r')) {
                buf.pop();
            }
            if tx_out.send(Line::Out(std::mem::take(&mut buf))).is_err() {
                return;
            }
        }
        let _ = tx_out.send(Line::OutClosed);
    });
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = BufReader::new(stderr).read_to_string(&mut s);
        for l in s.lines() {
            let _ = tx.send(Line::Err(l.to_string()));
        }
    });

    let mut console: Vec<String> = Vec::new();
    let keep = |console: &mut Vec<String>, l: String| {
        console.push(l);
        if console.len() > KEEP_LINES {
            console.remove(0);
        }
    };
    let mut state = State::Booting;
    let mut boot = None;
    let mut mounts = Vec::new();
    let mut setup_failed: Option<String> = None;
    let mut status: Option<i32> = None;
    let mut exit_seen_at: Option<Instant> = None;
    let stdout = std::io::stdout();
    loop {
        if let Some(sig) = crate::signals::pending() {
            guest.stop();
            eprintln!("nfs: {} stopped the guest; the rig's runtime files are removed", crate::signals::name(sig));
            return Ok(Run { ended: Ended::Interrupted(sig), boot, mounts });
        }
        if state == State::Booting && started.elapsed() > opts.boot_timeout {
            guest.stop();
            return Err(Error::Guest { what: format!("the guest did not bring its NFS mounts up within {:?}; the console below says how far it got", opts.boot_timeout), console: console.join("\n") });
        }
        // After power-off UML may linger (it ends by SIGABRT); the status is known, so stop it.
        if exit_seen_at.is_some_and(|t| t.elapsed() > Duration::from_secs(10)) {
            break;
        }
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(Line::Out(bytes)) => {
                let text = String::from_utf8_lossy(&bytes).into_owned();
                match state {
                    State::Booting => {
                        if text == BEGIN {
                            state = State::Mounts;
                            let t = started.elapsed();
                            boot = Some(t);
                            eprintln!("nfs: guest up in {:.1}s (User-mode Linux {}, host root through hostfs)", t.as_secs_f64(), kernel.version);
                        } else if let Some(what) = text.strip_prefix(SETUP_FAILED) {
                            setup_failed = Some(what.to_string());
                        }
                        keep(&mut console, text);
                    }
                    State::Mounts | State::Command => {
                        if text == COMMAND {
                            state = State::Command;
                            continue;
                        }
                        if let Some(n) = text.strip_prefix(EXIT).and_then(|n| n.parse::<i32>().ok()) {
                            status = Some(n);
                            state = State::Done;
                            exit_seen_at = Some(Instant::now());
                            continue;
                        }
                        if state == State::Mounts && (text.contains(" nfs ") || text.contains(" nfs4 ")) {
                            mounts.push(text.clone());
                        }
                        let mut out = stdout.lock();
                        let _ = out.write_all(&bytes);
                        let _ = out.write_all(b"\n");
                        let _ = out.flush();
                    }
                    State::Done => keep(&mut console, text),
                }
            }
            Ok(Line::Err(l)) => keep(&mut console, l),
            Ok(Line::OutClosed) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    guest.stop();
    drop(rt);
    match (status, setup_failed) {
        (Some(n), _) => Ok(Run { ended: Ended::Exited(n), boot, mounts }),
        (None, Some(what)) => Err(Error::Guest { what: format!("setting up NFS in the guest failed: {what}"), console: console.join("\n") }),
        // UML saves and restores its processes' FPU state through ptrace with a fixed-size
        // buffer; on host kernels with a larger one (6.18 here) every guest process dies at once.
        (None, None) if state == State::Booting && console.iter().any(|l| l.contains("ptrace set fp regs failed")) => {
            let host = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
            Err(Error::HostUnsupported(format!(
                "User-mode Linux cannot run on this host kernel ({}): the guest's init died at boot with \"{}\", so there is no guest and no real NFS on this machine",
                host.trim(),
                console.iter().find(|l| l.contains("ptrace set fp regs failed")).map_or("", |l| l.trim())
            )))
        }
        (None, None) if state == State::Booting => Err(Error::Guest { what: "the guest stopped before its NFS mounts were up".into(), console: console.join("\n") }),
        (None, None) => Err(Error::Guest { what: "the guest stopped while the command was running, without reporting its exit status (did the guest kernel panic or run out of memory?)".into(), console: console.join("\n") }),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Kernel and init set-up: kept for error messages, not shown.
    Booting,
    /// The init's mount listing: shown, and collected.
    Mounts,
    /// The command's output: shown as is.
    Command,
    /// After the exit marker: power-off noise, kept.
    Done,
}

/// The init script for a rig: the template with the rig's path substituted.
pub(crate) fn render_init(rig: &Path) -> String {
    INIT_TEMPLATE.replace("@RIG@", &quote(rig.as_os_str()))
}

/// The command file the init runs with `sh`: the caller's directory and environment (plus the
/// mount variables), then the command itself. Passed as a file because the kernel command
/// line splits at spaces and is limited in length.
pub(crate) fn render_cmd(cwd: &Path, env: &[(OsString, OsString)], mounts: &super::Mounts, argv: &[OsString]) -> String {
    let mut s = String::from("# The command of one `cargo xtask nfs run`; removed when the run ends.\n");
    s.push_str(&format!("cd {} || exit 125\n", quote(cwd.as_os_str())));
    // `env -i`: exactly the caller's environment, not the guest init's (which holds kernel
    // command-line leftovers such as `mem=1G`).
    s.push_str("exec env -i");
    let ours = [("RACELAB_NFS4", &mounts.nfs4), ("RACELAB_NFS3", &mounts.nfs3), ("RACELAB_NFS3B", &mounts.nfs3b)];
    for (k, v) in env {
        let name = k.to_string_lossy();
        if !is_shell_name(&name) || ours.iter().any(|(o, _)| *o == name) || matches!(&*name, "PWD" | "OLDPWD" | "SHLVL" | "_") {
            continue;
        }
        s.push_str(" \\\n  ");
        s.push_str(&quote(&concat(k, v)));
    }
    for (k, v) in ours {
        s.push_str(" \\\n  ");
        s.push_str(&quote(&concat(OsStr::new(k), v.as_os_str())));
    }
    s.push_str(" \\\n ");
    for a in argv {
        s.push(' ');
        s.push_str(&quote(a));
    }
    s.push('\n');
    s
}

fn concat(k: &OsStr, v: &OsStr) -> OsString {
    let mut kv = k.to_os_string();
    kv.push("=");
    kv.push(v);
    kv
}

fn is_shell_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_') && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Single-quotes a word for sh: every byte is literal inside '...', and a ' is written '\''.
fn quote(s: &OsStr) -> String {
    let text = String::from_utf8_lossy(s.as_bytes());
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_spaces_quotes_and_dollars() {
        assert_eq!(quote(OsStr::new("a b")), "'a b'");
        assert_eq!(quote(OsStr::new("it's $HOME")), r"'it'\''s $HOME'");
    }

    #[test]
    fn the_command_file_sets_the_mounts_and_cwd_and_drops_shell_state() {
        let mounts = super::super::Mounts { nfs4: "/r/nfs4/racelab".into(), nfs3: "/r/nfs3/racelab".into(), nfs3b: "/r/nfs3b/racelab".into() };
        let env = vec![("PATH".into(), "/usr/bin".into()), ("PWD".into(), "/x".into()), ("BAD-NAME".into(), "1".into()), ("RACELAB_NFS3".into(), "/elsewhere".into())];
        let s = render_cmd(Path::new("/work dir"), &env, &mounts, &["sh".into(), "-c".into(), "echo 'hi'; exit 7".into()]);
        assert!(s.contains("cd '/work dir' || exit 125\n"), "{s}");
        assert!(s.contains("'PATH=/usr/bin'"), "{s}");
        assert!(s.contains("'RACELAB_NFS3=/r/nfs3/racelab'") && !s.contains("/elsewhere"), "{s}");
        assert!(s.contains("'RACELAB_NFS3B=/r/nfs3b/racelab'"), "{s}");
        assert!(!s.contains("PWD=") && !s.contains("BAD-NAME"), "{s}");
        assert!(s.trim_end().ends_with(r"'sh' '-c' 'echo '\''hi'\''; exit 7'"), "{s}");
    }

    #[test]
    fn the_init_script_names_the_rig_and_writes_no_host_config() {
        let s = render_init(Path::new("/tmp/rig"));
        assert!(s.contains("R='/tmp/rig'"));
        assert!(!s.contains("@RIG@"));
        assert!(s.contains("mount --bind /run/exports /etc/exports"));
        for marker in [BEGIN, COMMAND, EXIT, SETUP_FAILED.trim_end()] {
            assert!(s.contains(marker), "the init script no longer prints {marker}");
        }
    }
}

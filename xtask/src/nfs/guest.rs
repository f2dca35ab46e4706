//! One guest run: write the init script and the command file into the rig, boot the guest (User-mode Linux or qemu), stream its console, read the command's exit status, and tear down.

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

use super::machine::Machine;
use super::reaper::Reaper;
use super::setup::Rig;
use super::{Error, Options};

/// The init script's template: `@RIG@` becomes the rig's path and `@MODULES@` the guest
/// kernel's module root, shell-quoted; `@FORCE_FAIL@` a deliberate set-up failure or nothing.
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
    /// Which guest ran, and its kernel (e.g. "User-mode Linux 7.2.7 (...)"); empty when none.
    pub guest: String,
    /// Its short name (`uml`, `qemu`; [`super::GUESTS`]); empty when none.
    pub guest_name: &'static str,
}

impl Run {
    pub(crate) fn interrupted(sig: i32) -> Run {
        Run {
            ended: Ended::Interrupted(sig),
            boot: None,
            mounts: vec![],
            guest: String::new(),
            guest_name: "",
        }
    }
}

/// The rig's runtime files: created for one run, removed when it ends, however it ends.
pub(crate) struct Runtime {
    init: PathBuf,
    cmd: PathBuf,
    umid: PathBuf,
    dirs: Vec<PathBuf>,
}

impl Runtime {
    /// The runtime files (removed with their contents) and the mount-point directories
    /// (removed only when empty) of a run in `rig`, for the clean-up watchdog.
    pub(crate) fn paths(rig: &Path) -> (Vec<PathBuf>, Vec<PathBuf>) {
        let rt = Runtime::new(rig);
        (
            vec![rt.init.clone(), rt.cmd.clone(), rt.umid.clone()],
            rt.dirs.clone(),
        )
    }

    fn new(rig: &Path) -> Runtime {
        Runtime {
            init: rig.join("init"),
            cmd: rig.join("cmd"),
            umid: rig.join("umid"),
            dirs: ["export", "nfs4", "nfs3", "nfs3b", "nfs4b"]
                .iter()
                .map(|d| rig.join(d))
                .collect(),
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

/// Boots `machine`, runs `argv` in it and tears it down. A guest that fails before the
/// command starts is [`Error::Boot`] (the caller then tries the next guest); `force_fail` makes
/// the init fail on purpose at its first step, to exercise that path.
pub(crate) fn boot_and_run(
    rig: &Rig,
    machine: &Machine,
    opts: &Options,
    argv: &[OsString],
    force_fail: bool,
    reaper: &mut Reaper,
) -> Result<Run, Error> {
    let io = |what: &str, path: &Path, e: std::io::Error| {
        Error::Io(format!("{what} {}: {e}", path.display()))
    };
    let rt = Runtime::new(&rig.dir);
    // Leftovers of a run that was killed outright (SIGKILL leaves no chance to clean up).
    rt.remove();
    let force = force_fail.then(|| format!("RACELAB_NFS_FAIL names {}", machine.name));
    std::fs::write(
        &rt.init,
        render_init(&rig.dir, &machine.modules, force.as_deref()),
    )
    .map_err(|e| io("writing", &rt.init, e))?;
    std::fs::set_permissions(&rt.init, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| io("chmod", &rt.init, e))?;
    let env: Vec<(OsString, OsString)> = std::env::vars_os().collect();
    std::fs::write(&rt.cmd, render_cmd(&opts.cwd, &env, &opts.mounts(), argv))
        .map_err(|e| io("writing", &rt.cmd, e))?;

    // The command's output: standard output, or the file run-scenarios reads back later.
    let mut sink: Box<dyn Write> = match &opts.output {
        None => Box::new(std::io::stdout()),
        Some(path) => Box::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| io("opening", path, e))?,
        ),
    };
    let started = Instant::now();
    let mut cmd = Command::new(&machine.program);
    cmd.args(&machine.args)
        // Our stdin stays open and silent: EOF on the console's input would hang it up.
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so it can be killed as a whole, and a terminal's Ctrl-C
        // reaches only us: we decide how the guest stops.
        .process_group(0);
    let child = cmd.spawn().map_err(|e| Error::Boot {
        failing_line: format!("starting {}: {e}", machine.program.display()),
        what: format!("could not start {}", machine.program.display()),
        console: String::new(),
    })?;
    let pgid = Pid::from_raw(i32::try_from(child.id()).unwrap_or(0));
    reaper.guard(pgid.as_raw());
    let mut guest = Guest { child, pgid };
    let (tx, rx) = mpsc::channel();
    let stdout = guest
        .child
        .stdout
        .take()
        .ok_or_else(|| Error::Io("no stdout pipe for the guest".into()))?;
    let stderr = guest
        .child
        .stderr
        .take()
        .ok_or_else(|| Error::Io("no stderr pipe for the guest".into()))?;
    let tx_out = tx.clone();
    std::thread::spawn(move || {
        let mut r = BufReader::new(stdout);
        let mut buf = Vec::new();
        while matches!(r.read_until(b'\n', &mut buf), Ok(n) if n > 0) {
            // The guest console is a tty (lines end in \r\n), and qemu's firmware writes
            // terminal control sequences before the kernel's first line.
            let line = strip_terminal_codes(&buf);
            buf.clear();
            if tx_out.send(Line::Out(line)).is_err() {
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
    loop {
        if let Some(sig) = opts.stop_requested() {
            guest.stop();
            reaper.unguard();
            eprintln!(
                "nfs: {} stopped the guest; the rig's runtime files are removed",
                crate::signals::name(sig)
            );
            return Ok(Run {
                ended: Ended::Interrupted(sig),
                boot,
                mounts,
                guest: machine.title.clone(),
                guest_name: machine.name,
            });
        }
        if state == State::Booting && started.elapsed() > opts.boot_timeout {
            guest.stop();
            reaper.unguard();
            let what = format!(
                "the guest did not bring its NFS mounts up within {:?}",
                opts.boot_timeout
            );
            let failing_line = setup_failed
                .clone()
                .or_else(|| failing_line(&console))
                .map_or_else(|| what.clone(), |l| format!("{what}; last: {l}"));
            return Err(Error::Boot {
                failing_line,
                what: format!("{what}; the console below says how far it got"),
                console: console.join("\n"),
            });
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
                        // qemu's firmware may leave its last words on the line the guest's
                        // first marker lands on ("Booting from ROM..racelab-nfs-begin").
                        if text.ends_with(BEGIN) {
                            state = State::Mounts;
                            let t = started.elapsed();
                            boot = Some(t);
                            eprintln!(
                                "nfs: guest up in {:.1}s ({})",
                                t.as_secs_f64(),
                                machine.title
                            );
                        } else if let Some(at) = text.find(SETUP_FAILED) {
                            setup_failed = Some(text[at + SETUP_FAILED.len()..].to_string());
                        }
                        keep(&mut console, text);
                    }
                    State::Mounts | State::Command => {
                        if text == COMMAND {
                            state = State::Command;
                            continue;
                        }
                        if let Some(n) = text.strip_prefix(EXIT).and_then(|n| n.parse::<i32>().ok())
                        {
                            status = Some(n);
                            state = State::Done;
                            exit_seen_at = Some(Instant::now());
                            continue;
                        }
                        if state == State::Mounts
                            && (text.contains(" nfs ") || text.contains(" nfs4 "))
                        {
                            mounts.push(text.clone());
                        }
                        let _ = sink.write_all(&bytes);
                        let _ = sink.write_all(b"\n");
                        let _ = sink.flush();
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
    reaper.unguard();
    drop(rt);
    let guest_name = machine.title.clone();
    match (status, setup_failed) {
        (Some(n), _) => Ok(Run { ended: Ended::Exited(n), boot, mounts, guest: guest_name, guest_name: machine.name }),
        (None, Some(what)) if state == State::Booting => Err(Error::Boot { failing_line: what.clone(), what: format!("setting up NFS in the guest failed: {what}"), console: console.join("\n") }),
        (None, _) if state == State::Booting => {
            // E.g. UML 6.1 on hosts with AVX-512: "userspace - ptrace set fp regs failed, errno = 14".
            let failing_line = failing_line(&console).unwrap_or_else(|| "the guest stopped before its NFS mounts were up (no console line says why)".into());
            Err(Error::Boot { failing_line, what: "the guest stopped before its NFS mounts were up".into(), console: console.join("\n") })
        }
        (None, _) => Err(Error::Guest { what: "the guest stopped while the command was running, without reporting its exit status (did the guest kernel panic or run out of memory?)".into(), console: console.join("\n") }),
    }
}

/// The console line that best says why a boot failed: the last one that reports a failure or a
/// panic, leaving out UML's harmless complaints about devices it was not given.
fn failing_line(console: &[String]) -> Option<String> {
    let noise =
        |l: &str| l.contains("find_iomem") || l.contains("ubd device") || l.contains("epollctl");
    let bad = |l: &str| {
        let l = l.to_ascii_lowercase();
        l.contains("failed")
            || l.contains("panic")
            || l.contains("error")
            || l.contains("cannot")
            || l.contains("unable")
    };
    console
        .iter()
        .rev()
        .find(|l| bad(l) && !noise(l))
        .or_else(|| console.last())
        .map(|l| l.trim().to_string())
}

/// A console line without its line ending and terminal control sequences (ESC c, ESC [ ... X).
fn strip_terminal_codes(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            0x1b if raw.get(i + 1) == Some(&b'[') => {
                i += 2;
                while i < raw.len() && !raw[i].is_ascii_alphabetic() {
                    i += 1;
                }
                i += 1;
            }
            0x1b => i += 2,
            b'\r' | b'\n' => i += 1,
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
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

/// The init script for a rig: the template with the rig's path and the guest kernel's module
/// root substituted, and with a deliberate failure at its first step when `force_fail` says why.
pub(crate) fn render_init(rig: &Path, modules: &Path, force_fail: Option<&str>) -> String {
    let force = force_fail.map_or_else(String::new, |why| {
        format!(
            "fail {}",
            quote(OsStr::new(&format!("forced to fail on purpose ({why})")))
        )
    });
    INIT_TEMPLATE
        .replace("@RIG@", &quote(rig.as_os_str()))
        .replace("@MODULES@", &quote(modules.as_os_str()))
        .replace("@FORCE_FAIL@", &force)
}

/// The command file the init runs with `sh`: the caller's directory and environment (plus the
/// mount variables), then the command itself. Passed as a file because the kernel command
/// line splits at spaces and is limited in length.
pub(crate) fn render_cmd(
    cwd: &Path,
    env: &[(OsString, OsString)],
    mounts: &super::Mounts,
    argv: &[OsString],
) -> String {
    let mut s =
        String::from("# The command of one `cargo xtask nfs run`; removed when the run ends.\n");
    s.push_str(&format!("cd {} || exit 125\n", quote(cwd.as_os_str())));
    // `env -i`: exactly the caller's environment, not the guest init's (which holds kernel
    // command-line leftovers such as `mem=1G`).
    s.push_str("exec env -i");
    let ours = [
        ("RACELAB_NFS4", &mounts.nfs4),
        ("RACELAB_NFS3", &mounts.nfs3),
        ("RACELAB_NFS3B", &mounts.nfs3b),
        ("RACELAB_NFS4B", &mounts.nfs4b),
    ];
    for (k, v) in env {
        let name = k.to_string_lossy();
        if !is_shell_name(&name)
            || ours.iter().any(|(o, _)| *o == name)
            || matches!(&*name, "PWD" | "OLDPWD" | "SHLVL" | "_")
        {
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
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
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
    fn terminal_codes_and_line_ends_are_stripped_from_console_lines() {
        assert_eq!(
            strip_terminal_codes(b"\x1bc\x1b[?7l\x1b[2Jracelab-nfs-begin\r\n"),
            b"racelab-nfs-begin"
        );
        assert_eq!(strip_terminal_codes(b"plain"), b"plain");
    }

    #[test]
    fn the_failing_line_is_the_last_failure_not_device_noise() {
        let console: Vec<String> = [
            "Failed to initialize ubd device 0",
            "userspace - ptrace set fp regs failed, errno = 14",
            "Aborted",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            failing_line(&console).as_deref(),
            Some("userspace - ptrace set fp regs failed, errno = 14")
        );
    }

    #[test]
    fn quoting_survives_spaces_quotes_and_dollars() {
        assert_eq!(quote(OsStr::new("a b")), "'a b'");
        assert_eq!(quote(OsStr::new("it's $HOME")), r"'it'\''s $HOME'");
    }

    #[test]
    fn the_command_file_sets_the_mounts_and_cwd_and_drops_shell_state() {
        let mounts = super::super::Mounts {
            nfs4: "/r/nfs4/racelab".into(),
            nfs3: "/r/nfs3/racelab".into(),
            nfs3b: "/r/nfs3b/racelab".into(),
            nfs4b: "/r/nfs4b/racelab".into(),
        };
        let env = vec![
            ("PATH".into(), "/usr/bin".into()),
            ("PWD".into(), "/x".into()),
            ("BAD-NAME".into(), "1".into()),
            ("RACELAB_NFS3".into(), "/elsewhere".into()),
        ];
        let s = render_cmd(
            Path::new("/work dir"),
            &env,
            &mounts,
            &["sh".into(), "-c".into(), "echo 'hi'; exit 7".into()],
        );
        assert!(s.contains("cd '/work dir' || exit 125\n"), "{s}");
        assert!(s.contains("'PATH=/usr/bin'"), "{s}");
        assert!(
            s.contains("'RACELAB_NFS3=/r/nfs3/racelab'") && !s.contains("/elsewhere"),
            "{s}"
        );
        assert!(s.contains("'RACELAB_NFS3B=/r/nfs3b/racelab'"), "{s}");
        assert!(!s.contains("PWD=") && !s.contains("BAD-NAME"), "{s}");
        assert!(
            s.trim_end()
                .ends_with(r"'sh' '-c' 'echo '\''hi'\''; exit 7'"),
            "{s}"
        );
    }

    #[test]
    fn the_init_script_names_the_rig_and_writes_no_host_config() {
        let s = render_init(
            Path::new("/tmp/rig"),
            Path::new("/tmp/rig/uml72/mods"),
            None,
        );
        assert!(s.contains("R='/tmp/rig'"));
        assert!(s.contains("M='/tmp/rig/uml72/mods'"));
        assert!(!s.contains('@'), "a placeholder was left: {s}");
        assert!(!s.contains("forced to fail"));
        let forced = render_init(
            Path::new("/tmp/rig"),
            Path::new("/m"),
            Some("RACELAB_NFS_FAIL names uml"),
        );
        assert!(
            forced.contains("fail 'forced to fail on purpose (RACELAB_NFS_FAIL names uml)'"),
            "{forced}"
        );
        assert!(s.contains("mount --bind /run/exports /etc/exports"));
        for marker in [BEGIN, COMMAND, EXIT, SETUP_FAILED.trim_end()] {
            assert!(
                s.contains(marker),
                "the init script no longer prints {marker}"
            );
        }
    }
}

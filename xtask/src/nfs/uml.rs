//! The first guest: User-mode Linux 7.2 in `seccomp=on` mode, from Debian's unstable suite through a private apt configuration, run with trixie's glibc.
//!
//! Debian 12's UML 6.1 (and 13's 6.12) assume the 832-byte xsave area of an AVX2 CPU: on hosts
//! with AVX-512 or AMX their ptrace FP-register write fails (`ptrace set fp regs failed, errno =
//! 14`) and the guest's init dies at boot. UML 7.2 sizes the FP state from the host at run time,
//! and with `seccomp=on` it does not ptrace the guest's processes at all. Measured on an
//! AVX-512/AMX host with kernel 6.18: the whole `nfs run -- true` takes about 2 s.
//!
//! The package lives only in Debian's unstable suite and needs glibc >= 2.38 (Debian 12 has
//! 2.36). So the rig gets its own apt configuration (`apt/`: a sources list naming the host's
//! Debian archive with the suites `trixie` and `sid`, its own package lists and cache; the host's
//! sources are never touched), downloads `user-mode-linux` and trixie's `libc6`, unpacks both
//! into `uml72/`, and points the binary at that libc with patchelf (interpreter and RUNPATH).
//! Running it through `ld.so --library-path` instead does not work: UML re-executes
//! `/proc/self/exe` at start and sizes its memory map from where the program was loaded.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use super::machine::Machine;
use super::setup::{self, Rig};
use super::Error;

/// Where the rig keeps the unpacked UML and its glibc.
const CACHE: &str = "uml72";
/// The version this was measured with; the newest one in unstable is taken when it has moved on.
const WANTED: &str = "user-mode-linux=7.2um1";

/// The host tools this guest's set-up needs beyond the common ones.
const TOOLS: &[(&str, &str)] = &[("/usr/bin/patchelf", "patchelf")];

/// The guest for `rig`, installing it into the rig's cache first if needed.
pub(crate) fn machine(rig: &Rig, memory: &str) -> Result<Machine, Error> {
    let cache = rig.dir.join(CACHE);
    if kernel_version(&cache).is_none() || !cache.join("uml/usr/bin/linux.uml").is_file() {
        install(rig, &cache)?;
    }
    let version = kernel_version(&cache).ok_or_else(|| {
        Error::Setup(format!(
            "{} has no usr/lib/uml/modules/VERSION; remove {} and run again",
            cache.join("uml").display(),
            cache.display()
        ))
    })?;
    let package = std::fs::read_to_string(cache.join("package-version"))
        .unwrap_or_default()
        .trim()
        .to_string();
    let umid = rig.dir.join("umid");
    let args: Vec<OsString> = vec![
        format!("mem={memory}").into(),
        "root=/dev/root".into(),
        "rootfstype=hostfs".into(),
        "rootflags=/".into(),
        "rw".into(),
        // Guest processes are not ptraced: no FP-register transfer that depends on the host CPU.
        "seccomp=on".into(),
        format!("init={}", rig.dir.join("init").display()).into(),
        // `quiet`: the boot log is kept for error messages, not shown.
        "quiet".into(),
        // The guest console on our pipes; no other consoles (UML would open xterms or ptys).
        "con=null".into(),
        "con0=fd:0,fd:1".into(),
        // UML's pid file and mconsole socket go into the rig, not ~/.uml.
        format!("uml_dir={}", umid.display()).into(),
        "umid=racelab-nfs".into(),
    ];
    Ok(Machine {
        name: "uml",
        title: format!("User-mode Linux {version} (Debian user-mode-linux {package}, seccomp mode, host root through hostfs)"),
        program: cache.join("uml/usr/bin/linux.uml"),
        args,
        modules: cache.join("mods"),
    })
}

/// The kernel version the unpacked package carries its modules for.
fn kernel_version(cache: &Path) -> Option<String> {
    std::fs::read_dir(cache.join("uml/usr/lib/uml/modules"))
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.chars().next().is_some_and(|c| c.is_ascii_digit()))
}

/// Downloads `user-mode-linux` (unstable) and `libc6` (trixie) with the rig's private apt
/// configuration, unpacks them into `uml72.partial/`, patches the binary to use that libc, adds
/// the modules link `modprobe -d` needs, and only then renames the tree to `uml72/`.
fn install(rig: &Rig, cache: &Path) -> Result<(), Error> {
    setup::ensure_host_packages(TOOLS)?;
    let t = Instant::now();
    eprintln!("nfs: fetching Debian's user-mode-linux 7.2 (unstable) and trixie's glibc into {} (once; later runs reuse it)", cache.display());
    let apt = PrivateApt::new(&rig.dir.join("apt"))?;
    let partial = rig.dir.join(format!("{CACHE}.partial"));
    let _ = std::fs::remove_dir_all(&partial);
    let debs = partial.join("debs");
    std::fs::create_dir_all(&debs)
        .map_err(|e| Error::Setup(format!("creating {}: {e}", debs.display())))?;
    apt.update()?;
    if apt.download(&debs, &[WANTED]).is_err() {
        apt.download(&debs, &["user-mode-linux/sid"])?;
    }
    apt.download(&debs, &["libc6/trixie"])?;
    let uml_deb = setup::find_deb(&debs, "user-mode-linux")?;
    setup::unpack(&uml_deb, &partial.join("uml"))?;
    setup::unpack(&setup::find_deb(&debs, "libc6")?, &partial.join("libc"))?;
    let package = uml_deb
        .file_name()
        .map(|n| {
            n.to_string_lossy()
                .split('_')
                .nth(1)
                .unwrap_or("")
                .to_string()
        })
        .unwrap_or_default();
    let _ = std::fs::write(partial.join("package-version"), format!("{package}\n"));
    // The final paths: the binary is run only after the rename below.
    let libdir = cache.join("libc/usr/lib/x86_64-linux-gnu");
    let mut patch = Command::new("patchelf");
    patch
        .arg("--set-interpreter")
        .arg(libdir.join("ld-linux-x86-64.so.2"))
        .arg("--set-rpath")
        .arg(&libdir)
        .arg(partial.join("uml/usr/bin/linux.uml"));
    setup::run_tool(&mut patch, "patchelf linux.uml")?;
    let version = kernel_version(&partial).ok_or_else(|| {
        Error::Setup("the user-mode-linux package has no usr/lib/uml/modules/VERSION".into())
    })?;
    // `modprobe -d DIR` looks in DIR/lib/modules/VERSION; the package has them elsewhere.
    let link_dir = partial.join("mods/lib/modules");
    std::fs::create_dir_all(&link_dir)
        .map_err(|e| Error::Setup(format!("creating {}: {e}", link_dir.display())))?;
    std::os::unix::fs::symlink(
        cache.join("uml/usr/lib/uml/modules").join(&version),
        link_dir.join(&version),
    )
    .map_err(|e| Error::Setup(format!("linking the modules: {e}")))?;
    let _ = std::fs::remove_dir_all(&debs);
    setup::commit(&partial, cache)?;
    eprintln!(
        "nfs: user-mode-linux {package} (kernel {version}) unpacked in {:.1}s",
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

/// An apt configuration of the rig's own: its sources list, package lists and cache, so adding
/// Debian's unstable suite never touches the host's apt.
struct PrivateApt {
    options: Vec<String>,
}

impl PrivateApt {
    fn new(dir: &Path) -> Result<PrivateApt, Error> {
        let mk = |p: PathBuf| {
            std::fs::create_dir_all(&p)
                .map_err(|e| Error::Setup(format!("creating {}: {e}", p.display())))
        };
        mk(dir.join("lists/partial"))?;
        mk(dir.join("cache/archives/partial"))?;
        let archive = host_debian_archive()?;
        let sources = dir.join("sources.list");
        let keyring = "/usr/share/keyrings/debian-archive-keyring.gpg";
        let text = format!("# racelab's private apt sources for the NFS guest (the host's sources are untouched)\ndeb [signed-by={keyring}] {archive} trixie main\ndeb [signed-by={keyring}] {archive} sid main\n");
        std::fs::write(&sources, text)
            .map_err(|e| Error::Setup(format!("writing {}: {e}", sources.display())))?;
        let d = dir.display();
        let options = vec![
            format!("Dir::Etc::SourceList={}", sources.display()),
            "Dir::Etc::SourceParts=/dev/null".into(),
            "Dir::Etc::Preferences=/dev/null".into(),
            "Dir::Etc::PreferencesParts=/dev/null".into(),
            format!("Dir::State::Lists={d}/lists"),
            format!("Dir::Cache={d}/cache"),
            // Nothing is installed through this configuration: no host package state is needed.
            "Dir::State::Status=/dev/null".into(),
            "APT::Sandbox::User=root".into(),
        ];
        Ok(PrivateApt { options })
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new("apt-get");
        for o in &self.options {
            cmd.args(["-o", o]);
        }
        cmd.env("DEBIAN_FRONTEND", "noninteractive");
        cmd
    }

    fn update(&self) -> Result<(), Error> {
        setup::run_tool(
            self.command().args(["update", "-qq"]),
            "apt-get update (the rig's private trixie+sid sources)",
        )
    }

    fn download(&self, dir: &Path, what: &[&str]) -> Result<(), Error> {
        setup::run_tool(
            self.command()
                .args(["download", "-qq"])
                .args(what)
                .current_dir(dir),
            &format!("apt-get download {} (private sources)", what.join(" ")),
        )
    }
}

/// The Debian archive the host's apt uses for its own release (the entry with a plain release
/// suite, not -security): the private configuration asks the same archive for trixie and sid.
fn host_debian_archive() -> Result<String, Error> {
    let mut texts: Vec<String> = Vec::new();
    if let Ok(t) = std::fs::read_to_string("/etc/apt/sources.list") {
        texts.push(t);
    }
    if let Ok(dir) = std::fs::read_dir("/etc/apt/sources.list.d") {
        for e in dir.filter_map(Result::ok) {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "sources" || x == "list") {
                if let Ok(t) = std::fs::read_to_string(&p) {
                    texts.push(t);
                }
            }
        }
    }
    texts.iter().find_map(|t| archive_in(t)).ok_or_else(|| Error::Setup("found no Debian archive in the host's apt sources (/etc/apt/sources.list, /etc/apt/sources.list.d/*.sources): the NFS guest's packages come from it".into()))
}

/// The first Debian archive URI in one sources file (one-line or deb822 format) whose suites
/// include a plain release name (bookworm, trixie, ...).
fn archive_in(text: &str) -> Option<String> {
    let plain = |suite: &str| !suite.is_empty() && suite.chars().all(|c| c.is_ascii_lowercase());
    // One-line format: `deb [options] URI SUITE COMPONENTS...`.
    for line in text.lines().map(str::trim) {
        let mut words = line.split_whitespace();
        if words.next() != Some("deb") {
            continue;
        }
        let mut rest: Vec<&str> = words.collect();
        if rest.first().is_some_and(|w| w.starts_with('[')) {
            let end = rest.iter().position(|w| w.ends_with(']')).unwrap_or(0);
            rest.drain(..=end);
        }
        if let [uri, suite, ..] = rest[..] {
            let uri = uri.trim_end_matches('/');
            if uri.ends_with("/debian") && plain(suite) {
                return Some(uri.to_string());
            }
        }
    }
    // deb822 format: stanzas separated by blank lines, with `URIs:` and `Suites:` fields.
    for stanza in text.split("\n\n") {
        let field = |name: &str| {
            stanza
                .lines()
                .find_map(|l| l.strip_prefix(name).map(str::trim))
                .unwrap_or("")
        };
        if !field("Types:").split_whitespace().any(|t| t == "deb") {
            continue;
        }
        let uri = field("URIs:")
            .split_whitespace()
            .find(|u| u.trim_end_matches('/').ends_with("/debian"));
        if let (Some(uri), true) = (uri, field("Suites:").split_whitespace().any(plain)) {
            return Some(uri.trim_end_matches('/').to_string());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::archive_in;

    #[test]
    fn the_host_archive_is_found_in_either_sources_format_and_security_is_not_it() {
        let deb822 = "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\nComponents: main\n\nTypes: deb\n# a comment\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\n";
        assert_eq!(
            archive_in(deb822).as_deref(),
            Some("http://mirror.example/debian")
        );
        let one_line = "deb http://mirror.example/debian-security bookworm-security main\ndeb [arch=amd64 signed-by=/k.gpg] http://mirror.example/debian/ bookworm main\n";
        assert_eq!(
            archive_in(one_line).as_deref(),
            Some("http://mirror.example/debian")
        );
        assert_eq!(
            archive_in("deb https://elsewhere.example/apt cloud-sdk main\n"),
            None
        );
    }
}

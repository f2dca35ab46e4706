//! `cargo xtask bench-locks`: run the lock benchmarks (`crates/locks/benches/locks.rs`) on every
//! filesystem this machine can provide, measure flufl.lock beside LinkLock, and write
//! `target/bench-locks/report.md`, SVG charts (throughput and p99 wait per strategy and
//! filesystem) and criterion's HTML (`target/bench-locks/criterion/report/index.html`).
//!
//! Filesystems: a temp dir always; as root also the matrix of [`xtask::fs_matrix`] (tmpfs, ext4,
//! xfs, btrfs, overlayfs), torn down after, and NFS: the same benchmark binary runs inside the
//! NFS guest (`cargo xtask nfs run`) on its nfs3 and nfs4 mounts, each strategy against its floor
//! measured there (a guest's system calls cost more than the host's: only the guest's own floor
//! is a fair yardstick). CI does not run this task (about 10 minutes on the full matrix);
//! `--quick` (temp dir, contention 1 and 4, about 2 minutes; `--nfs` adds NFS) is for a quick
//! look.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use plotters::prelude::*;
use xtask::fs_matrix::{Matrix, Options};

const STRATEGIES: [&str; 7] = ["link", "excl", "mkdir", "flock", "fcntl", "ofd", "mutex"];

/// One measured cell: a strategy on a filesystem with `owners` threads or processes.
struct Cell {
    cycles_per_s: f64,
    waits: Option<Waits>,
}

#[derive(serde::Deserialize, Clone, Copy)]
struct Waits {
    p50_ns: u64,
    p99_ns: u64,
    max_ns: u64,
}

pub fn run(args: &[String]) -> Result<u8> {
    let mut quick = false;
    let mut matrix_wanted = true;
    let mut nfs_wanted: Option<bool> = None;
    for a in args {
        match a.as_str() {
            "--quick" => {
                quick = true;
                matrix_wanted = false;
            }
            "--no-matrix" => matrix_wanted = false,
            "--nfs" => nfs_wanted = Some(true),
            "--no-nfs" => nfs_wanted = Some(false),
            other => bail!("unknown option `{other}` for bench-locks; options: --quick (temp dir, contention 1 and 4), --no-matrix, --nfs / --no-nfs (nfs3 and nfs4 in the NFS guest; on by default without --quick)"),
        }
    }
    let nfs_wanted = nfs_wanted.unwrap_or(!quick);
    let root = crate::root();
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let out = target.join("bench-locks");
    // Results of an earlier run must not mix into this report.
    for stale in ["raw", "criterion"] {
        let p = out.join(stale);
        if p.exists() {
            std::fs::remove_dir_all(&p)
                .with_context(|| format!("removing the previous run's {}", p.display()))?;
        }
    }
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;

    let temp = tempfile::Builder::new()
        .prefix("racelab-bench-locks-")
        .tempdir()
        .context("creating a temp dir to benchmark in (set TMPDIR)")?;
    let mut dirs = vec![("tempdir".to_string(), temp.path().to_path_buf())];
    let mut notes = Vec::new();
    let mut matrix = None;
    if matrix_wanted {
        if nix::unistd::Uid::effective().is_root() {
            xtask::signals::install()?;
            match Matrix::up(&Options::default()) {
                Ok(m) => {
                    for e in m.entries() {
                        match &e.skipped {
                            None => dirs.push((e.name.clone(), e.dir.clone())),
                            Some(why) => notes.push(format!(
                                "{}: skipped: {}",
                                e.name,
                                why.replace('\n', " ")
                            )),
                        }
                    }
                    matrix = Some(m);
                }
                Err(e) => notes.push(format!("filesystem matrix unavailable: {e}")),
            }
        } else {
            notes.push("tmpfs, ext4, xfs, btrfs, overlay: not measured (not root; run as root for the filesystem matrix)".into());
        }
    }

    let list = dirs
        .iter()
        .map(|(n, d)| format!("{n}={}", d.display()))
        .collect::<Vec<_>>()
        .join(",");
    println!("benchmarking locks on: {list}");
    build_racelab_for_bench(&root)?;
    let status = Command::new(env!("CARGO"))
        .args([
            "bench",
            "--quiet",
            "--package",
            "racelab-locks",
            "--bench",
            "locks",
        ])
        .current_dir(&root)
        .env("RACELAB_BENCH_LOCKS_DIRS", &list)
        .env("RACELAB_BENCH_LOCKS_QUICK", if quick { "1" } else { "0" })
        .env("RACELAB_BENCH_LOCKS_OUT", out.join("raw"))
        .env("CRITERION_HOME", out.join("criterion"))
        .status()
        .context("running cargo bench")?;
    // flufl.lock is measured on the temp dir before the matrix goes down.
    let flufl = flufl_ratio(&root, &target, temp.path());
    let mut nfs_fss = Vec::new();
    if !nfs_wanted {
        notes.push("nfs3, nfs4: not measured (--quick without --nfs, or --no-nfs)".into());
    } else if xtask::signals::pending().is_none() {
        match bench_on_nfs(&root, &out, quick) {
            Ok(guest) => {
                notes.push(format!(
                    "nfs3, nfs4: measured inside the NFS guest, {guest}"
                ));
                nfs_fss = vec!["nfs3".to_string(), "nfs4".to_string()];
            }
            Err(why) => notes.push(format!("nfs3, nfs4: not measured: {why}")),
        }
    }
    if let Some(m) = matrix {
        let report = m
            .down()
            .map_err(|e| anyhow::anyhow!("tearing down the filesystem matrix: {e}"))?;
        if !report.is_clean() {
            eprintln!(
                "warning: the filesystem matrix did not tear down cleanly: {:?}",
                report.problems
            );
        }
    }
    drop(temp);
    if !status.success() {
        bail!("the lock benchmarks failed ({status}); see the output above");
    }

    let cells = collect(&out)?;
    let mut fss: Vec<String> = dirs.iter().map(|(n, _)| n.clone()).collect();
    fss.extend(nfs_fss);
    let md = render_markdown(&fss, &cells, &flufl, &notes);
    std::fs::write(out.join("report.md"), &md)
        .with_context(|| format!("writing {}", out.join("report.md").display()))?;
    for fs in &fss {
        chart(
            &out.join(format!("throughput-{fs}.svg")),
            fs,
            &cells,
            "acquire+release cycles/s",
            |c| Some(c.cycles_per_s),
        )?;
        chart(
            &out.join(format!("p99-wait-{fs}.svg")),
            fs,
            &cells,
            "p99 wait for the lock (µs)",
            |c| c.waits.map(|w| w.p99_ns as f64 / 1e3),
        )?;
    }
    println!("{md}");
    println!(
        "wrote {} (+ SVG charts; criterion's HTML in {})",
        out.join("report.md").display(),
        out.join("criterion/report/index.html").display()
    );
    Ok(0)
}

/// Runs the lock benchmark inside the NFS guest on its nfs3 and nfs4 mounts (criterion's results
/// beside the host's, the wait percentiles in `raw-nfs/`). Returns which guest ran it.
fn bench_on_nfs(root: &Path, out: &Path, quick: bool) -> Result<String, String> {
    if !nix::unistd::Uid::effective().is_root() {
        return Err("not root (the NFS guest needs root)".into());
    }
    let exe = bench_executable(root)?;
    let raw = out.join("raw-nfs");
    let _ = std::fs::remove_dir_all(&raw);
    let script = format!(
        "RACELAB_BENCH_LOCKS_DIRS=nfs3=$RACELAB_NFS3,nfs4=$RACELAB_NFS4 RACELAB_BENCH_LOCKS_QUICK={} RACELAB_BENCH_LOCKS_OUT='{}' CRITERION_HOME='{}' '{}' --bench",
        if quick { 1 } else { 0 },
        raw.display(),
        out.join("criterion").display(),
        exe.display()
    );
    let mut opts = xtask::nfs::Options::new();
    opts.cwd = root.to_path_buf();
    println!("benchmarking locks on nfs3 and nfs4 inside the NFS guest");
    let run = xtask::nfs::run_adapted(&opts, &|_| {
        vec!["sh".into(), "-c".into(), script.clone().into()]
    })
    .map_err(|e| e.to_string().lines().next().unwrap_or_default().to_string())?;
    match run.ended {
        xtask::nfs::Ended::Exited(0) => Ok(run.guest),
        xtask::nfs::Ended::Exited(n) => {
            Err(format!("the benchmark exited with {n} in {}", run.guest))
        }
        xtask::nfs::Ended::Interrupted(sig) => {
            Err(format!("interrupted by {}", xtask::signals::name(sig)))
        }
    }
}

/// The benchmark's process owners are `racelab __lockbench` processes, and the `racelab`
/// package is above `racelab-locks`: build its binary into the bench profile's directory, where
/// the benchmark looks for it.
fn build_racelab_for_bench(root: &Path) -> Result<()> {
    let status = Command::new(env!("CARGO"))
        .args([
            "build",
            "--release",
            "--quiet",
            "--package",
            "racelab",
            "--bin",
            "racelab",
        ])
        .current_dir(root)
        .status()
        .context("running cargo build -p racelab")?;
    if !status.success() {
        bail!("cargo build -p racelab failed ({status})");
    }
    Ok(())
}

/// The lock benchmark's binary (built now if it is not), to run inside the guest.
fn bench_executable(root: &Path) -> Result<PathBuf, String> {
    let out = Command::new(env!("CARGO"))
        .args([
            "bench",
            "--no-run",
            "--quiet",
            "--message-format=json",
            "--package",
            "racelab-locks",
            "--bench",
            "locks",
        ])
        .current_dir(root)
        .output()
        .map_err(|e| format!("running cargo bench --no-run: {e}"))?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["target"]["name"] == "locks")
        .find_map(|v| v["executable"].as_str().map(PathBuf::from))
        .ok_or_else(|| "cargo bench --no-run named no `locks` executable".into())
}

/// Key: (fs, strategy, mode "floor" | "threads" | "procs", owners).
type Cells = BTreeMap<(String, String, String, usize), Cell>;

fn collect(out: &Path) -> Result<Cells> {
    let waits_path = out.join("raw/waits.json");
    let mut waits: BTreeMap<String, Waits> = match std::fs::read(&waits_path) {
        Ok(b) => serde_json::from_slice(&b)
            .with_context(|| format!("parsing {}", waits_path.display()))?,
        Err(e) => bail!(
            "the benchmark wrote no {} ({e}): did it run?",
            waits_path.display()
        ),
    };
    // The guest's run, when there was one, wrote its own.
    let nfs_waits = out.join("raw-nfs/waits.json");
    if let Ok(b) = std::fs::read(&nfs_waits) {
        let more: BTreeMap<String, Waits> = serde_json::from_slice(&b)
            .with_context(|| format!("parsing {}", nfs_waits.display()))?;
        waits.extend(more);
    }
    let mut cells = Cells::new();
    let crit = out.join("criterion");
    let groups = std::fs::read_dir(&crit)
        .with_context(|| format!("reading criterion's results in {}", crit.display()))?;
    for g in groups.flatten() {
        let gname = g.file_name().to_string_lossy().into_owned();
        let Some(rest) = gname.strip_prefix("locks-") else {
            continue;
        };
        let Some((fs, strategy)) = rest.rsplit_once('-') else {
            continue;
        };
        for f in std::fs::read_dir(g.path())?.flatten() {
            let fname = f.file_name().to_string_lossy().into_owned();
            let est = f.path().join("new/estimates.json");
            let Ok(bytes) = std::fs::read(&est) else {
                continue;
            };
            let v: serde_json::Value = serde_json::from_slice(&bytes)
                .with_context(|| format!("parsing {}", est.display()))?;
            let Some(ns) = v["mean"]["point_estimate"].as_f64() else {
                continue;
            };
            let (mode, owners) = match fname.split_once('-') {
                Some((m, n)) => (m.to_string(), n.parse().unwrap_or(0)),
                None => (fname.clone(), 1),
            };
            let w = waits.get(&format!("{fs}/{strategy}/{fname}")).copied();
            cells.insert(
                (fs.to_string(), strategy.to_string(), mode, owners),
                Cell {
                    cycles_per_s: 1e9 / ns,
                    waits: w,
                },
            );
        }
    }
    if cells.is_empty() {
        bail!("criterion left no estimates under {}", crit.display());
    }
    Ok(cells)
}

fn us(ns: u64) -> String {
    format!("{:.1}", ns as f64 / 1e3)
}

fn render_markdown(
    fss: &[String],
    cells: &Cells,
    flufl: &Result<(f64, f64), String>,
    notes: &[String],
) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# Lock throughput\n");
    let _ = writeln!(md, "Acquire+release cycles per second, all owners together (criterion's mean), and how long each acquire waited (p50/p99/max, µs). *floor*: the raw system calls of one uncontended acquire/release of the strategy (`racelab_locks::floor`), measured in the same run; *÷ floor*: the strategy's time per cycle over the floor's. `fcntl` runs with processes only (POSIX locks belong to the process), `mutex` with threads only.\n");
    for fs in fss {
        let _ = writeln!(md, "## {fs}\n");
        let _ = writeln!(
            md,
            "| strategy | floor cycles/s | owners | cycles/s | ÷ floor | p50 | p99 | max |"
        );
        let _ = writeln!(md, "|---|---:|---|---:|---:|---:|---:|---:|");
        for s in STRATEGIES {
            let floor = cells
                .get(&(fs.clone(), s.to_string(), "floor".into(), 1))
                .map(|c| c.cycles_per_s);
            for mode in ["threads", "procs"] {
                for n in [1usize, 2, 4, 8] {
                    let Some(c) = cells.get(&(fs.clone(), s.to_string(), mode.to_string(), n))
                    else {
                        continue;
                    };
                    let ratio =
                        floor.map_or("–".into(), |f| format!("{:.2}", f / c.cycles_per_s));
                    let (p50, p99, max) =
                        c.waits.map_or(("–".into(), "–".into(), "–".into()), |w| {
                            (us(w.p50_ns), us(w.p99_ns), us(w.max_ns))
                        });
                    let _ = writeln!(
                        md,
                        "| {s} | {} | {n} {mode} | {:.0} | {ratio} | {p50} | {p99} | {max} |",
                        floor.map_or("–".into(), |f| format!("{f:.0}")),
                        c.cycles_per_s
                    );
                }
            }
        }
        let _ = writeln!(
            md,
            "\n![throughput on {fs}](throughput-{fs}.svg) ![p99 wait on {fs}](p99-wait-{fs}.svg)\n"
        );
    }
    let _ = writeln!(md, "## LinkLock and flufl.lock\n");
    match flufl {
        Ok((ours, theirs)) => {
            let _ = writeln!(md, "Uncontended acquire+release on the temp dir, one process each, same run: LinkLock {ours:.0}/s, flufl.lock {theirs:.0}/s (PyPI, as shipped): **LinkLock ÷ flufl.lock = {:.2}**.\n", ours / theirs);
        }
        Err(why) => {
            let _ = writeln!(md, "flufl.lock not measured: {why}\n");
        }
    }
    let _ = writeln!(
        md,
        "## Where each filesystem came from, and what was not measured\n"
    );
    for n in notes {
        let _ = writeln!(md, "- {n}");
    }
    md
}

/// A log-scale line chart for one filesystem: owners on x, one line per strategy and mode.
fn chart(
    path: &Path,
    fs: &str,
    cells: &Cells,
    ylabel: &str,
    value: impl Fn(&Cell) -> Option<f64>,
) -> Result<()> {
    let mut series: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for s in STRATEGIES {
        for mode in ["threads", "procs"] {
            let pts: Vec<(f64, f64)> = [1usize, 2, 4, 8]
                .iter()
                .filter_map(|&n| {
                    cells
                        .get(&(fs.to_string(), s.to_string(), mode.to_string(), n))
                        .and_then(&value)
                        .filter(|v| *v > 0.0)
                        .map(|v| (n as f64, v))
                })
                .collect();
            if !pts.is_empty() {
                series.push((format!("{s} ({mode})"), pts));
            }
        }
    }
    let (lo, hi) = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|&(_, y)| y))
        .fold((f64::MAX, f64::MIN), |(a, b), y| (a.min(y), b.max(y)));
    if series.is_empty() {
        return Ok(());
    }
    let draw = || -> Result<(), Box<dyn std::error::Error>> {
        let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut c = ChartBuilder::on(&root)
            .caption(format!("{ylabel} on {fs}"), ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(
                (0.8f64..9.0f64).log_scale(),
                ((lo / 2.0)..(hi * 2.0)).log_scale(),
            )?;
        c.configure_mesh()
            .x_desc("owners (threads or processes)")
            .y_desc(ylabel)
            .x_labels(4)
            .draw()?;
        for (i, (name, pts)) in series.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            let style = if name.ends_with("(procs)") {
                color.stroke_width(2)
            } else {
                color.stroke_width(1)
            };
            c.draw_series(LineSeries::new(pts.iter().copied(), style))?
                .label(name.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
            c.draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
        }
        c.configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()?;
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| anyhow::anyhow!("drawing {}: {e}", path.display()))
}

/// LinkLock's and flufl.lock's uncontended cycles/s, measured one after the other in `dir`.
fn flufl_ratio(root: &Path, target: &Path, dir: &Path) -> Result<(f64, f64), String> {
    let venv = target.join("bench-locks-venv");
    let py = venv.join("bin/python3");
    let has = |py: &Path| {
        Command::new(py)
            .args(["-c", "import flufl.lock"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !has(&py) {
        let ok = Command::new("python3")
            .arg("-m")
            .arg("venv")
            .arg(&venv)
            .output()
            .map_err(|e| format!("python3 -m venv: {e} (install python3)"))?;
        if !ok.status.success() {
            return Err(format!(
                "python3 -m venv failed: {} (Debian: apt-get install python3-venv)",
                String::from_utf8_lossy(&ok.stderr).trim()
            ));
        }
        let pip = Command::new(venv.join("bin/pip"))
            .args([
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "flufl.lock",
            ])
            .output()
            .map_err(|e| format!("pip: {e}"))?;
        if !pip.status.success() {
            return Err(format!(
                "pip install flufl.lock failed (needs PyPI): {}",
                String::from_utf8_lossy(&pip.stderr).trim()
            ));
        }
    }
    let iters = "5000";
    let lock = dir.join("flufl-vs-linklock.lock");
    let peer = root.join("crates/racelab/tests/it/data/flufl_peer.py");
    let theirs = Command::new(&py)
        .arg(&peer)
        .arg("bench")
        .arg(&lock)
        .arg(iters)
        .output()
        .map_err(|e| format!("running flufl.lock: {e}"))?;
    if !theirs.status.success() {
        return Err(format!(
            "flufl.lock bench failed: {}",
            String::from_utf8_lossy(&theirs.stderr).trim()
        ));
    }
    let theirs: f64 = String::from_utf8_lossy(&theirs.stdout)
        .trim()
        .parse()
        .map_err(|e| format!("flufl.lock bench output: {e}"))?;
    // cargo bench built racelab with the bench (release) profile.
    let racelab = target.join("release/racelab");
    let ours = Command::new(&racelab)
        .args([
            "__lockbench",
            "--strategy",
            "link",
            "--iters",
            iters,
            "--lock",
        ])
        .arg(&lock)
        .output()
        .map_err(|e| format!("running {}: {e}", racelab.display()))?;
    if !ours.status.success() {
        return Err(format!(
            "racelab __lockbench failed: {}",
            String::from_utf8_lossy(&ours.stderr).trim()
        ));
    }
    let v: serde_json::Value = serde_json::from_slice(&ours.stdout)
        .map_err(|e| format!("racelab __lockbench output: {e}"))?;
    let (n, ns) = (
        v["acquired"].as_f64().unwrap_or(0.0),
        v["elapsed_ns"].as_f64().unwrap_or(0.0),
    );
    if ns <= 0.0 {
        return Err("racelab __lockbench measured nothing".into());
    }
    Ok((n * 1e9 / ns, theirs))
}

//! A run of isolation specs as pg_regress runs them: one database for the run (created like
//! pg_regress's `isolation_regression`: template0, C messages, PST8PDT, `Postgres, MDY`),
//! specs one after the other, each output written to `results/NAME.out` and compared with
//! `expected/NAME.out` and its variants `NAME_1.out`, `NAME_2.out`, …; and the same specs under
//! PostgreSQL's own `isolationtester` binary, for its verdicts and its wall time.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::parse::Spec;
use super::run::{connect_real, run_spec};
use super::wire::{Conn, ConnParams, PgResult, Target};
use racelab_core::error::Error;

/// One spec to run: its name, file and expected outputs.
#[derive(Debug, Clone)]
pub struct Case {
    pub name: String,
    pub spec: PathBuf,
    /// `expected/NAME.out`, then `NAME_1.out`, … that exist.
    pub expected: Vec<PathBuf>,
}

/// What a spec's run showed.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// The output equals this expected file.
    Matches(PathBuf),
    /// The output equals none; the diff against the closest expected file.
    Differs { closest: PathBuf, diff: String },
    /// Not run, and why.
    Unsupported(String),
    /// The run failed (a connection, the spec file).
    Error(String),
}

/// One spec's report.
#[derive(Debug, Clone)]
pub struct Report {
    pub name: String,
    pub verdict: Verdict,
    pub seconds: f64,
    pub permutations: u64,
}

/// The cases of a directory laid out like PostgreSQL's (`specs/`, `expected/`,
/// `isolation_schedule`): the schedule's tests in order, then `extra` (the prepared-transaction
/// specs the schedule leaves out because they need `max_prepared_transactions`).
pub fn cases_from_schedule(
    dir: &Path,
    schedule: &Path,
    extra: &[&str],
) -> Result<Vec<Case>, Error> {
    let text = std::fs::read_to_string(schedule)
        .map_err(|e| Error::bad_input(format!("cannot read {}: {e}", schedule.display())))?;
    let mut names: Vec<String> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some(tests) = line.strip_prefix("test:") else {
            return Err(Error::bad_input(format!(
                "{}:{}: expected `test: NAME ...`, found `{line}`",
                schedule.display(),
                n + 1
            )));
        };
        names.extend(tests.split_whitespace().map(str::to_string));
    }
    for e in extra {
        if !names.iter().any(|n| n == e) && dir.join("specs").join(format!("{e}.spec")).exists() {
            names.push(e.to_string());
        }
    }
    names
        .iter()
        .map(|n| case(&dir.join("specs").join(format!("{n}.spec"))))
        .collect()
}

/// The case of one spec file: expected files in `../expected/` beside its `specs/` directory
/// (or in the same directory). A spec file that is not there is bad input.
pub fn case(spec: &Path) -> Result<Case, Error> {
    if !spec.exists() {
        return Err(Error::bad_input(format!("no spec file {}", spec.display())));
    }
    let name = spec
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let dir = spec.parent().unwrap_or(Path::new("."));
    let expected_dir = [dir.join("../expected"), dir.to_path_buf()]
        .into_iter()
        .find(|d| d.join(format!("{name}.out")).exists())
        .unwrap_or_else(|| dir.join("../expected"));
    let mut expected = Vec::new();
    let first = expected_dir.join(format!("{name}.out"));
    if first.exists() {
        expected.push(first);
    }
    for k in 1..10 {
        let p = expected_dir.join(format!("{name}_{k}.out"));
        if p.exists() {
            expected.push(p);
        }
    }
    Ok(Case {
        name,
        spec: spec.to_path_buf(),
        expected,
    })
}

/// The throwaway database of a run, dropped (with its sessions) when this goes.
pub struct Database {
    admin: Conn,
    pub name: String,
    /// Connection settings for the run's sessions.
    pub params: ConnParams,
    /// The same, as a libpq connection string for isolationtester.
    pub conninfo: String,
    pub server_version: String,
    pub max_prepared_transactions: i64,
}

fn scalar(c: &mut Conn, sql: &str) -> Result<String, String> {
    let r = c.exec(sql)?;
    c.take_notices();
    match r.into_iter().next() {
        Some(PgResult::Tuples { rows, .. }) => Ok(rows
            .first()
            .and_then(|r| r.first().cloned().flatten())
            .unwrap_or_default()),
        Some(PgResult::Error { message, .. }) => Err(message),
        other => Err(format!("unexpected answer {other:?}")),
    }
}

fn command(c: &mut Conn, sql: &str) -> Result<(), String> {
    let r = c.exec(sql)?;
    c.take_notices();
    match r.into_iter().find(|r| matches!(r, PgResult::Error { .. })) {
        Some(PgResult::Error { message, .. }) => Err(format!("`{sql}` failed: {message}")),
        _ => Ok(()),
    }
}

impl Database {
    /// Creates database `name` on the server `url` names, as pg_regress creates its
    /// `isolation_regression` (one spec, intra-grant-inplace-db, names it), dropping an
    /// existing one first as pg_regress does. What fails here is the server's: infrastructure.
    pub fn create(url: &str, name: &str) -> Result<Database, Error> {
        let base = ConnParams::from_url(url)?;
        let mut admin = Conn::connect(&base)?;
        let name = name.to_string();
        command(
            &mut admin,
            &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        )?;
        command(
            &mut admin,
            &format!("CREATE DATABASE {name} TEMPLATE=template0"),
        )?;
        for setting in [
            "lc_messages TO 'C'",
            "lc_monetary TO 'C'",
            "lc_numeric TO 'C'",
            "lc_time TO 'C'",
            "bytea_output TO 'hex'",
            "timezone_abbreviations TO 'Default'",
        ] {
            command(&mut admin, &format!("ALTER DATABASE {name} SET {setting}"))?;
        }
        let server_version = scalar(&mut admin, "SHOW server_version")?;
        let max_prepared_transactions = scalar(&mut admin, "SHOW max_prepared_transactions")?
            .parse()
            .unwrap_or(0);
        let mut params = base.clone();
        params.dbname = name.clone();
        // libpq sends PGTZ and PGDATESTYLE, which pg_regress sets, as startup options.
        params.options = vec![
            ("TimeZone".into(), "PST8PDT".into()),
            ("DateStyle".into(), "Postgres, MDY".into()),
        ];
        let conninfo = match &base.target {
            Target::Tcp(addr) => {
                let (host, port) = addr.rsplit_once(':').unwrap_or((addr, "5432"));
                format!("host={host} port={port} user={} dbname={name}", base.user)
            }
            Target::Unix(path) => {
                let (dir, sock) = path.rsplit_once('/').unwrap_or((".", path));
                let port = sock.rsplit('.').next().unwrap_or("5432");
                format!("host={dir} port={port} user={} dbname={name}", base.user)
            }
        };
        Ok(Database {
            admin,
            name,
            params,
            conninfo,
            server_version,
            max_prepared_transactions,
        })
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let _ = command(
            &mut self.admin,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

/// Why a spec cannot run on this server, if it cannot.
pub(crate) fn unsupported(spec: &Spec, db: &Database) -> Option<String> {
    let uses_2pc = spec
        .sessions
        .iter()
        .flat_map(|s| &s.steps)
        .any(|t| t.sql.to_ascii_uppercase().contains("PREPARE TRANSACTION"));
    if uses_2pc && db.max_prepared_transactions < 3 {
        return Some(format!("uses PREPARE TRANSACTION and the server has max_prepared_transactions = {}; PostgreSQL's README asks for at least 3 (`cargo xtask db up` starts the server with 10)", db.max_prepared_transactions));
    }
    None
}

/// The verdict on `output`: equal to one expected file, or the diff against the closest.
pub(crate) fn compare(output: &str, case: &Case) -> Verdict {
    if case.expected.is_empty() {
        return Verdict::Error(format!(
            "no expected output for {} (looked for {}.out in ../expected/ and beside the spec)",
            case.name, case.name
        ));
    }
    let mut best: Option<(usize, PathBuf, String)> = None;
    for path in &case.expected {
        let Ok(expected) = std::fs::read_to_string(path) else {
            continue;
        };
        if expected == output {
            return Verdict::Matches(path.clone());
        }
        let diff = super::diff::unified(&expected, output, &path.display().to_string(), "racelab");
        let size = diff
            .lines()
            .filter(|l| l.starts_with('+') || l.starts_with('-'))
            .count();
        if best.as_ref().is_none_or(|(s, _, _)| size < *s) {
            best = Some((size, path.clone(), diff));
        }
    }
    match best {
        Some((_, closest, diff)) => Verdict::Differs { closest, diff },
        None => Verdict::Error(format!("cannot read the expected output of {}", case.name)),
    }
}

/// Runs one spec with racelab and writes its output to `results/NAME.out`.
pub fn run_case(db: &Database, case: &Case, results: &Path, step_wait: Duration) -> Report {
    let start = Instant::now();
    let report = |verdict, permutations| Report {
        name: case.name.clone(),
        verdict,
        seconds: start.elapsed().as_secs_f64(),
        permutations,
    };
    let spec = match super::load(&case.spec) {
        Ok(s) => s,
        Err(e) => return report(Verdict::Error(e.to_string()), 0),
    };
    if let Some(why) = unsupported(&spec, db) {
        return report(Verdict::Unsupported(why), 0);
    }
    let (control, sessions) = match connect_real(&db.params, &case.name, &spec) {
        Ok(c) => c,
        Err(e) => return report(Verdict::Error(e.into()), 0),
    };
    let outcome = run_spec(&spec, control, sessions, step_wait);
    let _ = std::fs::create_dir_all(results);
    let _ = std::fs::write(results.join(format!("{}.out", case.name)), &outcome.output);
    report(compare(&outcome.output, case), outcome.permutations as u64)
}

/// Runs one spec under PostgreSQL's `isolationtester` (as pg_regress does: spec on stdin,
/// stdout and stderr into `results/NAME.out`, PGAPPNAME, PGTZ and PGDATESTYLE set).
pub(crate) fn run_isolationtester(
    bin: &Path,
    db: &Database,
    case: &Case,
    results: &Path,
) -> Report {
    let start = Instant::now();
    let report = |verdict| Report {
        name: case.name.clone(),
        verdict,
        seconds: start.elapsed().as_secs_f64(),
        permutations: 0,
    };
    if let Ok(spec) = super::load(&case.spec) {
        if let Some(why) = unsupported(&spec, db) {
            return report(Verdict::Unsupported(why));
        }
    }
    let _ = std::fs::create_dir_all(results);
    let out_path = results.join(format!("{}.out", case.name));
    let (Ok(stdin), Ok(out)) = (
        std::fs::File::open(&case.spec),
        std::fs::File::create(&out_path),
    ) else {
        return report(Verdict::Error(format!(
            "cannot open {} or create {}",
            case.spec.display(),
            out_path.display()
        )));
    };
    let Ok(err) = out.try_clone() else {
        return report(Verdict::Error("cannot duplicate a file handle".into()));
    };
    let status = Command::new(bin)
        .arg(&db.conninfo)
        .env("PGAPPNAME", format!("isolation/{}", case.name))
        .env("PGTZ", "PST8PDT")
        .env("PGDATESTYLE", "Postgres, MDY")
        .stdin(Stdio::from(stdin))
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .status();
    if let Err(e) = status {
        return report(Verdict::Error(format!("cannot run {}: {e}", bin.display())));
    }
    let output = std::fs::read_to_string(&out_path).unwrap_or_default();
    report(compare(&output, case))
}

/// Where Debian's postgresql-client (or -server-dev) puts PostgreSQL's isolationtester.
pub(crate) fn find_isolationtester() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.path().join("lib/pgxs/src/test/isolation/isolationtester"))
        .filter(|p| p.exists())
        .collect();
    found.sort();
    found.pop()
}

/// Runs one spec on the model database (PostgreSQL flavour) and writes its output to
/// `results/NAME.out`; a spec with a statement outside the model's subset is not run, and the
/// verdict says which statement and why. A step that nothing can release is cancelled at once
/// and reported as cancelled after `step_wait`, as isolationtester would after that long.
pub fn run_case_on_model(case: &Case, results: &Path, step_wait: Duration) -> Report {
    let start = Instant::now();
    let report = |verdict, permutations| Report {
        name: case.name.clone(),
        verdict,
        seconds: start.elapsed().as_secs_f64(),
        permutations,
    };
    let spec = match super::load(&case.spec) {
        Ok(s) => s,
        Err(e) => return report(Verdict::Error(e.to_string()), 0),
    };
    if let Err(why) = super::model::check_spec(&spec) {
        return report(
            Verdict::Unsupported(format!("not supported on the model: {why}")),
            0,
        );
    }
    let (control, sessions) = super::model::ModelSession::connect(spec.sessions.len());
    let outcome = run_spec(&spec, control, sessions, step_wait);
    let _ = std::fs::create_dir_all(results);
    let _ = std::fs::write(results.join(format!("{}.out", case.name)), &outcome.output);
    report(compare(&outcome.output, case), outcome.permutations as u64)
}

/// A spec's connections on the run's server, for an exploration.
pub struct ServerConnector<'a> {
    pub db: &'a Database,
    pub test: String,
    pub spec: &'a Spec,
}

impl super::explore::Connector for ServerConnector<'_> {
    type L = Conn;
    type W = Conn;
    fn connect(&mut self) -> Result<(Conn, Vec<Conn>), String> {
        Ok(connect_real(&self.db.params, &self.test, self.spec)?)
    }
    /// After a failed run: its sessions are gone (their transactions roll back once their
    /// backends notice), so prepared transactions are rolled back and the spec's teardown runs,
    /// waiting at most 30 s for a lock.
    fn clean_up(&mut self) -> Result<(), String> {
        let mut c = Conn::connect(&self.db.params)?;
        command(&mut c, "SET lock_timeout = '30s'")?;
        let gids = c.exec(
            "SELECT gid FROM pg_catalog.pg_prepared_xacts WHERE database = current_database()",
        )?;
        if let Some(PgResult::Tuples { rows, .. }) = gids.first() {
            for gid in rows.iter().filter_map(|r| r.first().cloned().flatten()) {
                command(
                    &mut c,
                    &format!("ROLLBACK PREPARED '{}'", gid.replace('\'', "''")),
                )?;
            }
        }
        if let Some(sql) = &self.spec.teardown {
            let _ = c.exec(sql)?; // an error (a table the failed run never made) is expected
        }
        c.take_notices();
        Ok(())
    }
}

/// A spec's connections on a fresh model database, for an exploration.
pub(crate) struct ModelConnector {
    pub sessions: usize,
}

impl super::explore::Connector for ModelConnector {
    type L = super::model::ModelSession;
    type W = super::model::ModelControl;
    fn connect(&mut self) -> Result<(Self::W, Vec<Self::L>), String> {
        Ok(super::model::ModelSession::connect(self.sessions))
    }
    /// Each connection is a fresh model: nothing is left behind.
    fn clean_up(&mut self) -> Result<(), String> {
        Ok(())
    }
}

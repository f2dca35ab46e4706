//! `racelab isolation`: runs PostgreSQL isolation specs on a real server, prints a verdict per
//! spec (matches / differs with a diff / unsupported / error), optionally runs PostgreSQL's
//! own `isolationtester` on the same specs for comparison and timing, and can merge one
//! `summary.json` row per spec (backend `db:postgres`) into an existing summary. With
//! `--backend model` the same specs run on the model database instead (no server), where
//! their SQL is within its subset.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::suite::{self, Case, Database, Report, Verdict};
use crate::backend::db::DbSpec;

mod on_model;
mod summary;

use self::on_model::main_model;
pub(crate) use self::summary::Totals;
use self::summary::{merge_into_summary, rows_agree};

/// Arguments of `racelab isolation`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Spec files (*.spec), or directories laid out like PostgreSQL's src/test/isolation
    /// (specs/, expected/, isolation_schedule: the schedule's specs, then the
    /// prepared-transaction ones). Default: scenarios/pg-isolation.
    pub paths: Vec<PathBuf>,
    /// `db:postgres` (the server in $RACELAB_POSTGRES_URL, from `cargo xtask db up`),
    /// `db:postgres=URL`, or `model` (the model database's PostgreSQL flavour: no server; a
    /// spec whose SQL is outside the model's subset is reported not supported, with why).
    #[arg(long, default_value = "db:postgres")]
    pub backend: String,
    /// Where each spec's output goes (`racelab/NAME.out`, `isolationtester/NAME.out`).
    #[arg(long, default_value = "target/racelab/pg-isolation")]
    pub results: PathBuf,
    /// Also run PostgreSQL's isolationtester on the same specs, in the same run: `auto` (find
    /// Debian's, in the pgxs directory), a path, or `none`.
    #[arg(long, default_value = "none")]
    pub isolationtester: String,
    /// Seconds a step may run before it is cancelled (isolationtester's PGISOLATIONTIMEOUT);
    /// the run stops at twice this.
    #[arg(long, default_value_t = 300)]
    pub step_timeout: u64,
    /// Append one row per spec (and one for the suite) to this summary.json and render its
    /// Markdown, HTML and JUnit reports again beside it.
    #[arg(long)]
    pub summary: Option<PathBuf>,
    /// Print every diff in full (default: the first 40 lines of each).
    #[arg(long)]
    pub full_diffs: bool,
    /// Beyond the listed permutations: run up to N of each spec's unlisted interleavings (the
    /// listed permutations' per-session steps in every other order; every one when there are
    /// at most N, else a seeded sample) and report the outcomes no listed permutation gave,
    /// with replay tokens. On the server, specs within the model's subset run on the model
    /// too, and the two are compared interleaving by interleaving. 0: off.
    #[arg(long, default_value_t = 0)]
    pub explore: usize,
    /// The seed of `--explore`'s sample.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Seconds a step of an unlisted interleaving may wait before it is cancelled and the
    /// interleaving reported as timed out (a step waiting on a session with no step before it
    /// is cancelled at once and reported as stalled).
    #[arg(long, default_value_t = 10)]
    pub explore_step_timeout: u64,
    /// Runs the one interleaving a token from `--explore` names, on the one spec given, and
    /// prints isolationtester's output for it (its outcome goes to stderr).
    #[arg(long, value_name = "TOKEN")]
    pub replay: Option<String>,
}

impl Args {
    fn explore_settings(&self) -> super::explore_cli::Settings {
        super::explore_cli::Settings {
            budget: self.explore,
            seed: self.seed,
            step_wait: Duration::from_secs(self.explore_step_timeout.max(1)),
        }
    }
}

/// pg_regress's database name; a spec (intra-grant-inplace-db) names it. Each tester gets a
/// fresh one, in turn.
const ISOLATION_DB: &str = "isolation_regression";

use racelab_core::error::exit::{BAD_INPUT, INFRASTRUCTURE};

fn cases(paths: &[PathBuf]) -> Result<Vec<Case>, String> {
    let default = [PathBuf::from("scenarios/pg-isolation")];
    let paths = if paths.is_empty() {
        &default[..]
    } else {
        paths
    };
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let schedule = p.join("isolation_schedule");
            if schedule.exists() {
                out.extend(suite::cases_from_schedule(
                    p,
                    &schedule,
                    &["prepared-transactions", "prepared-transactions-cic"],
                )?);
            } else {
                let dir = if p.join("specs").is_dir() {
                    p.join("specs")
                } else {
                    p.clone()
                };
                let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
                    .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
                    .filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|f| f.extension().is_some_and(|x| x == "spec"))
                    .collect();
                files.sort();
                for f in files {
                    out.push(suite::case(&f)?);
                }
            }
        } else {
            out.push(suite::case(p)?);
        }
    }
    if out.is_empty() {
        return Err("no spec files found".into());
    }
    Ok(out)
}

/// Runs the command; the exit code per DESIGN.md (0 every spec matches or is unsupported with
/// a reason, 1 some spec differs or failed, 2 bad input, 3 the server is unreachable).
pub fn main(args: &Args) -> u8 {
    let cases = match cases(&args.paths) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return BAD_INPUT;
        }
    };
    // Every spec must parse before anything runs: a malformed one is bad input, with its
    // diagnostics, as for `.race` files.
    let mut bad = false;
    for c in &cases {
        if let Err(e) = super::load(&c.spec) {
            bad = true;
            match e {
                super::LoadError::Syntax(errors) => {
                    let handler = miette::GraphicalReportHandler::new_themed(
                        miette::GraphicalTheme::unicode_nocolor(),
                    )
                    .with_width(100);
                    let mut text = String::new();
                    let _ = handler.render_report(&mut text, &errors);
                    eprint!("{text}");
                }
                other => eprintln!("error: {other}"),
            }
        }
    }
    if bad {
        return BAD_INPUT;
    }
    if let Some(token) = &args.replay {
        let [case] = &cases[..] else {
            eprintln!(
                "error: --replay runs one spec; give exactly one spec file (got {})",
                cases.len()
            );
            return BAD_INPUT;
        };
        let url = if args.backend == "model" {
            None
        } else {
            match DbSpec::parse(args.backend.strip_prefix("db:").unwrap_or(&args.backend)) {
                Ok(DbSpec::Postgres(url)) => Some(url),
                Ok(other) => {
                    eprintln!(
                        "error: isolation specs are PostgreSQL's; `--backend {}` is not PostgreSQL",
                        other.name()
                    );
                    return BAD_INPUT;
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    return INFRASTRUCTURE;
                }
            }
        };
        return super::explore_cli::replay(
            case,
            token,
            &args.backend,
            url.as_deref(),
            Duration::from_secs(args.explore_step_timeout.max(1)),
        );
    }
    if args.backend == "model" {
        return main_model(args, &cases);
    }
    let url = match DbSpec::parse(args.backend.strip_prefix("db:").unwrap_or(&args.backend)) {
        Ok(DbSpec::Postgres(url)) => url,
        Ok(other) => {
            eprintln!(
                "error: isolation specs are PostgreSQL's; `--backend {}` is not PostgreSQL",
                other.name()
            );
            return BAD_INPUT;
        }
        Err(e) => {
            eprintln!("error: {e}");
            return INFRASTRUCTURE;
        }
    };
    let tester = match args.isolationtester.as_str() {
        "none" => None,
        "auto" => match suite::find_isolationtester() {
            Some(p) => Some(p),
            None => {
                eprintln!("warning: PostgreSQL's isolationtester is not installed, so there is no time ratio (Debian: postgresql-client-15 ships it under /usr/lib/postgresql/15/lib/pgxs/src/test/isolation/)");
                None
            }
        },
        path => Some(PathBuf::from(path)),
    };
    let step_wait = Duration::from_secs(args.step_timeout.max(1));
    let db = match Database::create(&url, ISOLATION_DB) {
        Ok(db) => db,
        Err(e) => {
            eprintln!("error: {e}");
            return INFRASTRUCTURE;
        }
    };
    println!(
        "PostgreSQL {} (database {}), {} specs",
        db.server_version,
        db.name,
        cases.len()
    );
    let started = Instant::now();
    let mut ours = Vec::new();
    for c in &cases {
        let r = suite::run_case(&db, c, &args.results.join("racelab"), step_wait);
        print_report(&r, args.full_diffs);
        ours.push(r);
    }
    let our_seconds = started.elapsed().as_secs_f64();
    drop(db);
    let mut theirs = Vec::new();
    let mut their_seconds = 0.0;
    if let Some(bin) = &tester {
        let db = match Database::create(&url, ISOLATION_DB) {
            Ok(db) => db,
            Err(e) => {
                eprintln!("error: {e}");
                return INFRASTRUCTURE;
            }
        };
        let started = Instant::now();
        for c in &cases {
            theirs.push(suite::run_isolationtester(
                bin,
                &db,
                c,
                &args.results.join("isolationtester"),
            ));
        }
        their_seconds = started.elapsed().as_secs_f64();
    }
    let totals = Totals::new(&ours, &theirs, our_seconds, their_seconds);
    println!("\n{}", totals.describe());
    let explored = if args.explore > 0 {
        match explore_on_server(&url, &cases, args) {
            Ok(x) => Some(x),
            Err(e) => {
                eprintln!("error: {e}");
                return INFRASTRUCTURE;
            }
        }
    } else {
        None
    };
    if let Some(path) = &args.summary {
        if let Err(e) = merge_into_summary(
            path,
            &ours,
            &theirs,
            &totals,
            &args.results,
            explored.as_ref(),
        ) {
            eprintln!("error: {e}");
            return INFRASTRUCTURE;
        }
    }
    let failed = ours
        .iter()
        .zip(rows_agree(&ours, &theirs, &args.results))
        .any(|(r, ok)| !ok && !matches!(r.verdict, Verdict::Unsupported(_)));
    u8::from(failed)
}

/// The server run's exploration: every spec on the server, and those within the model's
/// subset on the model too.
pub(crate) struct Explored {
    pub server: Vec<super::explore::Exploration>,
    pub model: Vec<super::explore::Exploration>,
    pub line: String,
    pub seconds: f64,
}

fn explore_on_server(url: &str, cases: &[Case], args: &Args) -> Result<Explored, String> {
    use super::explore_cli as x;
    let settings = args.explore_settings();
    let started = Instant::now();
    println!(
        "\nunlisted interleavings (at most {} per spec, seed {}):",
        settings.budget, settings.seed
    );
    let mut server = Vec::new();
    let mut model = Vec::new();
    let (mut same, mut both) = (0, 0);
    let mut db = Database::create(url, ISOLATION_DB)?;
    for c in cases {
        let result = x::on_server(&db, c, settings);
        // A fresh database after a spec whose odd interleavings may have left objects behind
        // (a failed run or teardown), before the next spec's setup meets them.
        if result.as_ref().map_or(true, |ex| ex.dirty) {
            drop(db);
            db = Database::create(url, ISOLATION_DB)?;
        }
        match result {
            Ok(ex) => {
                x::print("db:postgres", &ex);
                if let Ok(m) = x::on_model(c, settings) {
                    let (s, b) = x::agreement(&ex, &m);
                    println!("    model: {s}/{b} unlisted interleavings with the server's outcome");
                    if let Some(d) = x::first_disagreement(&ex, &m) {
                        println!("      first difference: {d}");
                    }
                    same += s;
                    both += b;
                    model.push(m);
                }
                server.push(ex);
            }
            Err(e) => println!("{:<44} db:postgres  {e}", c.name),
        }
    }
    let line = x::totals(&server, Some((same, both)));
    println!("\n{line}");
    Ok(Explored {
        server,
        model,
        line,
        seconds: started.elapsed().as_secs_f64(),
    })
}

fn print_report(r: &Report, full: bool) {
    let what = match &r.verdict {
        Verdict::Matches(p) => format!(
            "matches {}",
            p.file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default()
        ),
        Verdict::Differs { closest, .. } => format!("DIFFERS from {}", closest.display()),
        Verdict::Unsupported(why) => format!("unsupported: {why}"),
        Verdict::Error(e) => format!("ERROR: {e}"),
    };
    println!(
        "{:<44} {:>4} permutations {:>7.2} s  {what}",
        r.name, r.permutations, r.seconds
    );
    if let Verdict::Differs { diff, .. } = &r.verdict {
        let lines: Vec<&str> = diff.lines().collect();
        let shown = if full {
            lines.len()
        } else {
            lines.len().min(40)
        };
        for l in &lines[..shown] {
            println!("    {l}");
        }
        if shown < lines.len() {
            println!(
                "    ... {} more diff lines (--full-diffs)",
                lines.len() - shown
            );
        }
    }
}

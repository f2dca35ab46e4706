//! `racelab isolation`: runs PostgreSQL isolation specs on a real server, prints a verdict per
//! spec (matches / differs with a diff / unsupported / error), optionally runs PostgreSQL's
//! own `isolationtester` on the same specs for comparison and timing, and can merge one
//! `summary.json` row per spec (backend `db:postgres`) into an existing summary. With
//! `--backend model` the same specs run on the model database instead (no server), where
//! their SQL is within its subset.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::suite::{self, Case, Database, Report, Verdict};
use crate::backend::db::DbSpec;

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
pub struct Explored {
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

/// The run's figures: how many specs matched under each tester, and the wall times.
pub struct Totals {
    pub specs: usize,
    pub matched: usize,
    pub differs: usize,
    pub unsupported: usize,
    pub errors: usize,
    pub seconds: f64,
    /// isolationtester's figures, when it ran.
    pub theirs: Option<(usize, f64)>,
}

impl Totals {
    fn new(ours: &[Report], theirs: &[Report], our_seconds: f64, their_seconds: f64) -> Totals {
        let count = |f: fn(&Verdict) -> bool| ours.iter().filter(|r| f(&r.verdict)).count();
        Totals {
            specs: ours.len(),
            matched: count(|v| matches!(v, Verdict::Matches(_))),
            differs: count(|v| matches!(v, Verdict::Differs { .. })),
            unsupported: count(|v| matches!(v, Verdict::Unsupported(_))),
            errors: count(|v| matches!(v, Verdict::Error(_))),
            seconds: our_seconds,
            theirs: (!theirs.is_empty()).then(|| {
                (
                    theirs
                        .iter()
                        .filter(|r| matches!(r.verdict, Verdict::Matches(_)))
                        .count(),
                    their_seconds,
                )
            }),
        }
    }

    pub fn describe(&self) -> String {
        let mut s = format!("racelab: {}/{} specs match their expected output ({} differ, {} unsupported, {} errors) in {:.1} s", self.matched, self.specs, self.differs, self.unsupported, self.errors, self.seconds);
        if let Some((m, secs)) = self.theirs {
            s.push_str(&format!("; PostgreSQL's isolationtester: {m}/{} in {secs:.1} s; wall-time ratio racelab/isolationtester {:.2}", self.specs, self.seconds / secs.max(1e-9)));
        }
        s
    }
}

/// Per spec: whether racelab's run counts as agreeing with PostgreSQL: its output equals an
/// expected file, or (where isolationtester's own output on this server matches none either)
/// it equals isolationtester's output byte for byte.
fn rows_agree(ours: &[Report], theirs: &[Report], results: &Path) -> Vec<bool> {
    ours.iter()
        .map(|r| match &r.verdict {
            Verdict::Matches(_) => true,
            Verdict::Differs { .. } => theirs.iter().find(|t| t.name == r.name).is_some_and(|t| {
                matches!(t.verdict, Verdict::Differs { .. }) && same_output(results, &r.name)
            }),
            _ => false,
        })
        .collect()
}

fn same_output(results: &Path, name: &str) -> bool {
    let read =
        |who: &str| std::fs::read_to_string(results.join(who).join(format!("{name}.out"))).ok();
    matches!((read("racelab"), read("isolationtester")), (Some(a), Some(b)) if a == b)
}

fn merge_into_summary(
    path: &Path,
    ours: &[Report],
    theirs: &[Report],
    totals: &Totals,
    results: &Path,
    explored: Option<&Explored>,
) -> Result<(), String> {
    let mut summary: reports::Summary = match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .map_err(|e| format!("cannot parse {}: {e}", path.display()))?,
        Err(_) => reports::Summary {
            ok: true,
            results: vec![],
            shard: None,
        },
    };
    let agree = rows_agree(ours, theirs, results);
    for (r, ok) in ours.iter().zip(&agree) {
        let theirs = theirs.iter().find(|t| t.name == r.name);
        let mut row = row(r, *ok, theirs, "db:postgres");
        if let Some(ex) = explored.and_then(|x| x.server.iter().find(|e| e.spec == r.name)) {
            super::explore_cli::annotate(&mut row, ex);
        }
        summary.results.push(row);
    }
    let all = agree
        .iter()
        .zip(ours)
        .all(|(ok, r)| *ok || matches!(r.verdict, Verdict::Unsupported(_)));
    let mut suite_row = row(
        &Report {
            name: "pg-isolation".into(),
            verdict: Verdict::Unsupported(String::new()),
            seconds: totals.seconds,
            permutations: ours.iter().map(|r| r.permutations).sum(),
        },
        all,
        None,
        "db:postgres",
    );
    // The table of summary.md shows the variant, not the reason: the figures go there.
    suite_row.variant = match totals.theirs {
        Some((m, secs)) => format!(
            "{}/{} match; isolationtester {m}/{}; time {:.1}s vs {secs:.1}s (ratio {:.2})",
            totals.matched,
            totals.specs,
            totals.specs,
            totals.seconds,
            totals.seconds / secs.max(1e-9)
        ),
        None => format!("{}/{} match", totals.matched, totals.specs),
    };
    suite_row.outcome = if all {
        reports::Outcome::Holds
    } else {
        reports::Outcome::Violation
    };
    suite_row.invariant = (!all).then(|| "expected_output".into());
    suite_row.met = all;
    suite_row.bound = Some(totals.describe());
    suite_row.reason = Some(totals.describe());
    summary.results.push(suite_row);
    if let Some(x) = explored {
        summary.results.push(super::explore_cli::suite_row(
            "pg-isolation-unlisted",
            "db:postgres",
            &x.line,
            x.seconds,
            x.server.iter().map(|e| e.ran).sum(),
        ));
    }
    summary.ok = summary.ok && all;
    let dir = path.parent().unwrap_or(Path::new("."));
    reports::write_all(&summary, dir)
        .map_err(|e| format!("cannot write the reports in {}: {e}", dir.display()))?;
    Ok(())
}

/// One summary.json row: the spec's listed permutations (or all interleavings) replayed on
/// the server, expected to print PostgreSQL's expected output.
fn row(r: &Report, agrees: bool, theirs: Option<&Report>, backend: &str) -> reports::RunResult {
    let (outcome, invariant, reason) = match &r.verdict {
        Verdict::Matches(p) => (reports::Outcome::Holds, None, Some(format!("output equals {}", p.display()))),
        Verdict::Differs { closest, diff } if agrees => (
            reports::Outcome::Holds,
            None,
            Some(format!("output differs from {} exactly as PostgreSQL's isolationtester's output does on this server (compared byte for byte)\n{}", closest.display(), diff.lines().take(30).collect::<Vec<_>>().join("\n"))),
        ),
        Verdict::Differs { closest, diff } => {
            let note = match theirs.map(|t| &t.verdict) {
                Some(Verdict::Differs { .. }) => "; PostgreSQL's isolationtester differs too, differently",
                Some(Verdict::Matches(_)) => "; PostgreSQL's isolationtester matches",
                _ => "",
            };
            (reports::Outcome::Violation, Some("expected_output".to_string()), Some(format!("output differs from {}{note}\n{}", closest.display(), diff.lines().take(30).collect::<Vec<_>>().join("\n"))))
        }
        Verdict::Unsupported(why) => (reports::Outcome::Skipped, None, Some(why.clone())),
        Verdict::Error(e) => (reports::Outcome::Error, None, Some(e.clone())),
    };
    reports::RunResult {
        outcome,
        invariant,
        schedules: r.permutations,
        seconds: r.seconds,
        met: agrees,
        bound: Some(format!(
            "{} permutations (the spec's, or every interleaving when it lists none)",
            r.permutations
        )),
        reason,
        coverage: (outcome != reports::Outcome::Skipped && outcome != reports::Outcome::Error)
            .then_some(reports::Coverage::Bounded),
        covers: Some(format!(
            "the spec's {} permutations on the {}",
            r.permutations,
            if backend == "model" {
                "model database (PostgreSQL flavour)"
            } else {
                "real server"
            }
        )),
        ..reports::RunResult::unmeasured(
            &r.name,
            "pg-isolation",
            "replay",
            backend.to_string(),
            (reports::Verdict::Holds, vec![]),
        )
    }
}

/// `--backend model`: every spec on the model database; a verdict per spec, the agreement
/// figures, and (with `--summary`) one `model` row per spec and one for the suite. Exit code 0
/// when every spec the model runs agrees with PostgreSQL's expected output, 1 otherwise.
fn main_model(args: &Args, cases: &[Case]) -> u8 {
    if args.isolationtester != "none" {
        eprintln!("error: --isolationtester runs PostgreSQL's tester on a server; it has nothing to compare with --backend model");
        return BAD_INPUT;
    }
    println!(
        "the model database (PostgreSQL flavour), {} specs",
        cases.len()
    );
    let started = Instant::now();
    let mut ours = Vec::new();
    for c in cases {
        let r = suite::run_case_on_model(
            c,
            &args.results.join("model"),
            Duration::from_secs(args.step_timeout.max(1)),
        );
        print_report(&r, args.full_diffs);
        ours.push(r);
    }
    let totals = Totals::new(&ours, &[], started.elapsed().as_secs_f64(), 0.0);
    println!("\n{}", totals.describe_model());
    let mut explored = None;
    if args.explore > 0 {
        use super::explore_cli as x;
        let started = Instant::now();
        println!(
            "\nunlisted interleavings on the model (at most {} per spec, seed {}):",
            args.explore, args.seed
        );
        let mut all = Vec::new();
        for c in cases {
            match x::on_model(c, args.explore_settings()) {
                Ok(ex) => {
                    x::print("model", &ex);
                    all.push(ex);
                }
                Err(e) if e.starts_with("not supported") => {}
                Err(e) => println!("{:<44} model        {e}", c.name),
            }
        }
        let line = x::totals(&all, None);
        println!("\n{line}");
        explored = Some(Explored {
            server: Vec::new(),
            model: all,
            line,
            seconds: started.elapsed().as_secs_f64(),
        });
    }
    if let Some(path) = &args.summary {
        if let Err(e) = merge_model_into_summary(path, &ours, &totals, explored.as_ref()) {
            eprintln!("error: {e}");
            return INFRASTRUCTURE;
        }
    }
    u8::from(totals.differs + totals.errors > 0)
}

impl Totals {
    /// The model run's figures: agreement among the specs within the model's subset.
    pub fn describe_model(&self) -> String {
        let run = self.specs - self.unsupported;
        format!(
            "model: {}/{} specs within the model's subset agree with PostgreSQL's expected output ({} differ, {} errors); {} of {} specs not supported on the model; {:.1} s",
            self.matched, run, self.differs, self.errors, self.unsupported, self.specs, self.seconds
        )
    }
}

fn merge_model_into_summary(
    path: &Path,
    ours: &[Report],
    totals: &Totals,
    explored: Option<&Explored>,
) -> Result<(), String> {
    let mut summary: reports::Summary = match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .map_err(|e| format!("cannot parse {}: {e}", path.display()))?,
        Err(_) => reports::Summary {
            ok: true,
            results: vec![],
            shard: None,
        },
    };
    for r in ours {
        let agrees = matches!(r.verdict, Verdict::Matches(_));
        let mut row = row(r, agrees, None, "model");
        if let Verdict::Differs { closest, diff } = &r.verdict {
            row.reason = Some(format!("the model's output differs from PostgreSQL's {} (a model-vs-server finding: the model is too weak or too strong here)\n{}", closest.display(), diff.lines().take(30).collect::<Vec<_>>().join("\n")));
        }
        if let Some(ex) = explored.and_then(|x| x.model.iter().find(|e| e.spec == r.name)) {
            super::explore_cli::annotate(&mut row, ex);
        }
        summary.results.push(row);
    }
    let all = totals.differs + totals.errors == 0;
    let mut suite_row = row(
        &Report {
            name: "pg-isolation-model".into(),
            verdict: Verdict::Unsupported(String::new()),
            seconds: totals.seconds,
            permutations: ours.iter().map(|r| r.permutations).sum(),
        },
        all,
        None,
        "model",
    );
    suite_row.variant = format!(
        "model: {}/{} supported specs agree; {} not supported; {:.1}s",
        totals.matched,
        totals.specs - totals.unsupported,
        totals.unsupported,
        totals.seconds
    );
    suite_row.outcome = if all {
        reports::Outcome::Holds
    } else {
        reports::Outcome::Violation
    };
    suite_row.invariant = (!all).then(|| "expected_output".into());
    suite_row.met = all;
    suite_row.bound = Some(totals.describe_model());
    suite_row.reason = Some(totals.describe_model());
    // Beside the server run's figures (matching count, time ratio) when they are there.
    match summary
        .results
        .iter()
        .position(|r| r.scenario == "pg-isolation" && r.backend == "db:postgres")
    {
        Some(i) => summary.results.insert(i + 1, suite_row),
        None => summary.results.push(suite_row),
    }
    if let Some(x) = explored.filter(|x| x.server.is_empty()) {
        summary.results.push(super::explore_cli::suite_row(
            "pg-isolation-unlisted-model",
            "model",
            &x.line,
            x.seconds,
            x.model.iter().map(|e| e.ran).sum(),
        ));
    }
    summary.ok = summary.ok && all;
    let dir = path.parent().unwrap_or(Path::new("."));
    reports::write_all(&summary, dir)
        .map_err(|e| format!("cannot write the reports in {}: {e}", dir.display()))?;
    Ok(())
}

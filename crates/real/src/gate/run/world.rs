//! The real files as the invariants see them: each client's root, and the scenario's queries
//! answered from the files under the run's root.

use std::path::{Path, PathBuf};

use super::super::tracee::GateError;
use super::super::VirtualClock;
use super::GateOptions;
use racelab_lang::eval::Env;
use racelab_lang::ir::{Program, Query, Reg, Value};

/// Each client's path of the run's root: `root` itself first, then the same directory through
/// every other client in [`GateOptions::clients`] (it was made through the first one).
pub(super) fn client_roots(
    opts: &GateOptions,
    run: &Path,
    root: &Path,
) -> Result<Vec<PathBuf>, GateError> {
    let mut roots = vec![root.to_path_buf()];
    let rel = run
        .strip_prefix(&opts.base)
        .map_err(|_| format!("{} is not under {}", run.display(), opts.base.display()))?
        .join("root");
    for client in &opts.clients {
        let theirs = client.join(&rel);
        // Another client may not see the new directory until its cache of the parent expires;
        // a lookup by name asks the server.
        let theirs = theirs.canonicalize().map_err(|e| {
            format!(
                "{} (the run's root through another client): {e}",
                theirs.display()
            )
        })?;
        roots.push(theirs);
    }
    Ok(roots)
}

/// The real files an invariant reads: the root, plus racelab's conventions for sections and
/// logs (docs/language.md, "The gate").
pub(super) struct GateWorld<'a> {
    pub(super) prog: &'a Program,
    pub(super) root: &'a Path,
    pub(super) alive: Vec<bool>,
    pub(super) clock: VirtualClock,
}

impl GateWorld<'_> {
    pub(super) fn real(&self, model_path: &str) -> PathBuf {
        self.root.join(model_path.trim_start_matches('/'))
    }
    fn log_lines(&self, l: u32) -> Vec<String> {
        let path = self
            .root
            .join(".racelab/logs")
            .join(&self.prog.logs[l as usize]);
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Env for GateWorld<'_> {
    fn reg(&self, _r: Reg) -> Value {
        Value::None
    }
    fn self_name(&self) -> Option<&str> {
        None
    }
    fn query(&self, q: Query, args: &[Value]) -> Result<Value, String> {
        let path = || match args.first() {
            Some(Value::Str(s)) => Ok(s.to_string()),
            other => Err(format!(
                "expected a path, got {}",
                other.map_or("nothing", Value::type_name)
            )),
        };
        Ok(match q {
            // A section's holders are the marker files of live actors: a crashed holder's
            // marker stays on disk, but (as in the model) its section ends with it.
            Query::Holders(s) => {
                let dir = self.root.join(".racelab/critical").join(&self.prog.sections[s as usize]);
                let names: Vec<String> = std::fs::read_dir(dir).map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect()).unwrap_or_default();
                let live = self.prog.actors.iter().enumerate().filter(|(i, a)| self.alive[*i] && names.iter().any(|n| **n == *a.name)).count();
                Value::Int(live as i64)
            }
            Query::LogCount(l) => Value::Int(self.log_lines(l).len() as i64),
            Query::LogCountMatching(l) => {
                let needle = args.first().map(|v| v.to_string()).unwrap_or_default();
                Value::Int(self.log_lines(l).iter().filter(|e| e.contains(&needle)).count() as i64)
            }
            Query::Exists => Value::Bool(self.real(&path()?).exists()),
            Query::Contents => match std::fs::read_to_string(self.real(&path()?)) {
                Ok(s) => Value::str(&s),
                Err(_) => Value::None,
            },
            Query::Now => Value::Int(self.clock.wall_ms()),
            Query::Cell(_) | Query::LocalCount(_) => return Err("cells and thread-locals live inside the model; a gated program's state is its files (see docs/language.md, \"The gate\")".into()),
            Query::Sql(_) | Query::Connections => return Err("a gated run has no database".into()),
        })
    }
}

//! `import "lib/x.race"` and `import "lib/x.race" { lock, unlock }`: a scenario takes
//! declarations from library files (`library NAME { ... }`). An import is replaced by the
//! library's declarations (all of them, or the named ones and, transitively, the library's
//! declarations they use), in the library's order, at the place of the import line. Each file is
//! read once through a [`Loader`] and appended to the scenario's [`SourceMap`], so its spans, and
//! so every later diagnostic, point into it. A library's procedures are checked in the importing
//! scenario: they may use the scenario's constants, cells and logs (`LOCKFILE`), and a variant
//! may replace an imported procedure like any other.

use super::ast::{Ident, Import, Item};
use super::diag::{Diag, Span};
use super::sources::SourceMap;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::rc::Rc;

mod names;
use self::names::{declared, mentions};

/// Where imported files come from: the filesystem for the command line, memory for tests.
pub trait Loader {
    /// The bytes of the file at `path` (as resolved: relative to the working directory, or
    /// absolute), or why it cannot be read.
    fn load(&self, path: &str) -> Result<Vec<u8>, String>;
}

/// Reads imported files from the filesystem, the one I/O the language front end does.
pub struct FsLoader;

impl Loader for FsLoader {
    fn load(&self, path: &str) -> Result<Vec<u8>, String> {
        std::fs::read(path).map_err(|e| e.to_string())
    }
}

/// Files held in memory, by resolved path (tests, fuzzing).
#[derive(Default)]
pub struct MemLoader(pub BTreeMap<String, String>);

impl Loader for MemLoader {
    fn load(&self, path: &str) -> Result<Vec<u8>, String> {
        self.0
            .get(path)
            .map(|s| s.as_bytes().to_vec())
            .ok_or_else(|| "No such file or directory (os error 2)".to_string())
    }
}

/// `path` as written in an import of the file `importer`: relative to the importer's
/// directory, with `.` and `..` resolved lexically (a cycle through `../lib/x.race` and
/// `x.race` is found).
pub(crate) fn resolve_path(importer: &str, path: &str) -> String {
    let joined = if path.starts_with('/') {
        path.to_string()
    } else {
        match importer.rfind('/') {
            Some(i) => format!("{}/{path}", &importer[..i]),
            None => path.to_string(),
        }
    };
    let absolute = joined.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in joined.split('/') {
        match part {
            "" | "." => {}
            ".." if parts.last().is_some_and(|p| *p != "..") => {
                parts.pop();
            }
            ".." if absolute => {}
            p => parts.push(p),
        }
    }
    let body = parts.join("/");
    if absolute {
        format!("/{body}")
    } else {
        body
    }
}

/// One declaration a file provides, named by the file it is written in and its position there
/// (so that a library reached by two imports is taken once).
#[derive(Clone)]
struct Provided {
    id: (usize, usize),
    item: Item,
    /// The import line of the scenario file that brought it in (`None`: the scenario's own).
    via: Option<Span>,
}

enum LibState {
    Loading,
    Failed,
    Done {
        header: Span,
        provided: Rc<Vec<Provided>>,
    },
}

/// The scenario's declarations with every import replaced by what it imports. Problems are
/// pushed to `diags`; returns `None` when a library nests too deeply (only that error counts).
pub(crate) fn resolve(
    items: &[Item],
    map: &mut SourceMap,
    loader: &dyn Loader,
    diags: &mut Vec<Diag>,
) -> Option<Vec<Item>> {
    let mut r = Resolver {
        map,
        loader,
        diags,
        libs: HashMap::new(),
        stack: Vec::new(),
        too_deep: false,
    };
    let main = r.map.files()[0].name.clone();
    let provided = r.expand(&main, 0, items, true);
    if r.too_deep {
        return None;
    }
    Some(r.merge(provided))
}

struct Resolver<'a> {
    map: &'a mut SourceMap,
    loader: &'a dyn Loader,
    diags: &'a mut Vec<Diag>,
    libs: HashMap<String, LibState>,
    /// The libraries being loaded, outermost first, with the import that reached each.
    stack: Vec<(String, Span)>,
    too_deep: bool,
}

impl Resolver<'_> {
    /// `items` of file `file` (named `name`), imports replaced by what they import.
    fn expand(&mut self, name: &str, file: usize, items: &[Item], top: bool) -> Vec<Provided> {
        let mut out = Vec::new();
        for (idx, item) in items.iter().enumerate() {
            let Item::Import(import) = item else {
                out.push(Provided {
                    id: (file, idx),
                    item: item.clone(),
                    via: None,
                });
                continue;
            };
            let path = resolve_path(name, &import.path);
            let Some((header, provided)) = self.library(&path, import) else {
                continue;
            };
            let mut taken = match &import.names {
                None => provided.as_ref().clone(),
                Some(names) => self.select(&path, header, &provided, names),
            };
            if top {
                for p in &mut taken {
                    p.via = Some(import.span);
                }
            }
            out.extend(taken);
        }
        out
    }

    /// Loads, parses and expands the library at `path` once; `None` after an error.
    fn library(&mut self, path: &str, import: &Import) -> Option<(Span, Rc<Vec<Provided>>)> {
        if let Some(at) = self.stack.iter().position(|(p, _)| p == path) {
            let chain: Vec<String> = self.stack[at..]
                .iter()
                .map(|(p, _)| format!("`{p}`"))
                .chain(std::iter::once(format!("`{path}`")))
                .collect();
            let mut d = Diag::new(
                import.path_span,
                format!(
                    "libraries import each other in a cycle: {}",
                    chain.join(" imports ")
                ),
                "closes the cycle",
            )
            .help("move what both need into a third library that imports neither");
            // The edges of the cycle before this one: each library imported by the previous.
            for (p, span) in &self.stack[at + 1..] {
                d = d.also(*span, format!("`{p}` is imported here"));
            }
            self.diags.push(d);
            return None;
        }
        match self.libs.get(path) {
            Some(LibState::Done { header, provided }) => return Some((*header, provided.clone())),
            Some(LibState::Failed | LibState::Loading) => return None,
            None => {}
        }
        self.libs.insert(path.to_string(), LibState::Loading);
        let result = self.load(path, import);
        self.libs.insert(
            path.to_string(),
            match &result {
                Some((header, provided)) => LibState::Done {
                    header: *header,
                    provided: provided.clone(),
                },
                None => LibState::Failed,
            },
        );
        result
    }

    fn load(&mut self, path: &str, import: &Import) -> Option<(Span, Rc<Vec<Provided>>)> {
        let bytes = match self.loader.load(path) {
            Ok(b) => b,
            Err(e) => {
                self.diags.push(
                    Diag::new(
                        import.path_span,
                        format!("cannot read the library `{path}`: {e}"),
                        "imported here",
                    )
                    .help("an import's path is relative to the file that imports it; libraries live in scenarios/lib/"),
                );
                return None;
            }
        };
        let text = match String::from_utf8(bytes) {
            Ok(t) => t,
            Err(e) => {
                let at = e.utf8_error().valid_up_to();
                let bad = e.as_bytes()[at];
                let shown = String::from_utf8_lossy(e.as_bytes()).into_owned();
                let width = shown[at..].chars().next().map_or(0, char::len_utf8);
                let base = self.map.add(path, &shown);
                self.diags.push(
                    Diag::new(
                        Span::new(base + at, base + at + width),
                        "the file is not UTF-8 text",
                        format!("byte 0x{bad:02X} is not valid UTF-8 here"),
                    )
                    .also(import.path_span, "imported here")
                    .help("save the file as UTF-8 (from Latin-1: `iconv -f latin1 -t utf-8 FILE`)"),
                );
                return None;
            }
        };
        let base = self.map.add(path, &text);
        let file = self.map.files().len() - 1;
        let lib = super::parser::parse_at(self.map.text(), base, self.diags);
        if lib.too_deep {
            self.too_deep = true;
            return None;
        }
        if !lib.library {
            if lib.name.is_some() {
                self.diags.push(
                    Diag::new(
                        import.path_span,
                        format!("`{path}` is a scenario, not a library"),
                        "imported here",
                    )
                    .also(lib.header, "a scenario, not `library NAME { ... }`")
                    .help("move the shared declarations into a `library NAME { ... }` file (scenarios/lib/) and import that from both scenarios"),
                );
            }
            return None;
        }
        self.check_library(&lib);
        self.stack.push((path.to_string(), import.path_span));
        let provided = self.expand(path, file, &lib.items, false);
        self.stack.pop();
        Some((lib.header, Rc::new(provided)))
    }

    /// A library holds declarations for scenarios, nothing that makes it one.
    fn check_library(&mut self, lib: &super::ast::Scenario) {
        for v in &lib.variants {
            self.not_in_library(v.name.span, "a variant");
        }
        for e in &lib.expects {
            self.not_in_library(e.span, "an expectation");
        }
        for item in &lib.items {
            let (span, what) = match item {
                Item::Actor(a) => (a.name.span, "an actor"),
                Item::Fault(f) => (f.span, "a fault"),
                Item::FaultBudget { span, .. } => (*span, "a fault budget"),
                Item::Nfs { span, .. } => (*span, "`nfs cache`"),
                Item::Database { span, .. } => (*span, "a database"),
                Item::NamedDatabase { name } => (name.span, "a database"),
                Item::Param { span, .. } => (*span, "a parameter"),
                Item::Gate { span, .. } => (*span, "a gate command"),
                _ => continue,
            };
            self.not_in_library(span, what);
        }
    }

    fn not_in_library(&mut self, span: Span, what: &str) {
        self.diags.push(
            Diag::new(span, format!("{what} cannot be declared in a library"), "belongs to a scenario")
                .help("a library holds constants, procedures, cells, logs, thread-locals, locks, invariants, `fs` entries and imports; the scenario declares its actors, faults, variants and expectations"),
        );
    }

    /// The named declarations of a library, and the library's declarations they use.
    fn select(
        &mut self,
        path: &str,
        header: Span,
        provided: &[Provided],
        names: &[Ident],
    ) -> Vec<Provided> {
        let mut wanted: Vec<String> = Vec::new();
        for n in names {
            if provided
                .iter()
                .any(|p| declared(&p.item).is_some_and(|(_, i)| i.name == n.name))
            {
                wanted.push(n.name.clone());
                continue;
            }
            let all: Vec<&str> = provided
                .iter()
                .filter_map(|p| declared(&p.item).map(|(_, i)| i.name.as_str()))
                .collect();
            let help = match super::lower::closest(&n.name, all.iter().copied()) {
                Some(best) => format!("did you mean `{best}`?"),
                None if all.is_empty() => "the library declares nothing by name".to_string(),
                None => format!("the library declares: {}", all.join(", ")),
            };
            self.diags.push(
                Diag::new(
                    n.span,
                    format!("`{path}` declares no `{}`", n.name),
                    "not in the library",
                )
                .also(header, "the library")
                .help(help),
            );
        }
        let mut taken: HashSet<(usize, usize)> = HashSet::new();
        while let Some(name) = wanted.pop() {
            for p in provided {
                let named = declared(&p.item).is_some_and(|(_, i)| i.name == name);
                if named && taken.insert(p.id) {
                    let mut used = HashSet::new();
                    mentions(&p.item, &mut used);
                    wanted.extend(used);
                }
            }
        }
        provided
            .iter()
            .filter(|p| taken.contains(&p.id))
            .cloned()
            .collect()
    }

    /// The declarations in order, each once; a name declared twice across files (within its
    /// kind) is an error pointing at both declarations, and the second is dropped.
    fn merge(&mut self, provided: Vec<Provided>) -> Vec<Item> {
        let mut seen_ids = HashSet::new();
        let mut first: HashMap<(&'static str, String), (Span, usize, Option<Span>)> =
            HashMap::new();
        let mut out = Vec::new();
        for p in provided {
            if !seen_ids.insert(p.id) {
                continue;
            }
            if let Some((kind, name)) = declared(&p.item) {
                let key = (kind, name.name.clone());
                if let Some((span, file, via)) = first.get(&key) {
                    // Within one file, the lowering reports duplicates as it always has.
                    if *file != p.id.0 {
                        self.conflict(kind, name, p.via, *span, *via);
                        continue;
                    }
                } else {
                    first.insert(key, (name.span, p.id.0, p.via));
                }
            }
            out.push(p.item);
        }
        out
    }

    fn conflict(
        &mut self,
        kind: &str,
        name: &Ident,
        via: Option<Span>,
        earlier: Span,
        earlier_via: Option<Span>,
    ) {
        let file_of = |m: &SourceMap, s: Span| m.files()[m.file_index(s.start)].name.clone();
        let there = file_of(self.map, earlier);
        let mut d = Diag::new(
            name.span,
            format!("{kind} `{}` is declared twice: here and in `{there}`", name.name),
            "declared again here",
        )
        .also(earlier, "first declared here")
        .help(format!(
            "rename one of them, or import only what you need: `import \"PATH\" {{ name, ... }}`; to change an imported {kind} in one variant, replace it there"
        ));
        for v in [via, earlier_via].into_iter().flatten() {
            d = d.also(v, "imported here");
        }
        self.diags.push(d);
    }
}

#[cfg(test)]
mod tests {
    use super::resolve_path;

    #[test]
    fn paths_are_relative_to_the_importing_file() {
        assert_eq!(
            resolve_path("scenarios/a.race", "lib/x.race"),
            "scenarios/lib/x.race"
        );
        assert_eq!(resolve_path("a.race", "lib/x.race"), "lib/x.race");
        assert_eq!(
            resolve_path("scenarios/lib/x.race", "./y.race"),
            "scenarios/lib/y.race"
        );
        assert_eq!(
            resolve_path("scenarios/lib/x.race", "../lib/y.race"),
            "scenarios/lib/y.race"
        );
        assert_eq!(resolve_path("/s/a.race", "/abs/x.race"), "/abs/x.race");
        assert_eq!(resolve_path("/a.race", "../../x.race"), "/x.race");
        assert_eq!(resolve_path("a.race", "../x.race"), "../x.race");
    }
}

//! Diagnostics for scenario files: spans, collected errors, and their miette rendering.

use miette::{Diagnostic, LabeledSpan, NamedSource, SourceSpan};
use std::fmt;

use super::sources::SourceMap;
pub use super::span::Span;

/// One problem in a scenario file: what is wrong, where, and what to do.
#[derive(Debug, Clone, PartialEq)]
pub struct Diag {
    pub span: Span,
    pub message: String,
    pub label: String,
    pub help: Option<String>,
    /// More places the problem involves, each with its own label (the other end of a cycle).
    pub also: Vec<(Span, String)>,
}

impl Diag {
    pub fn new(span: Span, message: impl Into<String>, label: impl Into<String>) -> Diag {
        Diag {
            span,
            message: message.into(),
            label: label.into(),
            help: None,
            also: Vec::new(),
        }
    }
    /// Labels a second place in the source that the problem involves.
    pub(crate) fn also(mut self, span: Span, label: impl Into<String>) -> Diag {
        self.also.push((span, label.into()));
        self
    }
    pub fn help(mut self, help: impl Into<String>) -> Diag {
        self.help = Some(help.into());
        self
    }
}

/// Every problem found in one scenario file, ready for miette to render with the source.
#[derive(Debug)]
pub struct ScenarioErrors {
    pub name: String,
    pub diags: Vec<Diag>,
    singles: Vec<SingleDiag>,
}

impl ScenarioErrors {
    pub fn new(name: &str, src: &str, diags: Vec<Diag>) -> ScenarioErrors {
        ScenarioErrors::from_map(&SourceMap::new(name, src), diags)
    }

    /// Errors whose spans may point into any file of `map` (a scenario and its libraries):
    /// each is shown in its own file, and a place it involves in another file is shown below
    /// it, in that file.
    pub(crate) fn from_map(map: &SourceMap, mut diags: Vec<Diag>) -> ScenarioErrors {
        diags.sort_by_key(|d| (d.span.start, d.span.end));
        diags.dedup();
        let sources: Vec<NamedSource<String>> = (0..map.files().len())
            .map(|i| NamedSource::new(&map.files()[i].name, map.file_text(i).to_string()))
            .collect();
        let singles = diags
            .iter()
            .map(|d| {
                let (file, span) = map.local(d.span);
                let mut local = Diag {
                    span,
                    also: Vec::new(),
                    ..d.clone()
                };
                let mut elsewhere = Vec::new();
                for (s, label) in &d.also {
                    let (f, s) = map.local(*s);
                    if f == file {
                        local.also.push((s, label.clone()));
                    } else {
                        elsewhere.push(SingleDiag {
                            diag: Diag::new(s, label.clone(), "here"),
                            src: sources[f].clone(),
                            related: Vec::new(),
                        });
                    }
                }
                SingleDiag {
                    diag: local,
                    src: sources[file].clone(),
                    related: elsewhere,
                }
            })
            .collect();
        ScenarioErrors {
            name: map.files()[0].name.clone(),
            diags,
            singles,
        }
    }
}

impl fmt::Display for ScenarioErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.diags.len();
        write!(
            f,
            "{} error{} in {}",
            n,
            if n == 1 { "" } else { "s" },
            self.name
        )
    }
}

impl std::error::Error for ScenarioErrors {}

impl Diagnostic for ScenarioErrors {
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new("see docs/language.md for the grammar; `racelab check FILE` checks a file without running it"))
    }
    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn Diagnostic> + 'a>> {
        Some(Box::new(self.singles.iter().map(|d| d as &dyn Diagnostic)))
    }
}

/// One [`Diag`] with the source it points into, as miette wants it.
#[derive(Debug)]
struct SingleDiag {
    diag: Diag,
    src: NamedSource<String>,
    /// The places in other files the problem involves (the other end of an import).
    related: Vec<SingleDiag>,
}

impl fmt::Display for SingleDiag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.diag.message)
    }
}

impl std::error::Error for SingleDiag {}

impl Diagnostic for SingleDiag {
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.diag
            .help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(&self.src)
    }
    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn Diagnostic> + 'a>> {
        if self.related.is_empty() {
            return None;
        }
        Some(Box::new(self.related.iter().map(|d| d as &dyn Diagnostic)))
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let labelled = |span: Span, label: &str| {
            LabeledSpan::new_with_span(
                Some(label.to_string()),
                SourceSpan::new(span.start.into(), span.end - span.start),
            )
        };
        let main = labelled(self.diag.span, &self.diag.label);
        let also = self.diag.also.iter().map(move |(s, l)| labelled(*s, l));
        Some(Box::new(std::iter::once(main).chain(also)))
    }
}

/// Renders errors as plain text (no colour, ASCII-safe unicode box drawing), for tests and non-TTY output.
pub fn render_plain(errors: &ScenarioErrors) -> String {
    let handler =
        miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
            .with_width(100);
    let mut out = String::new();
    for single in &errors.singles {
        let _ = handler.render_report(&mut out, single);
    }
    out
}

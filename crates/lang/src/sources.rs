//! The files one scenario is made of (the scenario and the libraries it imports), laid end to
//! end in one text so that a byte offset names one place in one file. Spans stay plain byte
//! ranges through every pass; only diagnostics and line numbers ask which file an offset is in.

use super::span::Span;

/// One file of a [`SourceMap`]: its name as diagnostics show it, and where its text starts.
#[derive(Debug, Clone)]
pub(crate) struct SourceFile {
    pub name: String,
    pub start: usize,
    pub len: usize,
}

/// The scenario file first, then each imported library once, separated by a newline.
#[derive(Debug, Clone)]
pub(crate) struct SourceMap {
    text: String,
    files: Vec<SourceFile>,
}

impl SourceMap {
    /// A map holding the scenario file `name` with text `text`.
    pub(crate) fn new(name: &str, text: &str) -> SourceMap {
        SourceMap {
            text: text.to_string(),
            files: vec![SourceFile {
                name: name.to_string(),
                start: 0,
                len: text.len(),
            }],
        }
    }

    /// Appends a file; returns the offset its text starts at.
    pub(crate) fn add(&mut self, name: &str, text: &str) -> usize {
        // The separator keeps the previous file's end-of-file offset inside that file.
        self.text.push('\n');
        let start = self.text.len();
        self.text.push_str(text);
        self.files.push(SourceFile {
            name: name.to_string(),
            start,
            len: text.len(),
        });
        start
    }

    /// Every file's text, end to end.
    pub(crate) fn text(&self) -> &str {
        &self.text
    }

    pub(crate) fn files(&self) -> &[SourceFile] {
        &self.files
    }

    /// The index of the file holding `offset` (an offset past a file's end, up to its
    /// separator, is that file's end of file).
    pub(crate) fn file_index(&self, offset: usize) -> usize {
        self.files
            .iter()
            .rposition(|f| f.start <= offset)
            .unwrap_or(0)
    }

    /// The text of file `i`.
    pub(crate) fn file_text(&self, i: usize) -> &str {
        let f = &self.files[i];
        &self.text[f.start..f.start + f.len]
    }

    /// `span` as a range in its own file's text, with that file's index. A span that runs
    /// past its file's end (it cannot, from the parser) is cut at the end.
    pub(crate) fn local(&self, span: Span) -> (usize, Span) {
        let i = self.file_index(span.start);
        let f = &self.files[i];
        let end = span.end.min(f.start + f.len).max(span.start);
        (i, Span::new(span.start - f.start, end - f.start))
    }

    /// The 1-based line of `offset` in its own file, and that file's index.
    pub(crate) fn line_of(&self, offset: usize) -> (usize, u32) {
        let i = self.file_index(offset);
        let f = &self.files[i];
        let upto = offset.min(f.start + f.len).max(f.start);
        let line = self.text[f.start..upto].matches('\n').count() as u32 + 1;
        (i, line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_map_back_to_their_file_and_line() {
        let mut m = SourceMap::new("a.race", "one\ntwo");
        let b = m.add("lib/b.race", "x\ny\nz");
        assert_eq!(m.file_index(0), 0);
        assert_eq!(m.file_index(7), 0, "a.race's end of file is a.race's");
        assert_eq!(m.file_index(b), 1);
        assert_eq!(m.line_of(5), (0, 2));
        assert_eq!(m.line_of(b + 4), (1, 3));
        assert_eq!(m.local(Span::new(b + 2, b + 3)), (1, Span::new(2, 3)));
        assert_eq!(m.file_text(1), "x\ny\nz");
    }
}

//! `racelab fmt`'s printer: re-indents and re-spaces a `.race` file from its tokens, comments
//! and line breaks, without parsing it.
//!
//! Why tokens and not the syntax tree: the printer must keep every comment and may never change
//! what the file means (replay tokens carry a fingerprint of the file's tokens), and it must not
//! need to learn each new construct of the language. So it works on the lexer's token stream
//! plus the comments and blank lines between tokens (a "CST-lite", as gofmt's printer does):
//! - newlines are significant in the language (a statement ends at one), so every line break the
//!   author made between two tokens is kept, and none is added; only runs of blank lines shrink
//!   to one;
//! - each line is indented by the brackets (`{`, `(`, `[`) open at its start, one level per line
//!   that opened any, and one more level for a line that continues an expression (the line
//!   before ended with an operator, or this one starts with `and`/`or`/a comparison);
//! - the spaces between two tokens on a line are canonical (`f(a, b)`, `x.y`, `-1`, `4..=8`,
//!   `a + b`), except that a run of two or more spaces where one belongs is kept: authors align
//!   `const` values and trailing comments in columns, and the printer keeps those columns;
//! - own-line comments take the indentation of the code around them; trailing comments keep
//!   their distance from the code (at least one space).
//!
//! The output is checked before it is returned: it must lex to the same tokens with the same
//! line breaks before each, so that a mistake here is an error, never a changed scenario.

use super::diag::{Diag, Span};
use super::lexer::{lex, Tok, Token};

/// Why a file cannot be formatted.
#[derive(Debug)]
pub enum FmtError {
    /// The file does not lex (or nests too deeply): the diagnostics point into it.
    Syntax(Vec<Diag>),
    /// The printer's output would not lex to the same tokens: a bug in the printer, at the
    /// first token that differs (byte offset in the input).
    Changed { at: usize },
}

/// Spaces per indentation level, as the built-in scenarios are written.
pub(crate) const INDENT: usize = 2;

/// One token of a code line and the spaces the author put before it on that line.
struct Piece<'a> {
    tok: &'a Tok,
    span: Span,
    text: &'a str,
    gap: usize,
}

/// One line of the file as the printer sees it.
enum Line<'a> {
    Code {
        pieces: Vec<Piece<'a>>,
        /// A trailing comment (from `#`, trailing whitespace trimmed) and the spaces before it.
        comment: Option<(usize, &'a str)>,
    },
    Comment(&'a str),
    Blank,
}

/// `src` formatted. Formatting formatted text gives it back unchanged.
pub fn format(src: &str) -> Result<String, FmtError> {
    let mut diags = Vec::new();
    let tokens = lex(src, &mut diags);
    if !diags.is_empty() {
        return Err(FmtError::Syntax(diags));
    }
    let lines = tidy_blank_lines(split_lines(src, &tokens));
    let out = print(&lines)?;
    verify(&tokens, &out)?;
    Ok(out)
}

/// The file's lines: code lines with their tokens, comment lines and blank lines.
fn split_lines<'a>(src: &'a str, tokens: &'a [Token]) -> Vec<Line<'a>> {
    let mut lines = Vec::new();
    let mut cur: Option<Line<'a>> = None;
    let mut pos = 0;
    for t in tokens {
        let gap = &src[pos..t.span.start];
        let mut segments = gap.split('\n').peekable();
        let first = segments.next().unwrap_or("");
        let broke = segments.peek().is_some();
        if let Some(hash) = first.find('#') {
            let comment = first[hash..].trim_end();
            match &mut cur {
                Some(Line::Code { comment: c, .. }) => *c = Some((hash.max(1), comment)),
                _ => lines.push(Line::Comment(comment)),
            }
        }
        let mut leading = if broke { "" } else { first };
        while let Some(seg) = segments.next() {
            if let Some(done) = cur.take() {
                lines.push(done);
            }
            let is_last = segments.peek().is_none();
            let trimmed = seg.trim();
            if trimmed.starts_with('#') {
                lines.push(Line::Comment(trimmed));
            } else if !is_last {
                lines.push(Line::Blank);
            } else {
                leading = seg;
            }
        }
        if matches!(t.tok, Tok::Eof) {
            break;
        }
        let piece = Piece {
            tok: &t.tok,
            span: t.span,
            text: &src[t.span.start..t.span.end],
            gap: leading.len(),
        };
        match &mut cur {
            Some(Line::Code { pieces, .. }) => pieces.push(piece),
            _ => {
                cur = Some(Line::Code {
                    pieces: vec![piece],
                    comment: None,
                })
            }
        }
        pos = t.span.end;
    }
    if let Some(done) = cur {
        lines.push(done);
    }
    lines
}

/// No blank line at the start or the end of the file, nor two in a row.
fn tidy_blank_lines(lines: Vec<Line<'_>>) -> Vec<Line<'_>> {
    let mut out: Vec<Line<'_>> = Vec::with_capacity(lines.len());
    for line in lines {
        let blank = matches!(line, Line::Blank);
        if blank && matches!(out.last(), None | Some(Line::Blank)) {
            continue;
        }
        out.push(line);
    }
    while matches!(out.last(), Some(Line::Blank)) {
        out.pop();
    }
    out
}

fn is_opener(t: &Tok) -> bool {
    matches!(t, Tok::Punct("{" | "(" | "["))
}

fn is_closer(t: &Tok) -> bool {
    matches!(t, Tok::Punct("}" | ")" | "]"))
}

/// Words after which an expression starts: `(`, `[` and `-` after them are not a call, an
/// index or a subtraction.
const EXPRESSION_KEYWORDS: &[&str] = &[
    "if", "else", "while", "match", "return", "not", "and", "or", "in", "assert", "fail", "let",
    "set", "append", "sleep", "always", "end", "then", "for", "expect", "crash",
];

/// Operators that, ending a line, say the expression goes on on the next.
fn continues_after(t: &Tok) -> bool {
    match t {
        Tok::Punct(p) => matches!(
            *p,
            "=" | "=>"
                | "=="
                | "!="
                | "<="
                | ">="
                | "<"
                | ">"
                | "+"
                | "-"
                | "*"
                | "/"
                | "%"
                | "..="
        ),
        Tok::Ident(w) => matches!(w.as_str(), "and" | "or" | "not" | "in"),
        _ => false,
    }
}

/// Operators that, starting a line, continue the expression of the line before (`-` is left
/// out: it may start a negative match pattern).
fn continues_before(t: &Tok) -> bool {
    match t {
        Tok::Punct(p) => matches!(
            *p,
            "==" | "!=" | "<=" | ">=" | "<" | ">" | "+" | "*" | "/" | "%" | "..="
        ),
        Tok::Ident(w) => matches!(w.as_str(), "and" | "or" | "in"),
        _ => false,
    }
}

/// True when the token ends an operand, so that a `-` after it subtracts and a `(` calls.
fn ends_operand(t: &Tok) -> bool {
    match t {
        Tok::Ident(w) => !EXPRESSION_KEYWORDS.contains(&w.as_str()),
        Tok::Int(_) | Tok::Duration(_) | Tok::Str(_) => true,
        Tok::Punct(p) => matches!(*p, ")" | "]"),
        Tok::Eof => false,
    }
}

/// The canonical number of spaces (0 or 1) between `prev` and `next` on one line; `before` is
/// the token before `prev` on that line, if any.
fn canonical_gap(before: Option<&Tok>, prev: &Tok, next: &Tok) -> usize {
    use Tok::Punct;
    let unary_minus = matches!(prev, Punct("-")) && !before.is_some_and(ends_operand);
    match (prev, next) {
        (_, Punct("," | ";" | ":" | ")" | "]")) => 0,
        (Punct("(" | "["), _) => 0,
        (Punct("." | "..="), _) | (_, Punct("." | "..=")) => 0,
        (Punct("{"), Punct("}")) => 0,
        _ if unary_minus => 0,
        (_, Punct("(" | "[")) if ends_operand(prev) => 0,
        _ => 1,
    }
}

/// True when the space before `pieces[i]` is inside a dashed name the author wrote glued
/// (`mailman-lockfile`, `unlink-no-check`): scenario and variant names are a run of adjacent
/// tokens, so such a `-` keeps no space on either side (`n-1` stays so too: the printer cannot
/// tell the two apart without parsing).
fn glued_dash(pieces: &[Piece<'_>], i: usize) -> bool {
    let word = |j: usize| {
        pieces
            .get(j)
            .is_some_and(|p| matches!(p.tok, Tok::Ident(_) | Tok::Int(_)))
    };
    let dash_at = |j: usize| {
        j >= 1
            && matches!(pieces[j].tok, Tok::Punct("-"))
            && pieces[j].gap == 0
            && pieces.get(j + 1).is_some_and(|n| n.gap == 0)
            && word(j - 1)
            && word(j + 1)
    };
    dash_at(i) || (i >= 1 && dash_at(i - 1))
}

/// True when writing `prev` and `next` with no space between could lex as another operator
/// (`=` `=` as `==`, `.` `.` `=` as `..=`).
fn would_merge(prev: &str, next: &str) -> bool {
    let (Some(a), Some(b)) = (prev.chars().last(), next.chars().next()) else {
        return false;
    };
    let pair = [a, b].iter().collect::<String>();
    ["..", ".=", "=>", "==", "!=", "<=", ">="].contains(&pair.as_str())
}

/// A bracket left open: the indentation level of the line that opened it, and whether it is a
/// `{` (a block, where a line may continue an expression) rather than `(` or `[`.
struct Open {
    level: usize,
    brace: bool,
}

/// How deep brackets may nest: far past what `racelab check` accepts, and small enough that
/// the indentation of a pathological file stays a few megabytes.
pub(crate) const MAX_BRACKETS: usize = 1000;

fn print(lines: &[Line<'_>]) -> Result<String, FmtError> {
    let mut out = String::new();
    let mut stack: Vec<Open> = Vec::new();
    // The last token of the code line before, to tell a continued expression.
    let mut last_of_previous: Option<&Tok> = None;
    for line in lines {
        match line {
            Line::Blank => out.push('\n'),
            Line::Comment(text) => {
                let level = stack.last().map_or(0, |o| o.level + 1);
                push_indent(&mut out, level);
                out.push_str(text);
                out.push('\n');
            }
            Line::Code { pieces, comment } => {
                let first = pieces[0].tok;
                // `base`: the line's level as a statement; `level`: one more when it continues
                // the expression of the line before. Brackets opened on a continuation line
                // indent from `base` (the body of `if a and\n  b {` sits one level in).
                let (base, level) = if is_closer(first) {
                    let level = stack.last().map_or(0, |o| o.level);
                    (level, level)
                } else {
                    let inner = stack.last().map_or(0, |o| o.level + 1);
                    let in_block = stack.last().is_none_or(|o| o.brace);
                    let continued =
                        last_of_previous.is_some_and(continues_after) || continues_before(first);
                    (inner, inner + usize::from(continued && in_block))
                };
                push_indent(&mut out, level);
                for (i, p) in pieces.iter().enumerate() {
                    if i > 0 {
                        let prev = &pieces[i - 1];
                        let before = (i > 1).then(|| pieces[i - 2].tok);
                        let mut gap = canonical_gap(before, prev.tok, p.tok);
                        if glued_dash(pieces, i) {
                            gap = 0;
                        }
                        if gap == 0 && would_merge(prev.text, p.text) {
                            gap = 1;
                        }
                        if gap == 1 && p.gap >= 2 {
                            // Kept: the author aligned this token in a column.
                            gap = p.gap;
                        }
                        push_spaces(&mut out, gap);
                    }
                    out.push_str(p.text);
                    if is_opener(p.tok) {
                        if stack.len() >= MAX_BRACKETS {
                            return Err(FmtError::Syntax(vec![Diag::new(
                                p.span,
                                format!("nested too deeply to format: more than {MAX_BRACKETS} levels of brackets"),
                                "this bracket",
                            )
                            .help("move the inner blocks into procedures")]));
                        }
                        stack.push(Open {
                            level: base,
                            brace: matches!(p.tok, Tok::Punct("{")),
                        });
                    } else if is_closer(p.tok) {
                        stack.pop();
                    }
                }
                if let Some((gap, text)) = comment {
                    push_spaces(&mut out, *gap);
                    out.push_str(text);
                }
                out.push('\n');
                last_of_previous = pieces.last().map(|p| p.tok);
            }
        }
    }
    Ok(out)
}

fn push_indent(out: &mut String, level: usize) {
    push_spaces(out, level * INDENT);
}

fn push_spaces(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n(' ', n));
}

/// Checks that `out` lexes to `tokens`, with a line break before the same ones.
fn verify(tokens: &[Token], out: &str) -> Result<(), FmtError> {
    let mut diags = Vec::new();
    let again = lex(out, &mut diags);
    let first_difference = tokens
        .iter()
        .zip(&again)
        .position(|(a, b)| a.tok != b.tok || a.nl_before != b.nl_before)
        .or_else(|| (tokens.len() != again.len() || !diags.is_empty()).then_some(0));
    match first_difference {
        None => Ok(()),
        Some(i) => Err(FmtError::Changed {
            at: tokens.get(i).map_or(0, |t| t.span.start),
        }),
    }
}

//! The spec's tokens: keywords, names, quoted names and `{ SQL }` blocks, with their spans.

use racelab_core::lang::diag::{Diag, Span};

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
    Ident(String),
    Sql(String),
    Int(u32),
    Keyword(&'static str),
    Punct(char),
    Eof,
}

impl Tok {
    pub(super) fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => format!("name `{s}`"),
            Tok::Sql(_) => "an SQL block `{ ... }`".into(),
            Tok::Int(n) => format!("number {n}"),
            Tok::Keyword(k) => format!("keyword `{k}`"),
            Tok::Punct(c) => format!("`{c}`"),
            Tok::Eof => "the end of the file".into(),
        }
    }
}

const KEYWORDS: [&str; 6] = [
    "notices",
    "permutation",
    "session",
    "setup",
    "step",
    "teardown",
];

fn ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

fn ident_cont(b: u8) -> bool {
    ident_start(b) || b.is_ascii_digit() || b == b'$'
}

/// Splits the source into tokens; an error ends the scan (isolationtester's scanner stops at
/// the first one too, and the rest of the file cannot be tokenized reliably).
pub(super) fn lex(src: &str) -> Result<Vec<(Tok, Span)>, Diag> {
    let b = src.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    while i < b.len() {
        let c = b[i];
        let start = i;
        match c {
            b'\n' | b' ' | b'\t' | b'\r' | 0x0c => i += 1,
            b'#' => {
                while i < b.len() && b[i] != b'\n' && b[i] != b'\r' {
                    i += 1;
                }
            }
            b'"' => {
                i += 1;
                let mut name = Vec::new();
                loop {
                    match b.get(i) {
                        None => {
                            return Err(Diag::new(
                                Span::new(start, start + 1),
                                "unterminated quoted identifier",
                                "this quote is never closed",
                            )
                            .help("close the name with `\"`"))
                        }
                        Some(b'\n') => {
                            return Err(Diag::new(
                                Span::new(start, i),
                                "unexpected newline in quoted identifier",
                                "the name starts here",
                            )
                            .help("a quoted name must end on its own line"))
                        }
                        Some(b'"') if b.get(i + 1) == Some(&b'"') => {
                            name.push(b'"');
                            i += 2;
                        }
                        Some(b'"') => {
                            i += 1;
                            break;
                        }
                        Some(&ch) => {
                            name.push(ch);
                            i += 1;
                        }
                    }
                }
                out.push((
                    Tok::Ident(String::from_utf8_lossy(&name).into_owned()),
                    Span::new(start, i),
                ));
            }
            b'{' => {
                i += 1;
                while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\r' | 0x0c) {
                    i += 1;
                }
                let body = i;
                while i < b.len() && b[i] != b'}' {
                    i += 1;
                }
                if i >= b.len() {
                    return Err(Diag::new(
                        Span::new(start, start + 1),
                        "unterminated sql block",
                        "this `{` is never closed",
                    )
                    .help("end the SQL block with `}` (an SQL block cannot contain `}`)"));
                }
                let mut end = i;
                while end > body && matches!(b[end - 1], b' ' | b'\t' | b'\r' | 0x0c) {
                    end -= 1;
                }
                out.push((
                    Tok::Sql(src[body..end].to_string()),
                    Span::new(start, i + 1),
                ));
                i += 1;
            }
            b'0'..=b'9' => {
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                let n = src[start..i]
                    .parse::<u32>()
                    .map_err(|_| Diag::new(Span::new(start, i), "number too large", "here"))?;
                out.push((Tok::Int(n), Span::new(start, i)));
            }
            b',' | b'(' | b')' | b'*' => {
                i += 1;
                out.push((Tok::Punct(c as char), Span::new(start, i)));
            }
            c if ident_start(c) => {
                while i < b.len() && ident_cont(b[i]) {
                    i += 1;
                }
                let word = &src[start..i];
                let tok = match KEYWORDS.iter().find(|k| **k == word) {
                    Some(k) => Tok::Keyword(k),
                    None => Tok::Ident(word.to_string()),
                };
                out.push((tok, Span::new(start, i)));
            }
            _ => {
                let len = src[start..].chars().next().map_or(1, char::len_utf8);
                let ch = &src[start..start + len];
                let d = Diag::new(
                    Span::new(start, start + len),
                    format!("unexpected character `{ch}`"),
                    "not part of the spec syntax",
                )
                .help("SQL goes inside `{ ... }`; `#` starts a comment");
                let d = swallowed_help(d, &out, src);
                return Err(d);
            }
        }
    }
    out.push((Tok::Eof, Span::new(src.len(), src.len())));
    Ok(out)
}

/// An unclosed `{` swallows spec text up to the next block's `}`, and the error shows up far
/// from the cause: name the brace.
pub(super) fn swallowed_help(d: Diag, before: &[(Tok, Span)], src: &str) -> Diag {
    let swallowing = before.iter().rev().find(|(t, _)| matches!(t, Tok::Sql(body) if ["session", "step", "permutation", "setup", "teardown"].iter().any(|k| body.contains(&format!("\n{k} ")))));
    match swallowing {
        Some((_, span)) => {
            let line = |at: usize| src[..at].matches('\n').count() + 1;
            d.help(format!("the `{{` on line {} is not closed before the next section: its SQL block runs to the `}}` on line {} and swallows the spec text between", line(span.start), line(span.end - 1)))
        }
        None => d,
    }
}

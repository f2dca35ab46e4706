//! The lexer: scenario text to tokens, each with its byte span and whether a newline precedes it.

use super::diag::{Diag, Span};

#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    Ident(String),
    Int(i64),
    /// A duration literal, already in milliseconds (`15s` is 15000).
    Duration(i64),
    /// A string literal's raw contents (escapes resolved, `{…}` interpolations kept as text).
    Str(String),
    Punct(&'static str),
    Eof,
}

#[derive(Debug, Clone)]
pub struct Token {
    pub tok: Tok,
    pub span: Span,
    /// True when a newline separates this token from the previous one; statements end at newlines.
    pub nl_before: bool,
    /// Byte offset where the string's contents start (for spans inside interpolations).
    pub content_start: usize,
}

const PUNCTS: &[&str] = &[
    "..=", "=>", "==", "!=", "<=", ">=", "{", "}", "(", ")", "[", "]", ",", ":", ";", ".", "=",
    "<", ">", "+", "-", "*", "/", "%",
];

/// Splits `src` into tokens. Lexical errors are collected, and lexing goes on after each.
pub fn lex(src: &str, diags: &mut Vec<Diag>) -> Vec<Token> {
    let bytes = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let mut nl = true;
    while i < bytes.len() {
        let c = bytes[i];
        if c == b'\n' {
            nl = true;
            i += 1;
            continue;
        }
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if c == b'#' {
            while i < bytes.len() && bytes[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        let start = i;
        let mut content_start = start;
        let tok = if c.is_ascii_alphabetic() || c == b'_' {
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            Tok::Ident(src[start..i].to_string())
        } else if c.is_ascii_digit() {
            while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'_') {
                i += 1;
            }
            let digits: String = src[start..i].chars().filter(|c| *c != '_').collect();
            let unit_start = i;
            while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
                i += 1;
            }
            let unit = &src[unit_start..i];
            match digits.parse::<i64>() {
                Err(_) => {
                    diags.push(
                        Diag::new(
                            Span::new(start, i),
                            "integer literal is too large",
                            "this number",
                        )
                        .help("integers are 64-bit signed"),
                    );
                    Tok::Int(0)
                }
                Ok(n) => match unit {
                    "" => Tok::Int(n),
                    "ms" => Tok::Duration(n),
                    "s" => Tok::Duration(n.saturating_mul(1000)),
                    "m" | "min" => Tok::Duration(n.saturating_mul(60_000)),
                    "h" => Tok::Duration(n.saturating_mul(3_600_000)),
                    _ => {
                        diags.push(
                            Diag::new(
                                Span::new(unit_start, i),
                                format!("unknown duration unit `{unit}`"),
                                "unknown unit",
                            )
                            .help("durations are written like `10ms`, `15s`, `2m` or `1h`"),
                        );
                        Tok::Duration(n)
                    }
                },
            }
        } else if c == b'"' {
            i += 1;
            content_start = i;
            let mut s = String::new();
            let mut closed = false;
            while i < bytes.len() {
                let ch = src[i..].chars().next().unwrap_or('\0');
                if ch == '"' {
                    i += 1;
                    closed = true;
                    break;
                }
                if ch == '\n' {
                    break;
                }
                if ch == '\\' {
                    let next = src[i + 1..].chars().next();
                    match next {
                        Some('n') => s.push('\n'),
                        Some('t') => s.push('\t'),
                        Some('"') => s.push('"'),
                        Some('\\') => s.push('\\'),
                        Some(other) => {
                            diags.push(
                                Diag::new(Span::new(i, i + 1 + other.len_utf8()), format!("unknown escape `\\{other}`"), "unknown escape")
                                    .help("strings know `\\n`, `\\t`, `\\\"` and `\\\\`; write `{{` and `}}` for literal braces"),
                            );
                        }
                        None => {}
                    }
                    i += 1 + next.map_or(0, char::len_utf8);
                    continue;
                }
                s.push(ch);
                i += ch.len_utf8();
            }
            if !closed {
                diags.push(
                    Diag::new(
                        Span::new(start, i),
                        "unterminated string",
                        "this string is never closed",
                    )
                    .help("close the string with `\"` on the same line"),
                );
            }
            Tok::Str(s)
        } else if let Some(p) = PUNCTS.iter().find(|p| src[i..].starts_with(**p)) {
            i += p.len();
            Tok::Punct(p)
        } else {
            let ch = src[i..].chars().next().unwrap_or('\0');
            i += ch.len_utf8().max(1);
            diags.push(
                Diag::new(
                    Span::new(start, i),
                    format!("unexpected character `{}`", ch.escape_debug()),
                    "not part of the language",
                )
                .help("comments start with `#`; strings are written in double quotes"),
            );
            nl = false;
            continue;
        };
        out.push(Token {
            tok,
            span: Span::new(start, i),
            nl_before: nl,
            content_start,
        });
        nl = false;
    }
    out.push(Token {
        tok: Tok::Eof,
        span: Span::new(src.len(), src.len()),
        nl_before: true,
        content_start: src.len(),
    });
    out
}

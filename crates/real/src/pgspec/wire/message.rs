//! The protocol's message framing: C strings, typed length-prefixed messages, and the fields
//! of ErrorResponse and NoticeResponse (rendered as libpq renders a notice).

pub(super) fn put_cstr(buf: &mut Vec<u8>, s: &str) {
    buf.extend_from_slice(s.as_bytes());
    buf.push(0);
}

pub(super) fn message(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![kind];
    m.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    m.extend_from_slice(body);
    m
}

/// Error and notice fields: (code, value).
pub(super) fn fields(body: &[u8]) -> Vec<(u8, String)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < body.len() && body[i] != 0 {
        let code = body[i];
        let end = body[i + 1..]
            .iter()
            .position(|&b| b == 0)
            .map_or(body.len(), |p| i + 1 + p);
        out.push((
            code,
            String::from_utf8_lossy(&body[i + 1..end]).into_owned(),
        ));
        i = end + 1;
    }
    out
}

pub(super) fn field(f: &[(u8, String)], code: u8) -> Option<&str> {
    f.iter().find(|(c, _)| *c == code).map(|(_, v)| v.as_str())
}

/// pqBuildErrorMessage3 at the default verbosity, for a notice (no CONTEXT, no cursor).
pub(super) fn notice_text(f: &[(u8, String)]) -> String {
    let mut s = String::new();
    if let Some(sev) = field(f, b'S') {
        s.push_str(&format!("{sev}:  "));
    }
    if let Some(m) = field(f, b'M') {
        s.push_str(m);
    }
    if let Some(p) = field(f, b'P') {
        s.push_str(&format!(" at character {p}"));
    } else if let Some(p) = field(f, b'p') {
        s.push_str(&format!(" at character {p}"));
    }
    s.push('\n');
    for (code, label) in [(b'D', "DETAIL"), (b'H', "HINT"), (b'q', "QUERY")] {
        if let Some(v) = field(f, code) {
            s.push_str(&format!("{label}:  {v}\n"));
        }
    }
    s
}

pub(super) fn cstr(body: &[u8], at: &mut usize) -> String {
    let end = body[*at..]
        .iter()
        .position(|&b| b == 0)
        .map_or(body.len(), |p| *at + p);
    let s = String::from_utf8_lossy(&body[*at..end]).into_owned();
    *at = (end + 1).min(body.len());
    s
}

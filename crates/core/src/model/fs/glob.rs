//! `glob(pattern)`: the directory and last component of a pattern, and Python glob's matching of one component.

/// `glob(pattern)`'s directory and last component; wildcards only in the last component.
pub fn split_glob(path: &str) -> Result<(String, String), String> {
    let (dir, pattern) = match path.rfind('/') {
        Some(0) => ("/", &path[1..]),
        Some(i) => (&path[..i], &path[i + 1..]),
        None => ("/", path),
    };
    if dir.contains(['*', '?']) {
        return Err(format!(
            "glob({path:?}): only the last component may hold wildcards"
        ));
    }
    Ok((dir.to_string(), pattern.to_string()))
}

/// Whether `name` matches a glob component (`*` any run, `?` one character, anything else
/// itself), as Python's `glob` does: a name starting with `.` only when the pattern does.
pub fn glob_matches(pattern: &str, name: &str) -> bool {
    fn go(p: &[char], n: &[char]) -> bool {
        match p.split_first() {
            None => n.is_empty(),
            Some(('*', rest)) => (0..=n.len()).any(|i| go(rest, &n[i..])),
            Some(('?', rest)) => !n.is_empty() && go(rest, &n[1..]),
            Some((c, rest)) => n.first() == Some(c) && go(rest, &n[1..]),
        }
    }
    if name.starts_with('.') && !pattern.starts_with('.') {
        return false;
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    go(&p, &n)
}

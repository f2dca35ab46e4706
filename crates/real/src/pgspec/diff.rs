//! A unified diff (Myers' O(ND) algorithm, three lines of context), for showing how a spec's
//! output differs from its expected file as pg_regress's `regression.diffs` would.

/// `diff -U3 expected actual`; empty when equal. Beyond 1000 differing lines it shows the first
/// difference only (a run that went wrong early differs everywhere, and the rest is noise).
pub(crate) fn unified(
    expected: &str,
    actual: &str,
    expected_name: &str,
    actual_name: &str,
) -> String {
    let a: Vec<&str> = expected.lines().collect();
    let b: Vec<&str> = actual.lines().collect();
    if a == b {
        return String::new();
    }
    let ops = match myers(&a, &b, 1000) {
        Some(ops) => ops,
        None => {
            let first = a
                .iter()
                .zip(&b)
                .position(|(x, y)| x != y)
                .unwrap_or(a.len().min(b.len()));
            return format!("--- {expected_name}\n+++ {actual_name}\n(too many differences for a diff; first at line {}:)\n-{}\n+{}\n", first + 1, a.get(first).unwrap_or(&"<end of file>"), b.get(first).unwrap_or(&"<end of file>"));
        }
    };
    render(&ops, &a, &b, expected_name, actual_name)
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Op {
    Same(usize, usize),
    Del(usize),
    Ins(usize),
}

fn myers(a: &[&str], b: &[&str], max_d: usize) -> Option<Vec<Op>> {
    let (n, m) = (a.len() as isize, b.len() as isize);
    let off = (n + m + 1) as usize;
    let mut v = vec![0isize; 2 * off + 1];
    let mut trace: Vec<Vec<isize>> = Vec::new();
    let mut end_d = None;
    'outer: for d in 0..=((n + m) as usize).min(max_d) as isize {
        // Only diagonals -d..=d matter in round d: O(D^2) memory, not O(D(N+M)).
        trace.push(v[off - d as usize..=off + d as usize].to_vec());
        let mut k = -d;
        while k <= d {
            let idx = (k + off as isize) as usize;
            let mut x = if k == -d || (k != d && v[idx - 1] < v[idx + 1]) {
                v[idx + 1]
            } else {
                v[idx - 1] + 1
            };
            let mut y = x - k;
            while x < n && y < m && a[x as usize] == b[y as usize] {
                x += 1;
                y += 1;
            }
            v[idx] = x;
            if x >= n && y >= m {
                end_d = Some(d);
                break 'outer;
            }
            k += 2;
        }
    }
    let end_d = end_d?;
    // Walk back through the saved frontiers: trace[d] is the frontier before round d.
    let mut ops = Vec::new();
    let (mut x, mut y) = (n, m);
    for d in (1..=end_d).rev() {
        let window = &trace[d as usize];
        let at = |k: isize| window[(k + d) as usize];
        let k = x - y;
        let prev_k = if k == -d || (k != d && at(k - 1) < at(k + 1)) {
            k + 1
        } else {
            k - 1
        };
        let prev_x = at(prev_k);
        let prev_y = prev_x - prev_k;
        while x > prev_x && y > prev_y {
            x -= 1;
            y -= 1;
            ops.push(Op::Same(x as usize, y as usize));
        }
        if x == prev_x {
            y -= 1;
            ops.push(Op::Ins(y as usize));
        } else {
            x -= 1;
            ops.push(Op::Del(x as usize));
        }
    }
    while x > 0 && y > 0 {
        x -= 1;
        y -= 1;
        ops.push(Op::Same(x as usize, y as usize));
    }
    ops.reverse();
    Some(ops)
}

fn render(ops: &[Op], a: &[&str], b: &[&str], an: &str, bn: &str) -> String {
    const CONTEXT: usize = 3;
    let mut out = format!("--- {an}\n+++ {bn}\n");
    let changed: Vec<usize> = ops
        .iter()
        .enumerate()
        .filter(|(_, o)| !matches!(o, Op::Same(..)))
        .map(|(i, _)| i)
        .collect();
    let mut i = 0;
    while i < changed.len() {
        let start = changed[i].saturating_sub(CONTEXT);
        let mut end = changed[i];
        while i < changed.len() && changed[i] <= end + 2 * CONTEXT {
            end = changed[i];
            i += 1;
        }
        let end = (end + CONTEXT + 1).min(ops.len());
        let hunk = &ops[start..end];
        let a_start = hunk.iter().find_map(|o| match o {
            Op::Same(x, _) | Op::Del(x) => Some(*x),
            Op::Ins(_) => None,
        });
        let b_start = hunk.iter().find_map(|o| match o {
            Op::Same(_, y) | Op::Ins(y) => Some(*y),
            Op::Del(_) => None,
        });
        let a_len = hunk.iter().filter(|o| !matches!(o, Op::Ins(_))).count();
        let b_len = hunk.iter().filter(|o| !matches!(o, Op::Del(_))).count();
        out.push_str(&format!(
            "@@ -{},{} +{},{} @@\n",
            a_start.map_or(0, |s| s + 1),
            a_len,
            b_start.map_or(0, |s| s + 1),
            b_len
        ));
        for o in hunk {
            match o {
                Op::Same(x, _) => out.push_str(&format!(" {}\n", a[*x])),
                Op::Del(x) => out.push_str(&format!("-{}\n", a[*x])),
                Op::Ins(y) => out.push_str(&format!("+{}\n", b[*y])),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::unified;

    #[test]
    fn a_changed_line_shows_as_minus_and_plus_with_context() {
        let a = "1\n2\n3\n4\n5\n6\n7\n8\n";
        let b = "1\n2\n3\n4x\n5\n6\n7\n8\n9\n";
        expect_test::expect![[r#"
            --- e
            +++ a
            @@ -1,8 +1,9 @@
             1
             2
             3
            -4
            +4x
             5
             6
             7
             8
            +9
        "#]]
        .assert_eq(&unified(a, b, "e", "a"));
    }

    #[test]
    fn equal_texts_have_no_diff() {
        assert_eq!(unified("a\nb\n", "a\nb\n", "e", "a"), "");
    }
}

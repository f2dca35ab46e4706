//! isolationtester's output, byte for byte: result sets as libpq's `PQprint` prints them with
//! `header`, `align` and `fieldSep = "|"` (fe-print.c), errors as `SEVERITY:  message`.

use super::wire::PgResult;

/// PQprint(res, {header, align, fieldSep "|"}): a header line, a dashed border, right-aligned
/// numeric columns, `(N rows)` and a blank line. Widths are in bytes, as printf counts them.
pub(crate) fn print_result_set(out: &mut String, columns: &[String], rows: &[Vec<Option<String>>]) {
    if columns.is_empty() {
        return;
    }
    let n = columns.len();
    let mut width: Vec<usize> = columns.iter().map(String::len).collect();
    let mut not_num = vec![false; n];
    for row in rows {
        for (j, v) in row.iter().enumerate().take(n) {
            let Some(v) = v.as_deref().filter(|v| !v.is_empty()) else {
                continue;
            };
            if !not_num[j] {
                // fe-print.c: digits, '.', 'E', 'e', ' ', '-' only; not starting with E/e;
                // ending in a digit. A multibyte character counts as one non-numeric char.
                let mut last = '0';
                for ch in v.chars() {
                    last = ch;
                    if !(ch.is_ascii_digit() || matches!(ch, '.' | 'E' | 'e' | ' ' | '-')) {
                        not_num[j] = true;
                        break;
                    }
                }
                if v.starts_with(['E', 'e']) || !last.is_ascii_digit() {
                    not_num[j] = true;
                }
            }
            width[j] = width[j].max(v.len());
        }
    }
    let pad = |out: &mut String, s: &str, j: usize, width: &[usize], not_num: &[bool]| {
        let fill = width[j].saturating_sub(s.len());
        if not_num[j] {
            out.push_str(s);
            out.extend(std::iter::repeat_n(' ', fill));
        } else {
            out.extend(std::iter::repeat_n(' ', fill));
            out.push_str(s);
        }
    };
    for (j, c) in columns.iter().enumerate() {
        pad(out, c, j, &width, &not_num);
        if j + 1 < n {
            out.push('|');
        }
    }
    out.push('\n');
    for (j, w) in width.iter().enumerate() {
        out.extend(std::iter::repeat_n('-', *w));
        if j + 1 < n {
            out.push('+');
        }
    }
    out.push('\n');
    for row in rows {
        for j in 0..n {
            let v = row.get(j).and_then(|v| v.as_deref()).unwrap_or("");
            pad(out, v, j, &width, &not_num);
            if j + 1 < n {
                out.push('|');
            }
        }
        out.push('\n');
    }
    out.push_str(&format!(
        "({} row{})\n\n",
        rows.len(),
        if rows.len() == 1 { "" } else { "s" }
    ));
}

/// How try_complete_step prints one result of a completed step.
pub(crate) fn print_step_result(out: &mut String, r: &PgResult) {
    match r {
        PgResult::Command | PgResult::Empty => {}
        PgResult::Tuples { columns, rows } => print_result_set(out, columns, rows),
        PgResult::Error {
            severity, message, ..
        } => out.push_str(&format!("{severity}:  {message}\n")),
        PgResult::Lost(text) => out.push_str(&format!("{text}\n")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(v: &[&[Option<&str>]]) -> Vec<Vec<Option<String>>> {
        v.iter()
            .map(|r| r.iter().map(|c| c.map(str::to_string)).collect())
            .collect()
    }

    #[test]
    fn numbers_are_right_aligned_and_text_left_aligned() {
        let mut out = String::new();
        print_result_set(
            &mut out,
            &["id".into(), "data".into()],
            &rows(&[&[Some("1"), Some("foo")], &[Some("100"), None]]),
        );
        expect_test::expect![[r#"
             id|data
            ---+----
              1|foo 
            100|    
            (2 rows)

        "#]]
        .assert_eq(&out);
    }

    #[test]
    fn a_value_ending_in_a_letter_is_text() {
        let mut out = String::new();
        print_result_set(
            &mut out,
            &["balance".into()],
            &rows(&[&[Some("1e")], &[Some("12345")]]),
        );
        expect_test::expect![[r#"
            balance
            -------
            1e     
            12345  
            (2 rows)

        "#]]
        .assert_eq(&out);
    }
}

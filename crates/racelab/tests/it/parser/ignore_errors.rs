//! `ignore ERRNO`: lowers like the match it abbreviates, and its errors.

use expect_test::expect;
use racelab_core::lang::{compile, render_plain};

use super::{check_err, check_ok, in_actor, render, FILE};

#[test]
fn ignore_lowers_exactly_like_the_match_it_abbreviates() {
    let sugar = in_actor("    unlink(P) ignore ENOENT\n    link(P, \"/g\") ignore EEXIST, ENOENT\n    sql(\"INSERT INTO t (x) VALUES (1)\") ignore IntegrityError");
    let spelled = in_actor("    match unlink(P) { ok => {} err(ENOENT) => {} }\n    match link(P, \"/g\") {\n      ok => {}\n      err(EEXIST) => {}\n      err(ENOENT) => {}\n    }\n    match sql(\"INSERT INTO t (x) VALUES (1)\") { ok => {} err(IntegrityError) => {} }");
    let sugar = sugar.replace(
        "log l\n",
        "log l\n  database { \"CREATE TABLE t (x INT)\" }\n",
    );
    let spelled = spelled.replace(
        "log l\n",
        "log l\n  database { \"CREATE TABLE t (x INT)\" }\n",
    );
    let a = compile(FILE, &sugar).unwrap_or_else(|e| panic!("{}", render_plain(&e)));
    let b = compile(FILE, &spelled).unwrap_or_else(|e| panic!("{}", render_plain(&e)));
    assert_eq!(render(&a), render(&b));
    check_ok(
        &sugar,
        expect![[r#"
            scenario t
            variant default expect=none
              actors: a->a
              cells: c=Int(0)
              logs: l
              proc id/1 regs=1 [2]: ret= ret
              proc a/0 regs=3 [21]: unlink? jn3 j6 jn5 j6 unhandled link? jn9 j14 jn11 j14 jn13 j14 unhandled sql? jn17 j20 jn19 j20 unhandled ret
        "#]],
    );
}

#[test]
fn ignore_drops_the_listed_errors_and_reports_the_others() {
    use racelab_core::explore::{explore, Budget, EngineConfig, EngineKind};
    let run = |stmt: &str| {
        let src =
            format!("scenario s {{\n  fs {{ dir \"/d\" }}\n  actor a {{\n    {stmt}\n  }}\n}}\n");
        let prog = crate::engines::program(&src);
        let ex = explore(
            &prog,
            &EngineConfig::new(
                EngineKind::NativeDfs,
                Budget::new(100, std::time::Duration::from_secs(30)),
            ),
        )
        .expect("explores");
        ex.findings
            .iter()
            .map(|f| f.invariant.clone())
            .collect::<Vec<_>>()
    };
    // The file does not exist: ENOENT is ignored, so nothing breaks ...
    assert_eq!(run("unlink(\"/d/f\") ignore ENOENT"), Vec::<String>::new());
    assert_eq!(
        run("unlink(\"/d/f\") ignore EEXIST, ENOENT"),
        Vec::<String>::new()
    );
    // ... but an error that is not listed is unhandled, as in a `match` without it.
    assert_eq!(run("unlink(\"/d/f\") ignore EEXIST"), ["unhandled_error"]);
}

#[test]
fn err_ignore_unknown_errno_suggests_the_closest() {
    check_err(
        &in_actor("    unlink(P) ignore ENOENTT, EEXIST"),
        expect![[r#"
            1 error in test.race
              × unknown errno `ENOENTT`
               ╭─[test.race:7:22]
             6 │   actor a {
             7 │     unlink(P) ignore ENOENTT, EEXIST
               ·                      ───┬───
               ·                         ╰── not an errno
             8 │   }
               ╰────
              help: did you mean `ENOENT`? known errnos: EPERM, ENOENT, EINTR, EIO, EBADF, EAGAIN, EACCES,
                    EBUSY, EEXIST, EXDEV, ENOTDIR, EISDIR, EINVAL, ENOSPC, EROFS, EMLINK, ENAMETOOLONG,
                    ENOTEMPTY, ELOOP, ESTALE, IntegrityError, OperationalError, ProgrammingError
        "#]],
    );
}

#[test]
fn err_ignore_after_something_that_is_not_an_operation() {
    check_err(
        &in_actor("    id(1) ignore ENOENT"),
        expect![[r#"
            1 error in test.race
              × `ignore` follows an operation that can fail
               ╭─[test.race:7:5]
             6 │   actor a {
             7 │     id(1) ignore ENOENT
               ·     ──────┬─────
               ·           ╰── not an operation
             8 │   }
               ╰────
              help: write it after a call such as `unlink(path) ignore ENOENT` or `sql("...") ignore
                    IntegrityError`
        "#]],
    );
}

#[test]
fn err_ignore_without_an_errno() {
    check_err(
        &in_actor("    unlink(P) ignore\n    unlink(P) ignore 3"),
        expect![[r#"
            2 errors in test.race
              × expected an errno such as ENOENT after `ignore`, found the end of the line
               ╭─[test.race:7:15]
             6 │   actor a {
             7 │     unlink(P) ignore
               ·               ───┬──
               ·                  ╰── expected the errors to ignore
             8 │     unlink(P) ignore 3
               ╰────
              help: write `unlink(path) ignore ENOENT` or `link(a, b) ignore EEXIST, ENOENT`
              × expected an errno such as ENOENT after `ignore`, found number `3`
               ╭─[test.race:8:22]
             7 │     unlink(P) ignore
             8 │     unlink(P) ignore 3
               ·                      ┬
               ·                      ╰── expected the errors to ignore
             9 │   }
               ╰────
              help: write `unlink(path) ignore ENOENT` or `link(a, b) ignore EEXIST, ENOENT`
        "#]],
    );
}

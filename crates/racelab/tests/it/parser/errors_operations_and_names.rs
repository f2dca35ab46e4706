//! Malformed input, part one: braces, strings, durations, unknown operations and arities,
//! errnos, and undeclared names, cells and logs produce the expected diagnostics.

use expect_test::expect;

use super::check_err;

#[test]
fn err_missing_closing_brace() {
    check_err(
        "scenario s {\n  actor a {\n    sleep 1s\n",
        expect![[r#"
            3 errors in test.race
              × the scenario has no actors
               ╭─[test.race:1:1]
             1 │ scenario s {
               · ▲
               · ╰── nothing would run
             2 │   actor a {
               ╰────
              help: declare at least one actor: `actor worker x 2 { ... }`
              × unexpected end of file
               ╭─[test.race:4:1]
             3 │     sleep 1s
               ╰────
              help: add the missing `}`
              × unexpected end of file
               ╭─[test.race:4:1]
             3 │     sleep 1s
               ╰────
              help: add the `}` that closes `scenario { ... }`
        "#]],
    );
}

#[test]
fn err_unterminated_string() {
    check_err(
        "scenario s {\n  about \"never closed\n  actor a { }\n}\n",
        expect![[r#"
            1 error in test.race
              × unterminated string
               ╭─[test.race:2:9]
             1 │ scenario s {
             2 │   about "never closed
               ·         ──────┬──────
               ·               ╰── this string is never closed
             3 │   actor a { }
               ╰────
              help: close the string with `"` on the same line
        "#]],
    );
}

#[test]
fn err_unknown_duration_unit() {
    check_err(
        "scenario s {\n  const NAP = 5q\n  actor a { sleep NAP }\n}\n",
        expect![[r#"
            1 error in test.race
              × unknown duration unit `q`
               ╭─[test.race:2:16]
             1 │ scenario s {
             2 │   const NAP = 5q
               ·                ┬
               ·                ╰── unknown unit
             3 │   actor a { sleep NAP }
               ╰────
              help: durations are written like `10ms`, `15s`, `2m` or `1h`
        "#]],
    );
}

#[test]
fn err_unknown_operation_suggests_link() {
    check_err(
        "scenario s {\n  actor a {\n    lnk(\"/a\", \"/b\")\n  }\n}\n",
        expect![[r#"
            1 error in test.race
              × unknown operation or procedure `lnk`
               ╭─[test.race:3:5]
             2 │   actor a {
             3 │     lnk("/a", "/b")
               ·     ─┬─
               ·      ╰── unknown
             4 │   }
               ╰────
              help: did you mean `link`? operations: create, write, read, link, unlink, rename, stat, utime,
                    touch, mkdir, rmdir, glob, open, flock, fstat, close, len, str, int, contains, min, max,
                    first, push, put, rest, remove
        "#]],
    );
}

#[test]
fn err_wrong_arity_of_operation() {
    check_err(
        "scenario s {\n  actor a {\n    rename(\"/a\")\n  }\n}\n",
        expect![[r#"
            1 error in test.race
              × `rename` takes 2 arguments, not 1
               ╭─[test.race:3:5]
             2 │   actor a {
             3 │     rename("/a")
               ·     ──────┬─────
               ·           ╰── wrong number of arguments
             4 │   }
               ╰────
              help: write `rename(from, to)`
        "#]],
    );
}

#[test]
fn err_wrong_arity_of_procedure() {
    check_err(
        "scenario s {\n  proc p(a, b) { }\n  actor a {\n    p(1)\n  }\n}\n",
        expect![[r#"
            1 error in test.race
              × procedure `p` takes 2 arguments, not 1
               ╭─[test.race:4:5]
             3 │   actor a {
             4 │     p(1)
               ·     ──┬─
               ·       ╰── wrong number of arguments
             5 │   }
               ╰────
              help: match the procedure's parameters
        "#]],
    );
}

#[test]
fn err_create_second_argument_not_excl() {
    check_err(
        "scenario s {\n  actor a {\n    create(\"/a\", true)\n  }\n}\n",
        expect![[r#"
            1 error in test.race
              × the second argument of `create` can only be `excl`
               ╭─[test.race:3:18]
             2 │   actor a {
             3 │     create("/a", true)
               ·                  ──┬─
               ·                    ╰── expected `excl`
             4 │   }
               ╰────
              help: write `create(path)` or `create(path, excl)` for O_EXCL
        "#]],
    );
}

#[test]
fn err_descriptor_operations_flags_and_arity() {
    check_err(
        "scenario s {\n  actor a {\n    let fd = open(\"/a\", excl)\n    flock(fd, ex)\n    fstat(fd, 1)\n    close()\n  }\n}\n",
        expect![[r#"
            4 errors in test.race
              × the second argument of `open` can only be `creat`
               ╭─[test.race:3:25]
             2 │   actor a {
             3 │     let fd = open("/a", excl)
               ·                         ──┬─
               ·                           ╰── expected `creat`
             4 │     flock(fd, ex)
               ╰────
              help: write `open(path) or open(path, creat)`
              × the second argument of `flock` can only be `un`
               ╭─[test.race:4:15]
             3 │     let fd = open("/a", excl)
             4 │     flock(fd, ex)
               ·               ─┬
               ·                ╰── expected `un`
             5 │     fstat(fd, 1)
               ╰────
              help: write `flock(fd) (LOCK_EX|LOCK_NB) or flock(fd, un) (LOCK_UN)`
              × `fstat` takes 1 argument, not 2
               ╭─[test.race:5:5]
             4 │     flock(fd, ex)
             5 │     fstat(fd, 1)
               ·     ──────┬─────
               ·           ╰── wrong number of arguments
             6 │     close()
               ╰────
              help: write `fstat(fd)`
              × `close` takes 1 argument, not 0
               ╭─[test.race:6:5]
             5 │     fstat(fd, 1)
             6 │     close()
               ·     ───┬───
               ·        ╰── wrong number of arguments
             7 │   }
               ╰────
              help: write `close(fd)`
        "#]],
    );
}

#[test]
fn err_unknown_errno() {
    check_err(
        "scenario s {\n  actor a {\n    match stat(\"/a\") {\n      ok => {}\n      err(ENOFILE) => {}\n    }\n  }\n}\n",
        expect![[r#"
            1 error in test.race
              × unknown errno `ENOFILE`
               ╭─[test.race:5:11]
             4 │       ok => {}
             5 │       err(ENOFILE) => {}
               ·           ───┬───
               ·              ╰── not an errno
             6 │     }
               ╰────
              help: known errnos: EPERM, ENOENT, EINTR, EIO, EBADF, EAGAIN, EACCES, EBUSY, EEXIST, EXDEV,
                    ENOTDIR, EISDIR, EINVAL, ENOSPC, EROFS, EMLINK, ENAMETOOLONG, ENOTEMPTY, ELOOP, ESTALE,
                    IntegrityError, OperationalError, ProgrammingError
        "#]],
    );
}

#[test]
fn err_unknown_variable_with_typo_suggestion() {
    check_err(
        "scenario s {\n  actor a {\n    let counter = 1\n    let y = countr + 1\n  }\n}\n",
        expect![[r#"
            1 error in test.race
              × unknown name `countr`
               ╭─[test.race:4:13]
             3 │     let counter = 1
             4 │     let y = countr + 1
               ·             ───┬──
               ·                ╰── not declared
             5 │   }
               ╰────
              help: did you mean `counter`?
        "#]],
    );
}

#[test]
fn err_errno_used_as_value() {
    check_err(
        "scenario s {\n  actor a {\n    let e = ENOENT\n  }\n}\n",
        expect![[r#"
            1 error in test.race
              × unknown name `ENOENT`
               ╭─[test.race:3:13]
             2 │   actor a {
             3 │     let e = ENOENT
               ·             ───┬──
               ·                ╰── not declared
             4 │   }
               ╰────
              help: errno names are matched with `err(NAME)` in a `match` arm
        "#]],
    );
}

#[test]
fn err_assignment_to_undeclared() {
    check_err(
        "scenario s {\n  actor a {\n    x = 1\n  }\n}\n",
        expect![[r#"
            1 error in test.race
              × assignment to undeclared variable `x`
               ╭─[test.race:3:5]
             2 │   actor a {
             3 │     x = 1
               ·     ┬
               ·     ╰── not declared
             4 │   }
               ╰────
              help: declare it first: `let x = ...`
        "#]],
    );
}

#[test]
fn err_assignment_to_cell_without_set() {
    check_err(
        "scenario s {\n  cell c = 0\n  actor a {\n    c = 1\n  }\n}\n",
        expect![[r#"
            1 error in test.race
              × `c` is a shared cell
               ╭─[test.race:4:5]
             3 │   actor a {
             4 │     c = 1
               ·     ┬
               ·     ╰── a cell
             5 │   }
               ╰────
              help: write a cell with `set c = ...`; that is a step
        "#]],
    );
}

#[test]
fn err_set_unknown_cell() {
    check_err(
        "scenario s {\n  actor a {\n    set nothere = 1\n  }\n}\n",
        expect![[r#"
            1 error in test.race
              × unknown cell `nothere`
               ╭─[test.race:3:9]
             2 │   actor a {
             3 │     set nothere = 1
               ·         ───┬───
               ·            ╰── not a cell
             4 │   }
               ╰────
              help: declare it at the top level: `cell NAME = initial value`
        "#]],
    );
}

#[test]
fn err_append_unknown_log() {
    check_err(
        "scenario s {\n  actor a {\n    append nolog \"x\"\n  }\n}\n",
        expect![[r#"
            1 error in test.race
              × unknown log `nolog`
               ╭─[test.race:3:12]
             2 │   actor a {
             3 │     append nolog "x"
               ·            ──┬──
               ·              ╰── not a log
             4 │   }
               ╰────
              help: declare it at the top level: `log NAME`
        "#]],
    );
}

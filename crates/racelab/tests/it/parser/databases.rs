//! The server's databases (issue 6): named databases, connect/close and their errors.

use expect_test::expect;

use super::{check_err, check_ok};

#[test]
fn named_databases_connect_close_and_connections() {
    check_ok(
        "scenario t {\n  database rw\n  database ro\n  local conn = none\n  actor a {\n    conn = connect(\"rw\")\n    close(conn)\n  }\n  invariant none_open: at end connections(\"rw\") == 0\n  variant v { expect holds }\n}\n",
        expect![[r#"
            scenario t
            variant v expect=holds
              actors: a->a
              invariant none_open: at end connections("rw") == 0
              proc a/0 regs=2 [4]: connect local:conn close ret
        "#]],
    );
}

#[test]
fn err_connect_without_a_named_database() {
    check_err(
        "scenario t {\n  actor a {\n    let c = connect(\"rw\")\n  }\n}\n",
        expect![[r#"
        1 error in test.race
          × `connect` needs a database to connect to
           ╭─[test.race:3:13]
         2 │   actor a {
         3 │     let c = connect("rw")
           ·             ───┬───
           ·                ╰── no `database NAME` declared
         4 │   }
           ╰────
          help: declare the server's databases first: `database rw_main_master`
    "#]],
    );
}

#[test]
fn err_connect_to_an_undeclared_database() {
    check_err(
        "scenario t {\n  database rw_main_master\n  actor a {\n    let c = connect(\"rw_main_mastr\")\n  }\n  invariant i: at end connections(\"ro\") == 0\n}\n",
        expect![[r#"
            2 errors in test.race
              × no database is named rw_main_mastr
               ╭─[test.race:4:21]
             3 │   actor a {
             4 │     let c = connect("rw_main_mastr")
               ·                     ───────┬───────
               ·                            ╰── unknown database
             5 │   }
               ╰────
              help: declared databases: "rw_main_master"; declare others with `database NAME`
              × no database is named ro
               ╭─[test.race:6:35]
             5 │   }
             6 │   invariant i: at end connections("ro") == 0
               ·                                   ──┬─
               ·                                     ╰── unknown database
             7 │ }
               ╰────
              help: declared databases: "rw_main_master"; declare others with `database NAME`
        "#]],
    );
}

#[test]
fn err_procedure_named_like_an_operation() {
    check_err("scenario t {\n  proc touch(p) {\n    return p\n  }\n  actor a {\n    touch(\"/f\")\n  }\n}\n", expect![[r#"
        1 error in test.race
          × a procedure cannot be named `touch`: that is an operation
           ╭─[test.race:2:8]
         1 │ scenario t {
         2 │   proc touch(p) {
           ·        ──┬──
           ·          ╰── the name of an operation
         3 │     return p
           ╰────
          help: calls of `touch` would run the operation, not this procedure; rename it (e.g. `touch_`)
    "#]]);
}

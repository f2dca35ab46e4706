//! Variant inheritance: `extends` inherits replacements and expectations, and its errors.

use expect_test::expect;
use racelab_core::lang::compile;
use racelab_lang::ir::Instr;

use super::{check_err, check_ok, FILE};

const EXTENDS: &str = r#"scenario s {
  const NAP = 1s
  log l
  proc step() { append l "plain" }
  actor a { step() sleep NAP }
  invariant quiet: always count(l) <= 1
  variant patched {
    proc step() {
      append l "patched"
      append l "twice"
    }
    fault die: crash a
    expect violates quiet
  }
  variant patched-crash extends patched {
    fault hang: stall a for 5s
    faults 2
    expect holds
  }
  variant patched-slow extends patched-crash {
    const NAP = 3s
    fault die: stall a for 1s
  }
}"#;

#[test]
fn a_variant_extends_another_and_inherits_its_replacements_and_expectations() {
    check_ok(
        EXTENDS,
        expect![[r#"
            scenario s
            variant patched expect=violates(quiet)
              actors: a->a
              logs: l
              invariant quiet: always count(l) <= 1
              proc step/0 regs=0 [3]: append:l append:l ret
              proc a/0 regs=0 [3]: call:step sleep ret
            variant patched-crash expect=holds
              actors: a->a
              logs: l
              invariant quiet: always count(l) <= 1
              proc step/0 regs=0 [3]: append:l append:l ret
              proc a/0 regs=0 [3]: call:step sleep ret
            variant patched-slow expect=holds
              actors: a->a
              logs: l
              invariant quiet: always count(l) <= 1
              proc step/0 regs=0 [3]: append:l append:l ret
              proc a/0 regs=0 [3]: call:step sleep ret
        "#]],
    );
    let sc = compile(FILE, EXTENDS).unwrap();
    let faults = |v: &str| {
        let p = sc.variant(v).unwrap();
        let names: Vec<String> = p.faults.iter().map(|f| f.text.clone()).collect();
        (names.join("; "), p.fault_budget)
    };
    assert_eq!(faults("patched"), ("fault die: crash a".to_string(), 1));
    // The child keeps the parent's fault and adds its own, and sets the budget.
    assert_eq!(
        faults("patched-crash"),
        (
            "fault die: crash a; fault hang: stall a for 5s".to_string(),
            2
        )
    );
    // The grandchild replaces the inherited `die` in place and keeps the budget.
    assert_eq!(
        faults("patched-slow"),
        (
            "fault die: stall a for 1s; fault hang: stall a for 5s".to_string(),
            2
        )
    );
    // The grandchild's constant is in its code; its parent's is not.
    let nap = |v: &str| match &sc.variant(v).unwrap().procs[1].code[1] {
        Instr::Op { args, .. } => format!("{:?}", args[0]),
        other => panic!("{other:?}"),
    };
    assert_eq!(nap("patched-crash"), "Const(Int(1000))");
    assert_eq!(nap("patched-slow"), "Const(Int(3000))");
}

#[test]
fn editing_a_parent_variant_changes_its_childrens_fingerprints() {
    // A replay token recorded on `patched-crash` must not fit once what it runs changed, even
    // if the change was written in `patched`.
    let before = compile(FILE, EXTENDS).unwrap();
    let edited = EXTENDS.replace("append l \"twice\"", "append l \"thrice\"");
    let after = compile(FILE, &edited).unwrap();
    for v in ["patched", "patched-crash", "patched-slow"] {
        assert_ne!(
            before.variant(v).unwrap().fingerprint,
            after.variant(v).unwrap().fingerprint,
            "{v}"
        );
    }
    // Comments do not count.
    let commented = EXTENDS.replace("fault hang:", "# a comment\n    fault hang:");
    let same = compile(FILE, &commented).unwrap();
    assert_eq!(
        before.variant("patched-crash").unwrap().fingerprint,
        same.variant("patched-crash").unwrap().fingerprint
    );
}

#[test]
fn err_variant_extends_an_unknown_variant_suggests_the_closest() {
    check_err(
        "scenario s {\n  actor a { }\n  variant patched { expect holds }\n  variant crash extends pached { expect holds }\n}\n",
        expect![[r#"
            1 error in test.race
              × variant `crash` extends `pached`, which is not a variant of this scenario
               ╭─[test.race:4:25]
             3 │   variant patched { expect holds }
             4 │   variant crash extends pached { expect holds }
               ·                         ───┬──
               ·                            ╰── no such variant
             5 │ }
               ╰────
              help: did you mean `patched`?
        "#]],
    );
}

#[test]
fn err_variant_extends_itself() {
    check_err(
        "scenario s {\n  actor a { }\n  variant loop-back extends loop-back { expect holds }\n}\n",
        expect![[r#"
            1 error in test.race
              × variant `loop-back` extends itself
               ╭─[test.race:3:11]
             2 │   actor a { }
             3 │   variant loop-back extends loop-back { expect holds }
               ·           ────┬────         ────┬────
               ·               │                 ╰── the variant it extends
               ·               ╰── is this variant
             4 │ }
               ╰────
              help: a variant extends another variant of the same scenario; without `extends` it starts from
                    the top-level declarations
        "#]],
    );
}

#[test]
fn err_variants_extending_each_other_in_a_cycle() {
    check_err(
        "scenario s {\n  actor a { }\n  variant one extends two { expect holds }\n  variant two extends one { expect holds }\n  variant three extends one { expect holds }\n}\n",
        expect![[r#"
            1 error in test.race
              × variants extend each other in a cycle: `one` extends `two` extends `one`
               ╭─[test.race:3:23]
             2 │   actor a { }
             3 │   variant one extends two { expect holds }
               ·                       ─┬─
               ·                        ╰── `one` extends `two` here
             4 │   variant two extends one { expect holds }
               ·                       ─┬─
               ·                        ╰── closes the cycle
             5 │   variant three extends one { expect holds }
               ╰────
              help: one variant of the cycle must start from the top-level declarations: remove its `extends`
        "#]],
    );
}

#[test]
fn err_extends_without_a_name() {
    check_err(
        "scenario s {\n  actor a { }\n  variant one extends { expect holds }\n}\n",
        expect![[r#"
            1 error in test.race
              × expected the name of the variant it extends, found `{`
               ╭─[test.race:3:23]
             2 │   actor a { }
             3 │   variant one extends { expect holds }
               ·                       ┬
               ·                       ╰── expected the name of the variant it extends
             4 │ }
               ╰────
              help: names are like `mailman-lockfile` or `mailman-2.1`
        "#]],
    );
}

//! The built-in scenarios were rewritten with imports, `extends`, `ignore` and `try/finally`
//! (issue 20): the rewrite must keep every variant and what it claims. This snapshot lists,
//! per variant, everything that decides its results except the code: the expectation on the
//! model and on real systems, the faults and their budget, the NFS cache, the gate command,
//! the actors, invariants and initial files. `native_dfs_meets_every_expectation...` (native.rs)
//! then holds each variant's model outcome to that expectation, so outcomes cannot change
//! either. A change here must be deliberate: `UPDATE_EXPECT=1` rewrites the snapshot.

use expect_test::expect_file;

#[test]
fn the_variants_and_their_expectations_are_those_of_the_snapshot() {
    let mut out = String::new();
    for f in scenarios::all() {
        let stem = f.file_stem().expect("stem").to_string_lossy().into_owned();
        let sc = crate::load(&stem);
        for v in &sc.variants {
            let actors: Vec<&str> = v.actors.iter().map(|a| &*a.name).collect();
            let invariants: Vec<&str> = v.invariants.iter().map(|i| i.name.as_str()).collect();
            let faults: Vec<String> = v
                .faults
                .iter()
                .map(|f| format!("{} = {:?} on {}", f.name, f.kind, actors[f.target]))
                .collect();
            out.push_str(&format!(
                "{stem}/{}\n  expect {:?}\n  expect on real {:?}\n  faults {:?} (at most {})\n  nfs cache {:?}\n  gate {:?}\n  actors {actors:?}\n  invariants {invariants:?}\n  fs {:?}\n",
                v.variant,
                v.expected,
                v.expected_real,
                faults,
                v.fault_budget,
                v.nfs_cache_ms,
                v.gate,
                v.fs,
            ));
        }
    }
    expect_file!["data/variants.txt"].assert_eq(&out);
}

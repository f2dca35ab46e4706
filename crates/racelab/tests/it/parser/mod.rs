//! Expect-tests for the scenario language: every construct compiles to the expected shape, and
//! malformed inputs produce the expected diagnostics (rendered in full, as a user sees them).

use std::fmt::Write as _;

use expect_test::Expect;
use racelab_core::lang::{compile, render_plain, Scenario};
use racelab_lang::ir::{self, Instr, Program};

mod databases;
mod errors_declarations;
mod errors_operations_and_names;
mod errors_statements;
mod errors_tokens_and_layout;
mod ignore_errors;
mod try_finally;
mod variant_inheritance;
mod well_formed_declarations;
mod well_formed_expressions;

const FILE: &str = "test.race";

/// A compact, stable rendering of a compiled scenario: metadata, and per variant its
/// declarations, invariants and one line per procedure with a short tag per instruction.
fn render(sc: &Scenario) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "scenario {}", sc.name);
    if let Some(a) = &sc.about {
        let _ = writeln!(out, "about {a:?}");
    }
    for s in &sc.sources {
        let _ = writeln!(out, "source {s:?}");
    }
    for p in &sc.variants {
        render_program(&mut out, p);
    }
    out
}

fn render_program(out: &mut String, p: &Program) {
    let _ = writeln!(
        out,
        "variant {} expect={}",
        p.variant,
        expected(&p.expected)
    );
    let actors: Vec<String> = p
        .actors
        .iter()
        .map(|a| format!("{}->{}", a.name, p.procs[a.proc as usize].name))
        .collect();
    let _ = writeln!(out, "  actors: {}", actors.join(" "));
    if !p.cells.is_empty() {
        let cells: Vec<String> = p.cells.iter().map(|(n, v)| format!("{n}={v:?}")).collect();
        let _ = writeln!(out, "  cells: {}", cells.join(" "));
    }
    if !p.logs.is_empty() {
        let _ = writeln!(out, "  logs: {}", p.logs.join(" "));
    }
    if !p.sections.is_empty() {
        let _ = writeln!(out, "  sections: {}", p.sections.join(" "));
    }
    for f in &p.fs {
        match f {
            ir::FsInit::Dir(d) => {
                let _ = writeln!(out, "  fs dir {d:?}");
            }
            ir::FsInit::File(path, c) => {
                let _ = writeln!(out, "  fs file {path:?} = {c:?}");
            }
        }
    }
    for i in &p.invariants {
        let when = match i.when {
            ir::When::Always => "always",
            ir::When::AtEnd => "at end",
        };
        let _ = writeln!(out, "  invariant {}: {when} {}", i.name, i.text);
    }
    for pr in &p.procs {
        let code: Vec<String> = pr.code.iter().map(|i| instr(p, i)).collect();
        let _ = writeln!(
            out,
            "  proc {}/{} regs={} [{}]: {}",
            pr.name,
            pr.nparams,
            pr.nregs,
            pr.code.len(),
            code.join(" ")
        );
    }
}

fn expected(e: &Option<ir::Expected>) -> String {
    match e {
        None => "none".into(),
        Some(ir::Expected::Holds) => "holds".into(),
        Some(ir::Expected::Deadlock) => "deadlock".into(),
        Some(ir::Expected::Violates(v)) => format!("violates({})", v.join(",")),
    }
}

/// One short tag per instruction: `op` names the operation (`?` when its error is caught),
/// jumps show their target, calls the procedure called.
fn instr(p: &Program, i: &Instr) -> String {
    match i {
        Instr::Eval { .. } => "eval".into(),
        Instr::Op { op, catch, .. } => {
            let name = match op {
                ir::Op::Create { excl: true } => "create!".to_string(),
                ir::Op::CellGet(c) | ir::Op::CellSet(c) => {
                    format!("{}:{}", op.name(), p.cells[*c as usize].0)
                }
                ir::Op::Append(l) => format!("append:{}", p.logs[*l as usize]),
                _ => op.name().to_string(),
            };
            format!("{name}{}", if *catch { "?" } else { "" })
        }
        Instr::Jump(t) => format!("j{t}"),
        Instr::JumpIfNot(_, t) => format!("jn{t}"),
        Instr::Call { proc, dst, .. } => format!(
            "call:{}{}",
            p.procs[*proc as usize].name,
            if dst.is_some() { "=" } else { "" }
        ),
        Instr::Return(v) => if v.is_some() { "ret=" } else { "ret" }.into(),
        Instr::Enter(s) => format!("enter:{}", p.sections[*s as usize]),
        Instr::Leave(s) => format!("leave:{}", p.sections[*s as usize]),
        Instr::Fail { kind, .. } => match kind {
            ir::FailKind::Assertion => "assertfail".into(),
            ir::FailKind::Raised => "fail".into(),
        },
        Instr::Unhandled { .. } => "unhandled".into(),
        Instr::SetLocal { local, .. } => format!("local:{}", p.locals[*local as usize].0),
        Instr::Handle { signal, proc, .. } => match proc {
            Some(h) => format!("on:{}:{}", signal.name(), p.procs[*h as usize].name),
            None => format!("on:{}:default", signal.name()),
        },
        Instr::Exit => "exit".into(),
        Instr::TryEnter(t) => format!("try{t}"),
        Instr::TryLeave => "tryleave".into(),
        Instr::EndFinally => "endfinally".into(),
    }
}

#[track_caller]
pub(super) fn check_ok(src: &str, expect: Expect) {
    match compile(FILE, src) {
        Ok(sc) => expect.assert_eq(&render(&sc)),
        Err(e) => panic!(
            "expected the scenario to compile, got:\n{}",
            render_plain(&e)
        ),
    }
}

#[track_caller]
pub(super) fn check_err(src: &str, expect: Expect) {
    match compile(FILE, src) {
        Ok(sc) => panic!(
            "expected errors, but the scenario compiled:\n{}",
            render(&sc)
        ),
        Err(e) => {
            let text = render_plain(&e);
            assert_eq!(
                e.diags.len(),
                text.matches(FILE).count(),
                "every diagnostic names the file:\n{text}"
            );
            // The summary line starts at column 0, which also keeps expect-test's indentation
            // trimming from eating the report's own leading spaces.
            expect.assert_eq(&format!("{e}\n{text}"));
        }
    }
}

/// Wraps statements in a scenario with one actor and the usual declarations.
pub(super) fn in_actor(body: &str) -> String {
    format!(
        "scenario t {{\n  const P = \"/f\"\n  cell c = 0\n  log l\n  proc id(v) {{ return v }}\n  actor a {{\n{body}\n  }}\n}}\n"
    )
}

/// What native-dfs (every reachable state) finds broken in one variant, sorted.
pub(super) fn broken_in(src: &str, variant: &str) -> Vec<String> {
    use racelab_core::explore::{explore, Budget, EngineConfig, EngineKind};
    let sc = compile(FILE, src).unwrap_or_else(|e| panic!("{}", render_plain(&e)));
    let prog = std::sync::Arc::new(sc.variant(variant).expect("variant").clone());
    let ex = explore(
        &prog,
        &EngineConfig::new(
            EngineKind::NativeDfs,
            Budget::new(10_000, std::time::Duration::from_secs(60)),
        ),
    )
    .expect("explores");
    let mut found: Vec<String> = ex.findings.iter().map(|f| f.invariant.clone()).collect();
    found.sort();
    found
}

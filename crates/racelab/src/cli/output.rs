//! How the commands print: exit codes, colour and Unicode detection, errors, diagnostics,
//! progress bars and exploration rows, shared by every command.

use std::io::IsTerminal;
use std::path::Path;

use reports::table::{render_result_line, render_trace, Style};

/// Exit codes (DESIGN.md): 0 expectations met, 1 an expectation failed, 2 bad input, 3
/// infrastructure; decided by [`racelab_core::error::ErrorKind::exit_code`].
pub(crate) use racelab_core::error::exit::{BAD_INPUT, INFRASTRUCTURE};

/// The exit code of a run a signal interrupted: 128 + the signal, as shells report it.
pub(crate) fn interrupted_exit(sig: i32) -> u8 {
    (128 + sig).clamp(0, 255) as u8
}

/// How to print: colour and Unicode only on a terminal, and never when NO_COLOR is set.
pub(crate) struct Output {
    pub color: bool,
    pub tty: bool,
}

impl Output {
    pub(crate) fn detect() -> Output {
        let tty = std::io::stdout().is_terminal();
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Output {
            color: tty && !no_color,
            tty,
        }
    }

    pub(crate) fn style(&self) -> Style {
        Style {
            color: self.color,
            unicode: self.tty,
        }
    }
}

pub(crate) fn eprint_error(msg: impl std::fmt::Display) {
    eprintln!("error: {msg}");
}

/// Prints a file's diagnostics with miette: file:line:col, the line, a caret, and help.
pub(crate) fn eprint_scenario_errors(errors: &racelab_core::lang::ScenarioErrors, out: &Output) {
    let theme = if out.color {
        miette::GraphicalTheme::unicode()
    } else {
        miette::GraphicalTheme::unicode_nocolor()
    };
    let handler = miette::GraphicalReportHandler::new_themed(theme).with_width(100);
    let mut text = String::new();
    let _ = handler.render_report(&mut text, errors);
    eprint!("{text}");
}

/// A progress bar on a terminal; nothing (hidden) otherwise.
pub(crate) fn progress_bar(len: u64, out: &Output, what: &str) -> indicatif::ProgressBar {
    if !out.tty {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {per_sec} eta {eta}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_string());
    bar
}

/// Prints exploration rows: as JSON, or each row's result line, its findings with their replay
/// commands (`replay_flags` added, such as `--backend gate`), and the lead finding's step table.
pub(crate) fn print_rows(
    rows: &[reports::RunResult],
    file: &Path,
    json: bool,
    unit: &str,
    replay_flags: &str,
    style: Style,
) {
    if json {
        println!("{}", serde_json::to_string_pretty(rows).unwrap_or_default());
        return;
    }
    for r in rows {
        println!("{}", render_result_line(r));
        if let Some(reason) = &r.reason {
            println!("  {reason}");
        }
        if let (Some(c), Some(covers)) = (r.coverage, &r.covers) {
            println!("  coverage: {} ({covers})", c.as_str());
        }
        for f in &r.findings {
            println!(
                "  {} broke after {} {unit}(s); shrunk from {} to {} context switches; replay: racelab replay {} --variant {} {replay_flags}{}",
                f.invariant,
                f.after,
                f.switches,
                f.shrunk_switches,
                file.display(),
                r.variant,
                f.replay
            );
            if f.original != f.replay && !f.original.is_empty() {
                println!("    as found (before shrinking): {}", f.original);
            }
        }
        if let Some(t) = &r.trace {
            println!();
            print!("{}", render_trace(t, style));
            println!();
        }
    }
    // Every engine's row of a variant states the same assumptions: print them once.
    let mut shown: Vec<&str> = Vec::new();
    for r in rows.iter().filter(|r| !r.assumptions.is_empty()) {
        if !shown.contains(&r.variant.as_str()) {
            shown.push(&r.variant);
            println!("model assumptions ({}):", r.variant);
            for a in &r.assumptions {
                println!("  - {a}");
            }
        }
    }
}

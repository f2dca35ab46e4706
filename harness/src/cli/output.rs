//! How the commands print: exit codes, colour and Unicode detection, errors, diagnostics and
//! progress bars, shared by every command.

use std::io::IsTerminal;

use reports::table::Style;

/// Exit codes (DESIGN.md): 0 expectations met, 1 an expectation failed, 2 bad input, 3 infrastructure.
pub const BAD_INPUT: u8 = 2;
pub const INFRASTRUCTURE: u8 = 3;

/// The exit code of a run a signal interrupted: 128 + the signal, as shells report it.
pub fn interrupted_exit(sig: i32) -> u8 {
    (128 + sig).clamp(0, 255) as u8
}

/// How to print: colour and Unicode only on a terminal, and never when NO_COLOR is set.
pub struct Output {
    pub color: bool,
    pub tty: bool,
}

impl Output {
    pub fn detect() -> Output {
        let tty = std::io::stdout().is_terminal();
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Output {
            color: tty && !no_color,
            tty,
        }
    }

    pub fn style(&self) -> Style {
        Style {
            color: self.color,
            unicode: self.tty,
        }
    }
}

pub fn eprint_error(msg: impl std::fmt::Display) {
    eprintln!("error: {msg}");
}

/// Prints a file's diagnostics with miette: file:line:col, the line, a caret, and help.
pub fn eprint_scenario_errors(errors: &racelab::lang::ScenarioErrors, out: &Output) {
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
pub fn progress_bar(len: u64, out: &Output, what: &str) -> indicatif::ProgressBar {
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

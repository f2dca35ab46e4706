//! The `racelab` command line: parses the arguments and runs the command (each in `cli/`).

// The API is what the crate root exports; anything else `pub` is a warning (CI denies warnings).
#![warn(unreachable_pub)]

mod cli;

use std::process::ExitCode;

use clap::Parser;
use cli::output::{Output, BAD_INPUT};
use cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { BAD_INPUT } else { 0 });
        }
    };
    let out = Output::detect();
    let code = match cli.command {
        Command::Check(args) => cli::check::run(&args, &out),
        Command::Explore(args) => cli::explore::run(&args, &out),
        Command::Replay(args) => cli::replay::run(&args, &out),
        Command::Stress(args) => cli::stress::run(&args, &out),
        Command::GateExec(args) => cli::internal::gate_exec(&args),
        Command::GateBench(args) => cli::internal::gate_bench(&args),
        Command::GateLinkLock(args) => cli::internal::gate_linklock(&args),
        Command::Worker(args) => cli::internal::worker(&args),
        Command::LockBench(args) => cli::lockbench::run(args),
        Command::Isolation(args) => racelab_real::pgspec::cli::main(&args),
        Command::Suite(args) => cli::suite::run(&args, &out),
        Command::Fmt(args) => cli::fmt::run(&args, &out),
        Command::New(args) => cli::new::run(&args),
        Command::Merge(args) => cli::merge::run(&args),
    };
    ExitCode::from(code)
}

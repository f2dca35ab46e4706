//! `racelab replay FILE --variant V TOKEN`: a recorded schedule replayed on the model (its step
//! table, reproduced or not), forced on a real filesystem or database, or through the gate.

use std::path::PathBuf;

use racelab_core::replay;
use racelab_core::schedule::Schedule;
use racelab_real::backend::db::DbSpec;
use racelab_real::backend::{ActorMode, BackendSpec};
use reports::table::render_trace;

use super::forced::forced_replay;
use super::gate::GateArgs;
use super::load::{load_variant, load_variant_with};
use super::output::{eprint_error, Output, BAD_INPUT};
use super::world::RealWorld;

#[derive(clap::Args)]
pub(crate) struct ReplayArgs {
    pub file: PathBuf,
    /// The variant the token was recorded for.
    #[arg(long)]
    pub variant: String,
    /// The replay token printed by `racelab explore`.
    pub token: String,
    /// Where to replay: `model`, or `fs:DIR` (real syscalls in a fresh directory under DIR,
    /// checked step by step against the model), or `gate[:DIR]` (or `gate:DIR,DIR2`, one
    /// directory through two clients) for a token found through the gate.
    #[arg(long, default_value = "model")]
    pub backend: String,
    /// The gate: a process that makes no gated call for this many seconds is hung.
    #[arg(long, default_value_t = 20.0)]
    pub step_timeout: f64,
    /// Real actors: `threads` or `processes` (real signals). Only with `--backend fs:DIR`.
    #[arg(long, default_value = "processes")]
    pub actors: String,
    /// Replay this many times and check that every run gives the same outcome.
    #[arg(long, default_value_t = 1)]
    pub times: u32,
    /// Run the token's schedule on another variant of the same scenario: does the fix
    /// survive the failing interleaving, does the POSIX model predict what NFS did?
    #[arg(long)]
    pub on_variant: Option<String>,
}

/// Replays where `--backend` says: the gate, a real world, or the model.
pub(crate) fn run(args: &ReplayArgs, out: &Output) -> u8 {
    if let Some(gate) = GateArgs::parse(&args.backend, 1000, args.step_timeout) {
        let request = (
            args.file.as_path(),
            args.variant.as_str(),
            args.token.as_str(),
            args.times,
        );
        return super::gate::replay_token(request, gate, out);
    }
    let file = args.file.as_path();
    // `db:sqlite|postgres[=URL]|mariadb[=URL]`: the same token, one statement per step on real connections.
    let db = match args.backend.strip_prefix("db:").map(DbSpec::parse) {
        Some(Ok(d)) => Some(d),
        Some(Err(e)) => {
            eprint_error(&e);
            return e.exit_code();
        }
        None => None,
    };
    let backend = if db.is_some() { "model" } else { &args.backend };
    let backend = match BackendSpec::parse(backend) {
        Ok(b) => b,
        Err(e) => {
            eprint_error(&e);
            return e.exit_code();
        }
    };
    let mode = match ActorMode::parse(&args.actors) {
        Ok(m) => m,
        Err(e) => {
            eprint_error(&e);
            return e.exit_code();
        }
    };
    // A token recorded with parameter values replays on the scenario compiled with them.
    let params = Schedule::decode(&args.token)
        .map(|s| s.param_values())
        .unwrap_or_default();
    let prog = match load_variant_with(file, &args.variant, &params, out) {
        Ok(p) => p,
        Err(c) => return c,
    };
    let mut sched =
        match Schedule::decode(&args.token).and_then(|s| s.check_fits(&prog).map(|()| s)) {
            Ok(s) => s,
            Err(e) => {
                eprint_error(e);
                return BAD_INPUT;
            }
        };
    // The same steps, on another variant: the token is checked against the variant it was
    // recorded for, then re-addressed.
    let prog = match &args.on_variant {
        None => prog,
        Some(w) => match load_variant(file, w, out) {
            Ok(p) => {
                sched.variant = p.variant.clone();
                sched.fingerprint = p.fingerprint;
                if p.split_calls && !prog.split_calls {
                    sched = racelab_core::replay::split_halves(&p, &sched);
                }
                p
            }
            Err(c) => return c,
        },
    };
    let world = match (db, backend) {
        (Some(db), _) => Some(RealWorld::Db(db)),
        (None, BackendSpec::Fs(roots)) => Some(RealWorld::Fs { roots, mode }),
        (None, BackendSpec::Model) => None,
    };
    match world {
        Some(world) => forced_replay(&prog, &sched, &world, args.times, out),
        None => replay_model(&prog, &sched, args.times, out),
    }
}

/// Replays on the model `times` times (it must be deterministic) and prints the step table.
fn replay_model(
    prog: &std::sync::Arc<racelab_lang::ir::Program>,
    sched: &Schedule,
    times: u32,
    out: &Output,
) -> u8 {
    let mut first: Option<replay::Replayed> = None;
    for i in 0..times.max(1) {
        match replay::replay(prog, sched) {
            Ok(r) => {
                if let Some(f) = &first {
                    if f.broken != r.broken {
                        eprint_error(format_args!("replay {} gave a different outcome than replay 1: the model is not deterministic (a racelab bug)", i + 1));
                        return 1;
                    }
                } else {
                    first = Some(r);
                }
            }
            Err(e) => {
                eprint_error(e);
                return BAD_INPUT;
            }
        }
    }
    let Some(r) = first else { return 1 };
    print!("{}", render_trace(&r.trace, out.style()));
    let reproduced = r.reproduced(sched);
    let what = sched.target.as_deref().unwrap_or("a violation");
    if times > 1 {
        println!("\n{times} replays, identical outcome every time");
    }
    if reproduced {
        println!("\nreproduced: {what}");
        0
    } else {
        println!("\nnot reproduced: {what} did not break");
        1
    }
}

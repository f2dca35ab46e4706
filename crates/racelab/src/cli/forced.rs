//! `racelab replay --backend fs:DIR|db:...`: a token's schedule forced on a real world, step by
//! step in lockstep with the model, `--times` times; every run must reproduce, none diverge.

use std::sync::Arc;

use racelab_core::schedule::Schedule;
use racelab_lang::ir::Program;
use racelab_real::backend::forced::ForcedError;
use reports::table::render_trace;

use super::output::{eprint_error, interrupted_exit, Output, BAD_INPUT, INFRASTRUCTURE};
use super::world::RealWorld;

/// Forces the schedule on `world` `times` times: 0 if every run reproduced the token's
/// violation, 1 if one diverged from the model or did not reproduce.
pub(crate) fn forced_replay(
    prog: &Arc<Program>,
    sched: &Schedule,
    world: &RealWorld,
    times: u32,
    out: &Output,
) -> u8 {
    racelab_real::backend::cancel::install();
    let what = sched.target.as_deref().unwrap_or("a violation");
    let noun = world.noun();
    let mut reproduced = 0;
    // Worker processes are kept between the runs of this loop instead of started for each.
    let _reuse =
        matches!(world, RealWorld::Fs { .. }).then(racelab_real::backend::process::Reuse::here);
    let mut forcer = world.forcer();
    for i in 0..times.max(1) {
        let r = match forcer.force(prog, sched) {
            Ok(r) => r,
            Err(ForcedError::Token(e)) => {
                eprint_error(e);
                return BAD_INPUT;
            }
            Err(ForcedError::Infrastructure(why)) => {
                eprint_error(format_args!(
                    "the real {} failed (run {}): {why}",
                    world.failing_part(),
                    i + 1
                ));
                return INFRASTRUCTURE;
            }
            Err(e @ ForcedError::Interrupted(sig)) => {
                // The filesystem path has always said what it cleaned up; the database path
                // stops silently (kept: the output is a contract).
                if let RealWorld::Fs { .. } = world {
                    eprint_error(e);
                }
                return interrupted_exit(sig);
            }
        };
        if i == 0 {
            print!("{}", render_trace(&r.trace, out.style()));
            println!("\n{}", r.backend_line);
        }
        if let Some(d) = &r.divergence {
            println!(
                "\nrun {}: reality diverged from the model at step {} ({}: {}): the model says {}, the real {noun} said {}",
                i + 1,
                d.step,
                d.actor,
                d.operation,
                d.model,
                d.real
            );
            return 1;
        }
        if r.reproduced {
            reproduced += 1;
        } else {
            println!("\nrun {}: {what} did not break on the real {noun}", i + 1);
        }
    }
    let times = times.max(1);
    println!("\nreproduced {what} on the real {noun} in {reproduced} of {times} forced replays, no divergence from the model");
    if reproduced == times {
        0
    } else {
        1
    }
}

//! `racelab new NAME`: the text of a commented starting scenario, one that checks and whose
//! `racy` variant `explore` breaks while `fixed` holds.

use racelab_core::error::Error;

/// Why a name cannot become a scenario (bad input).
pub fn check_name(name: &str) -> Result<(), Error> {
    let ok_start = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic());
    let ok_rest = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok_start && ok_rest && !name.ends_with(['-', '.']) {
        return Ok(());
    }
    Err(Error::bad_input(format!(
        "`{name}` is not a scenario name: start with a letter, then letters, digits, `-`, `_` or `.` (like `mailman-lockfile`)"
    )))
}

/// The starting scenario called `name` (already checked with [`check_name`]).
pub fn scenario(name: &str) -> String {
    TEMPLATE.replace("NAME", name)
}

const TEMPLATE: &str = r#"# A starting scenario, written by `racelab new`. Edit it into the race you are chasing:
#   racelab check NAME.race              # parse and check, run nothing
#   racelab explore NAME.race            # search the interleavings of every variant
#   racelab explore NAME.race --engine native-dfs   # ... exhaustively: a proof when it holds
# The language is described in docs/language.md.
#
# The race here: two actors share a lock file. Each takes the lock by looking whether the
# file exists and, if not, creating it -- two steps, so both can look before either creates.

scenario NAME {
  about "two actors take a lock file by checking, then creating it"
  source "where the race was reported: a bug tracker link, a commit, a mailing-list thread"

  const LOCK = "/tmp/NAME.lock"

  # The world as it is when the actors start: a directory, no lock file yet.
  fs {
    dir "/tmp"
  }

  # How an actor takes the lock; each variant below replaces it with the code it tests.
  proc take_lock() {
    fail "replaced by every variant"
  }

  # Everything between taking and releasing the lock is the critical section `update`:
  # `holders(update)` counts the actors inside it.
  proc update_shared_state(who) {
    take_lock()
    critical update {
      write(LOCK, who)          # one step of the model's filesystem; anything can come between
    }
    unlink(LOCK) ignore ENOENT  # release; a lock someone else removed is not an error here
  }

  # The actors: each runs its body once, and racelab chooses who takes the next step.
  actor alice { update_shared_state("alice") }
  actor bob { update_shared_state("bob") }

  # What must never happen, checked after every step.
  invariant exclusive: always holders(update) <= 1

  # The code as reported: look, then create. Two actors can both see no lock.
  variant racy {
    proc take_lock() {
      loop {
        match stat(LOCK) {
          ok => sleep 10ms                    # someone holds it: wait, then look again
          err(ENOENT) => {
            write(LOCK, "{self}")             # nobody holds it: create it (not atomic!)
            return
          }
        }
      }
    }
    expect violates exclusive
  }

  # The fix: one atomic step that fails if the file exists (open with O_CREAT|O_EXCL).
  # `extends racy` keeps everything racy sets; this variant replaces `take_lock` again.
  variant fixed extends racy {
    proc take_lock() {
      loop {
        match create(LOCK, excl) {
          ok => return
          err(EEXIST) => sleep 10ms           # taken: wait, then try again
        }
      }
    }
    expect holds
  }
}
"#;

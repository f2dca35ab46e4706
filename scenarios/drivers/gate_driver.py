"""What the Python gate drivers share: loading one pinned release of a library, and the counted critical section racelab reads the scenario's invariants off.

A scenario's actor holds the lock, marks the critical section, reads the counter, works, writes
it plus one, logs the increment and unmarks. On a gated run racelab reads the invariants off the
real files (docs/language.md, section 5.15): a file $ROOT/.racelab/critical/SECTION/ACTOR while
the actor is inside (holders(SECTION)), and one line per increment in $ROOT/.racelab/logs/done
(count(done)). Importing this module touches nothing under the root, so it is no step.
"""

import os
import sys
import time


def load_release(package, version, proof):
    """Puts $VENV/PACKAGE/VERSION first on sys.path: the release `cargo xtask venv` installed
    there (one directory per release; the venv is this python's prefix). PROOF is a file every
    installed release has, relative to that directory. Exits with the reason when it is missing,
    before the first gated call, so the row is an error that says why, never a pass."""
    site = os.path.join(sys.prefix, package, version)
    if not os.path.isfile(os.path.join(site, proof)):
        missing = site + ".missing"
        reason = open(missing).read().strip() if os.path.exists(missing) else "not installed"
        sys.exit(f"{package} {version} is not in {site}: {reason} (run `cargo xtask venv`)")
    sys.path.insert(0, site)
    return site


def counted_section(root, me, section, counter, work):
    """The critical section of the scenario's actor, call for call: mark, read the counter,
    work for WORK seconds, write it plus one, log the increment, unmark."""
    marker = f"{root}/.racelab/critical/{section}/{me}"
    open(marker, "w").close()
    with open(counter) as f:
        n = int(f.read() or 0)
    time.sleep(work)
    with open(counter, "w") as f:
        f.write(str(n + 1))
    with open(f"{root}/.racelab/logs/done", "a") as f:
        f.write(me + "\n")
    os.unlink(marker)

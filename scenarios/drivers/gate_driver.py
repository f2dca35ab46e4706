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
    installed release has, relative to that directory.

    When the release is not there, this exits before the first gated call, so the row is never
    a pass: with status 77 (racelab's "skip", crates/real/src/gate/mod.rs SKIP_STATUS) when the
    venv tried and could not install it here (VERSION.missing holds pip's error), else with an
    error that says to run `cargo xtask venv`."""
    site = os.path.join(sys.prefix, package, version)
    if not os.path.isfile(os.path.join(site, proof)):
        missing = site + ".missing"
        if os.path.exists(missing):
            sys.stderr.write(f"{package} {version} cannot be installed here: {pip_error(missing)}\n")
            sys.exit(77)
        sys.exit(f"{package} {version} is not in {site} (run `cargo xtask venv`)")
    sys.path.insert(0, site)
    return site


def pip_error(missing):
    """pip's failure in a VERSION.missing file, in two lines: what failed, and the Python
    error that made it fail (pip prints the build's traceback between them)."""
    lines = [l.strip() for l in open(missing).read().splitlines() if l.strip()]
    raised = [l for l in lines if l.split(":")[0].endswith("Error") and " " not in l.split(":")[0]]
    return "\n".join(dict.fromkeys(lines[:1] + raised[-1:]))


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

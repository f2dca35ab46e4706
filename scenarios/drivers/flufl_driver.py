"""One locker of scenarios/flufl-lock.race: the real flufl.lock, unmodified, under racelab's gate.

Usage: flufl_driver.py LOCKFILE COUNTER WORK_SECONDS, paths as the scenario names them; racelab
sets RACELAB_ROOT (the run's real root) and RACELAB_ACTOR (this actor's name).

It locks, enters the critical section, reads the counter file, works, writes the counter plus
one, leaves and unlocks, as the scenario's actor does. Two conventions let racelab read the
scenario's invariants off the real files: a file in $ROOT/.racelab/critical/list/ named after
the actor while it holds the lock (holders(list)), and one line per event in
$ROOT/.racelab/logs/NAME (count(NAME)).
"""

import os
import sys

from flufl.lock import Lock, NotLockedError

from gate_driver import counted_section

root = os.environ["RACELAB_ROOT"]
me = os.environ["RACELAB_ACTOR"]
lockfile, counter = root + sys.argv[1], root + sys.argv[2]
work = float(sys.argv[3])


def log(name, line):
    with open(f"{root}/.racelab/logs/{name}", "a") as f:
        f.write(line + "\n")


lock = Lock(lockfile)  # flufl.lock's defaults: a 15 s lifetime, no timeout
lock.lock()
counted_section(root, me, "list", counter, work)
try:
    lock.unlock()
except NotLockedError:
    log("events", f"{me}: NotLockedError")
    raise

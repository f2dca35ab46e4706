// One waiter of scenarios/proper-lockfile.race: the real `proper-lockfile`, unmodified, under
// racelab's gate.
//
// Usage: node proper_lockfile_driver.js VERSION FILE STALE_MS DELAY_MS HOLD_MS
//   VERSION  a proper-lockfile release `cargo xtask venv` installed into
//            $RACELAB_VENV/npm/proper-lockfile@VERSION
//   FILE     the file to lock as the scenario names it (under $RACELAB_ROOT); the lock is the
//            directory FILE.lock
//   STALE_MS the `stale` option; DELAY_MS how long to wait before locking and HOLD_MS how long
//            to hold the lock (timers, on the gate's virtual clock)
//
// As the scenario's actor: wait, lock once (retries 0: a waiter that finds a live lock gives
// up; realpath false: the race does not involve it), and if it got the lock, hold it and
// release it. While it believes it holds the lock, the marker $ROOT/.racelab/critical/held/ACTOR
// exists (holders(held)).
'use strict'

const fs = require('fs')
const { die, loadPinned } = require('./gate_driver')

const [version, fileArg, staleArg, delayArg, holdArg] = process.argv.slice(2)
if (!holdArg) die('usage: proper_lockfile_driver.js VERSION FILE STALE_MS DELAY_MS HOLD_MS')
const lockfile = loadPinned('proper-lockfile', version)

const root = process.env.RACELAB_ROOT
const me = process.env.RACELAB_ACTOR
const file = root + fileArg
const marker = `${root}/.racelab/critical/held/${me}`

setTimeout(() => {
  // 4.x's lock() returns a promise of the release function; ELOCKED rejects it.
  lockfile.lock(file, { stale: Number(staleArg), realpath: false }).then((release) => {
    fs.writeFileSync(marker, '')
    setTimeout(() => {
      fs.unlinkSync(marker)
      release().catch(() => {})
    }, Number(holdArg))
  }, () => {})
}, Number(delayArg))

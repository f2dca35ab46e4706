// One waiter of scenarios/npm-lockfile.race: the real npm `lockfile`, unmodified, under
// racelab's gate.
//
// Usage: node npm_lockfile_driver.js VERSION MODE LOCKFILE STALE_MS DELAY_MS HOLD_MS
//   VERSION   a lockfile release `cargo xtask venv` installed into
//             $RACELAB_VENV/npm/lockfile@VERSION (one prefix per release)
//   MODE      `async` (lockfile.lock(path, {stale}, cb)) or `sync` (lockfile.lockSync)
//   LOCKFILE  the lock's path as the scenario names it (under $RACELAB_ROOT)
//   STALE_MS  the `stale` option; DELAY_MS how long to wait before locking (a timer, on the
//             gate's virtual clock); HOLD_MS how long to hold the lock (a timer too)
//
// As the scenario's actor: wait, lock once (no `wait`, no `retries`: a waiter that finds a
// live lock gives up), and if it got the lock, hold it and unlock. A lock() that fails (its
// callback's error, or lockSync's throw) is no finding: the caller was told. racelab reads the
// invariant off a marker file, $ROOT/.racelab/critical/held/ACTOR, present while this waiter
// believes it holds the lock (holders(held)).
'use strict'

const fs = require('fs')
const { die, loadPinned } = require('./gate_driver')

const [version, mode, lockArg, staleArg, delayArg, holdArg] = process.argv.slice(2)
if (!holdArg || !['async', 'sync'].includes(mode)) {
  die('usage: npm_lockfile_driver.js VERSION async|sync LOCKFILE STALE_MS DELAY_MS HOLD_MS')
}
const lockfile = loadPinned('lockfile', version)

const root = process.env.RACELAB_ROOT
const me = process.env.RACELAB_ACTOR
const lock = root + lockArg
const stale = Number(staleArg)
const marker = `${root}/.racelab/critical/held/${me}`

function hold (unlock) {
  fs.writeFileSync(marker, '')
  setTimeout(() => {
    fs.unlinkSync(marker)
    unlock()
  }, Number(holdArg))
}

setTimeout(() => {
  if (mode === 'sync') {
    try {
      lockfile.lockSync(lock, { stale })
    } catch (er) {
      return
    }
    hold(() => lockfile.unlockSync(lock))
  } else {
    lockfile.lock(lock, { stale }, (er) => {
      if (er) return
      hold(() => lockfile.unlock(lock, () => {}))
    })
  }
}, Number(delayArg))

// One actor of scenarios/proper-lockfile-stall.race (node-proper-lockfile #71): the real
// `proper-lockfile`, unmodified, under racelab's gate, with a holder whose event loop is blocked
// past `stale`.
//
// Usage: node proper_lockfile_stall_driver.js VERSION FILE STALE_MS STALL_MS DELAY_MS HOLD_MS
//   VERSION  a proper-lockfile release `cargo xtask venv` installed into
//            $RACELAB_VENV/npm/proper-lockfile@VERSION
//   FILE     the file to lock as the scenario names it (under $RACELAB_ROOT); the lock is the
//            directory FILE.lock
//   STALE_MS the `stale` option (`update` is left to its default, stale / 2)
//   STALL_MS how long the holder blocks its event loop once it has the lock (virtual time)
//   DELAY_MS how long the waiter waits before locking; HOLD_MS how long either keeps the lock
//            after that (timers, on the gate's virtual clock)
//
// The actor's name ($RACELAB_ACTOR) says its part:
//   holder   locks at once, then blocks its event loop (synchronously: no timer of its own can
//            fire) until the virtual clock has moved STALL_MS on, then releases HOLD_MS later.
//            Blocked it waits in Atomics.wait, a futex the gate sees as idle (a busy loop on
//            Date.now() would spin without ever letting the gate's clock move), until a worker
//            thread's timer wakes it STALL_MS later on the virtual clock: meanwhile it makes no
//            gated call and runs no callback of its own, as a busy loop would not.
//   updater  the holder's `update` timer, which the model makes an actor of its own; here it is
//            the holder process's own setTimeout, so this process exits at once.
//   waiter   waits DELAY_MS, locks once (retries 0) and, if it got the lock, holds it HOLD_MS.
// While an actor believes it holds the lock, the marker $ROOT/.racelab/critical/held/ACTOR
// exists (holders(held)); the holder's goes when it releases or when onCompromised tells it the
// lock is lost, which also appends a line to the log `compromised`.
'use strict'

const fs = require('fs')
const { die, loadPinned } = require('./gate_driver')
const { Worker } = require('worker_threads')

const [version, fileArg, staleArg, stallArg, delayArg, holdArg] = process.argv.slice(2)
if (!holdArg) {
  die('usage: proper_lockfile_stall_driver.js VERSION FILE STALE_MS STALL_MS DELAY_MS HOLD_MS')
}
const me = process.env.RACELAB_ACTOR
if (me === 'updater') process.exit(0)
if (me !== 'holder' && me !== 'waiter') die(`unknown actor ${me}: holder, updater or waiter`)
const lockfile = loadPinned('proper-lockfile', version)

const root = process.env.RACELAB_ROOT
const file = root + fileArg
const marker = `${root}/.racelab/critical/held/${me}`
const hold = Number(holdArg)

// The event loop blocked until the virtual clock reaches `until`: the main thread waits in
// Atomics.wait with no timeout (a futex the gate sees as idle) until a worker thread's timer,
// on the gate's virtual clock, wakes it. (A timed Atomics.wait would not do: V8 computes its
// deadline from the virtual monotonic clock and the kernel compares it with the real one.)
function blockUntil (until) {
  const cell = new Int32Array(new SharedArrayBuffer(4))
  const wake = `const { workerData: { cell, until } } = require('worker_threads')
    setTimeout(() => { Atomics.store(cell, 0, 1); Atomics.notify(cell, 0) }, until - Date.now())`
  new Worker(wake, { eval: true, workerData: { cell, until } }).unref()
  Atomics.wait(cell, 0, 0)
}

let holding = false
function letGo () {
  if (!holding) return false
  holding = false
  fs.unlinkSync(marker)
  return true
}

function onCompromised () {
  letGo()
  fs.mkdirSync(`${root}/.racelab/logs`, { recursive: true })
  fs.appendFileSync(`${root}/.racelab/logs/compromised`, `${me}\n`)
}

function lockThenHold (afterLock) {
  const options = { stale: Number(staleArg), realpath: false, onCompromised }
  // 4.x's lock() returns a promise of the release function; ELOCKED rejects it.
  lockfile.lock(file, options).then((release) => {
    holding = true
    fs.writeFileSync(marker, '')
    afterLock()
    setTimeout(() => {
      if (letGo()) release().catch(() => {})
    }, hold)
  }, () => {})
}

if (me === 'holder') {
  lockThenHold(() => blockUntil(Date.now() + Number(stallArg)))
} else {
  setTimeout(() => lockThenHold(() => {}), Number(delayArg))
}

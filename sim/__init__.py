"""Simulated time: the lab tests on a virtual clock with a seeded scheduler.

    pytest --sim [--sim-seed N] [--sim-preempt] [--sim-check-determinism]
    make test-2A SIM=1 [SEED=N]        mtests.py --sim [--sim-seed N]

The same tests and the same solution (plain threading, time.sleep,
time.monotonic, random) run on a virtual clock; real time stays the default.

How it works (MadRaft/madsim and DSLabs do the same for Rust and Java):

- Threads stay real OS threads, but only one runs at a time.  The running one
  holds a baton until it blocks; then the scheduler (scheduler.World) picks the
  next among the runnable threads with an RNG seeded per test, and the clock
  jumps to the earliest timeout when none is runnable.  A hand-off costs about
  18 microseconds, small next to the sleeps it removes.
- patches.install() replaces, before any lab module is imported: the lock
  factory (_thread.allocate_lock, threading.Lock: Condition, Event, Queue,
  Semaphore, the Python RLock and SimpleQueue all wait on those locks), thread
  start/join/is_alive, time.sleep and the clocks, the global random (seeded per
  test), unseeded random.Random instances, os.urandom and SystemRandom (one
  stream per call site).
- Only the thread holding the baton touches the scheduler.  Code outside the
  simulation (pytest's own timing, the whole-test limit of tests/gotest.py,
  the busy-loop watchdog, porcupine's budget) uses the real clock and real
  threads from sim.realtime, or runs in a thread the simulation does not run.
- pytest_plugin: the options, the per-test seed (from --sim-seed and the test's
  name), the replay line of a failed test, the determinism check, the
  `realtime` marker, and the watchdog.

Modules: realtime (the originals), scheduler (World, SimThread: the baton, the
clock, deadlock reports), patches (SimLock and the replacements),
pytest_plugin.
"""

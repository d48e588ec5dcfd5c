"""The lock watchdog: lab locks that know their owner, and deadlocks found in seconds.

    on by default under tests/ (pytest --no-lockwatch turns it off); works in real
    time, under --sim (virtual time) and with --race

- A thread that waits for a lab lock it already holds (taken with `with`) raises
  SelfDeadlock at once, naming the lock and where it took it.
- A cycle in the wait-for graph (a thread waiting for a lock -> its owner; a
  thread in a labrpc Call -> the thread running the handler; a thread sending on
  a raft.Chan -> the thread that reads it) made of the same waits for 2 s fails the
  test, each thread of the cycle on one line: what it holds, where, what it waits for.
- A lab lock held across a blocking call (Call, a channel send, time.sleep) is
  reported with both places: a failure under --race and --sim, a warning line at
  the end of the test otherwise.
- Stack dumps of tests/gotest.py (the whole-test limit) and of --sim's deadlock
  report say, for each blocked thread, what it waits for and who holds it.

Modules: core (LabLock, the factory, the graph), pytest_plugin.
"""

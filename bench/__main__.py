"""`python -m bench [labgob] [labrpc] [kvraft] [persist] [porcupine] [sim]`: run the named benchmarks, or all of them."""

import argparse
import sys

from bench import kvraft_bench, labgob_bench, labrpc_bench, persist_bench, porcupine_bench, sim_bench

BENCHMARKS = ("labgob", "labrpc", "kvraft", "persist", "porcupine", "sim")


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("which", nargs="*", metavar="BENCH",
                   help=f"one or more of {', '.join(BENCHMARKS)} (default: all)")
    p.add_argument("--calls", type=int, default=20000,
                   help="sequential labrpc round trips to time (default 20000)")
    p.add_argument("--concurrent", type=int, default=1000,
                   help="concurrent labrpc calls for the thread count (default 1000)")
    args = p.parse_args(argv)
    unknown = [w for w in args.which if w not in BENCHMARKS]
    if unknown:
        p.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    which = args.which or BENCHMARKS
    if "labgob" in which:
        labgob_bench.run()
    if "labrpc" in which:
        labrpc_bench.run(args.calls, args.concurrent)
    if "kvraft" in which:
        kvraft_bench.run()
    if "persist" in which:
        persist_bench.run()
    if "porcupine" in which:
        porcupine_bench.run()
    if "sim" in which:
        sim_bench.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())

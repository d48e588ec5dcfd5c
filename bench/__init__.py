"""Benchmarks behind `make bench` (`python -m bench`).

    python -m bench            every benchmark
    python -m bench labrpc     labrpc round trips per second and peak thread count
    python -m bench kvraft     ms per op of the TestSpeed3A / TestSpeed3B workloads
    python -m bench porcupine  the checker: kvraft-sized and million-operation checks, and how
                               close to its 1 s budget a million-operation check returns
"""

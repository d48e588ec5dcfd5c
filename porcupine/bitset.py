"""Bitset of linearized operation ids. Python twin of porcupine/bitset.go.

A Python int is the bitset (bit i = operation i): it is immutable, so "clone then set" is just
`b | (1 << i)`, and it hashes and compares as a whole in C (hash = the int's own hash), which is
what Lowe's cache needs. The checker inlines these one-liners in its hot loop; they are kept here
as the named operations of the Go file.
"""


def newBitset(bits: int = 0) -> int:
    return 0


def set(b: int, pos: int) -> int:  # noqa: A001 - Go name
    return b | (1 << pos)


def clear(b: int, pos: int) -> int:
    return b & ~(1 << pos)


def get(b: int, pos: int) -> bool:
    return (b >> pos) & 1 == 1


def popcnt(b: int) -> int:
    return bin(b).count("1")


def hash(b: int) -> int:  # noqa: A001 - Go name
    return b.__hash__()


def equals(b: int, b2: int) -> bool:
    return b == b2

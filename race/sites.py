"""Where an attribute read hands a container to code that changes it.

`self.log.append(e)`, `self.nextIndex[peer] = n` and `del self.log[k:]` read the
field (an attribute load) and then write the list it holds.  Wrapping the lists
in a tracking subclass would change their type (labgob packs with
strict_types) and their identity, so instead the load's call site is read: the
bytecode that follows the LOAD_ATTR is run on an abstract stack until the loaded
value is consumed, and the load counts as a write when the consumer is a
subscript store or delete, or a mutating method such as append or pop.

What this cannot see: a container first copied into a local (`log = self.log`,
then `log.append(e)`), and containers nested inside the field's value
(`self.waiters[i].append(w)` writes only the inner list: that is a read of the
field).  A site the analysis does not follow to its end (a jump, a return, a
call with * arguments) counts as a read.

Every opcode of the verified Pythons (interpose.VERIFIED) is in one of the
tables below, checked at import: on such a version an opcode this analysis does
not know is impossible, and on another one (PYLABS_UNVERIFIED_PYTHON=1) meeting
one is an error naming it, not a read.
"""

import bisect
import dis
import opcode
import sys

import interpose

__all__ = ["MUTATING_METHODS", "UnknownOpcode", "mutates", "unclassified"]

# Methods of list, dict, set, bytearray and deque that change the container.
MUTATING_METHODS = frozenset({
    "append", "appendleft", "extend", "extendleft", "insert", "pop", "popleft", "popitem",
    "remove", "clear", "sort", "reverse", "rotate", "setdefault", "update", "add", "discard",
    "difference_update", "intersection_update", "symmetric_difference_update",
    "__setitem__", "__delitem__", "__iadd__", "__imul__", "__ior__", "__iand__", "__isub__",
    "__ixor__",
})

_MAX_STEPS = 64  # instructions followed after the load before giving up (a read)

_cache = {}  # (code, offset) -> bool
_instructions = {}  # code -> ([Instruction], {offset: index})

_LOADS_ONE = {
    "LOAD_FAST", "LOAD_CONST", "LOAD_DEREF", "LOAD_CLOSURE", "LOAD_NAME", "LOAD_CLASSDEREF",
    "PUSH_NULL", "LOAD_FAST_CHECK", "LOAD_FAST_AND_CLEAR", "LOAD_SMALL_INT",
}
_NO_STACK = {"NOP", "CACHE", "PRECALL", "KW_NAMES", "EXTENDED_ARG", "RESUME"}
_TWO_TO_ONE = {"BINARY_OP", "BINARY_SUBSCR", "COMPARE_OP", "IS_OP", "CONTAINS_OP"}
# Python 3.10 has an opcode per operator (BINARY_ADD, INPLACE_ADD, ...) where 3.11 has BINARY_OP.
_TWO_TO_ONE_PREFIXES = ("BINARY_", "INPLACE_")
_ONE_TO_ONE = {"UNARY_NEGATIVE", "UNARY_NOT", "UNARY_INVERT", "UNARY_POSITIVE", "GET_ITER",
               "FORMAT_SIMPLE", "TO_BOOL"}
_CONSUME_ONE = {"POP_TOP", "STORE_FAST", "STORE_NAME", "STORE_GLOBAL", "STORE_DEREF"}
_FOLLOWED = {"COPY", "SWAP", "LOAD_GLOBAL", "LOAD_ATTR", "LOAD_METHOD", "BUILD_TUPLE", "BUILD_LIST",
             "BUILD_SET", "BUILD_STRING", "BUILD_SLICE", "BUILD_MAP", "CALL", "CALL_METHOD",
             "CALL_FUNCTION_KW", "CALL_FUNCTION", "STORE_ATTR", "STORE_SUBSCR", "DELETE_SUBSCR",
             "BINARY_SLICE", "STORE_SLICE"}
# The other opcodes of Python 3.10-3.12, where the analysis stops and the load is a read:
# control flow, returns and raises, imports, and builds and calls it does not model.
_STOPS = frozenset({
    "ASYNC_GEN_WRAP", "BEFORE_ASYNC_WITH", "BEFORE_WITH", "BUILD_CONST_KEY_MAP", "CALL_FUNCTION_EX",
    "CALL_INTRINSIC_1", "CALL_INTRINSIC_2", "CHECK_EG_MATCH", "CHECK_EXC_MATCH", "CLEANUP_THROW",
    "COPY_DICT_WITHOUT_KEYS", "COPY_FREE_VARS", "DELETE_ATTR", "DELETE_DEREF", "DELETE_FAST",
    "DELETE_GLOBAL", "DELETE_NAME", "DICT_MERGE", "DICT_UPDATE", "END_ASYNC_FOR", "END_FOR", "END_SEND",
    "FORMAT_VALUE", "FOR_ITER", "GEN_START", "GET_AITER", "GET_ANEXT", "GET_AWAITABLE", "GET_LEN",
    "GET_YIELD_FROM_ITER", "IMPORT_FROM", "IMPORT_NAME", "IMPORT_STAR", "INTERPRETER_EXIT",
    "JUMP_ABSOLUTE", "JUMP_BACKWARD", "JUMP_BACKWARD_NO_INTERRUPT", "JUMP_FORWARD",
    "JUMP_IF_FALSE_OR_POP", "JUMP_IF_NOT_EXC_MATCH", "JUMP_IF_TRUE_OR_POP", "LIST_APPEND", "LIST_EXTEND",
    "LIST_TO_TUPLE", "LOAD_ASSERTION_ERROR", "LOAD_BUILD_CLASS", "LOAD_FROM_DICT_OR_DEREF",
    "LOAD_FROM_DICT_OR_GLOBALS", "LOAD_LOCALS", "LOAD_SUPER_ATTR", "MAKE_CELL", "MAKE_FUNCTION", "MAP_ADD",
    "MATCH_CLASS", "MATCH_KEYS", "MATCH_MAPPING", "MATCH_SEQUENCE", "POP_BLOCK", "POP_EXCEPT",
    "POP_JUMP_BACKWARD_IF_FALSE", "POP_JUMP_BACKWARD_IF_NONE", "POP_JUMP_BACKWARD_IF_NOT_NONE",
    "POP_JUMP_BACKWARD_IF_TRUE", "POP_JUMP_FORWARD_IF_FALSE", "POP_JUMP_FORWARD_IF_NONE",
    "POP_JUMP_FORWARD_IF_NOT_NONE", "POP_JUMP_FORWARD_IF_TRUE", "POP_JUMP_IF_FALSE", "POP_JUMP_IF_NONE",
    "POP_JUMP_IF_NOT_NONE", "POP_JUMP_IF_TRUE", "PREP_RERAISE_STAR", "PRINT_EXPR", "PUSH_EXC_INFO",
    "RAISE_VARARGS", "RERAISE", "RESERVED", "RETURN_CONST", "RETURN_GENERATOR", "RETURN_VALUE", "ROT_N",
    "SEND", "SETUP_ANNOTATIONS", "SETUP_ASYNC_WITH", "SETUP_FINALLY", "SETUP_WITH", "SET_ADD",
    "SET_UPDATE", "UNPACK_EX", "UNPACK_SEQUENCE", "WITH_EXCEPT_START", "YIELD_FROM", "YIELD_VALUE",
})


class UnknownOpcode(RuntimeError):
    pass


def unclassified(names):
    """The opcode names in names that no table above classifies."""
    known = _NO_STACK | _LOADS_ONE | _TWO_TO_ONE | _ONE_TO_ONE | _CONSUME_ONE | _FOLLOWED | _STOPS | set(_SHUFFLES)
    return sorted(n for n in names if n not in known and not n.startswith(_TWO_TO_ONE_PREFIXES))




def mutates(code, offset, name):
    """True when the LOAD_ATTR of `name` at `offset` in `code` feeds a container write."""
    key = (code, offset)
    hit = _cache.get(key)
    if hit is None:
        try:
            hit = _analyse(code, offset, name)
        except UnknownOpcode:
            raise
        except Exception:  # an operand layout this analysis does not know: a read
            hit = False
        _cache[key] = hit
    return hit


def _code_instructions(code):
    found = _instructions.get(code)
    if found is None:
        instrs = list(dis.get_instructions(code))
        found = (instrs, [ins.offset for ins in instrs])
        _instructions[code] = found
    return found


# Python 3.10's stack shuffles, as (COPY n) and (SWAP n) sequences on the abstract stack.
_SHUFFLES = {
    "DUP_TOP": (("COPY", 1),),
    "DUP_TOP_TWO": (("COPY", 2), ("COPY", 2)),
    "ROT_TWO": (("SWAP", 2),),
    "ROT_THREE": (("SWAP", 3), ("SWAP", 2)),
    "ROT_FOUR": (("SWAP", 4), ("SWAP", 3), ("SWAP", 2)),
}


def _shuffle(stack, op, n):
    if op == "COPY":
        stack.append(stack[-n] if n <= len(stack) else False)
    else:
        while len(stack) < n:
            stack.insert(0, False)
        stack[-1], stack[-n] = stack[-n], stack[-1]


def _effect(ins):
    """(pops, pushes) of one instruction, or None when it is not followed."""
    op = ins.opname
    if op in _NO_STACK:
        return 0, 0
    if op in _LOADS_ONE:
        return 0, 1
    if op == "LOAD_GLOBAL":
        return 0, opcode.stack_effect(ins.opcode, ins.arg)
    if op in ("LOAD_ATTR", "LOAD_METHOD"):
        return 1, 1 + opcode.stack_effect(ins.opcode, ins.arg)
    if op in _TWO_TO_ONE or (op.startswith(_TWO_TO_ONE_PREFIXES) and op != "BINARY_SLICE"):
        return 2, 1
    if op in _ONE_TO_ONE:
        return 1, 1
    if op in _CONSUME_ONE:
        return 1, 0
    if op in ("BUILD_TUPLE", "BUILD_LIST", "BUILD_SET", "BUILD_STRING", "BUILD_SLICE"):
        return ins.arg, 1
    if op == "BUILD_MAP":
        return 2 * ins.arg, 1
    if op in ("CALL", "CALL_METHOD", "CALL_FUNCTION_KW"):  # the last two: Python 3.10
        return ins.arg + 2, 1
    if op == "CALL_FUNCTION":  # Python 3.10
        return ins.arg + 1, 1
    if op == "STORE_ATTR":
        return 2, 0
    if op == "STORE_SUBSCR":
        return 3, 0
    if op == "DELETE_SUBSCR":
        return 2, 0
    if op == "BINARY_SLICE":
        return 3, 1
    if op == "STORE_SLICE":
        return 4, 0
    return None


def _analyse(code, offset, name):
    instrs, offsets = _code_instructions(code)
    # Python 3.12 may report an offset inside the load's inline cache: take the
    # instruction the offset falls in.
    i = bisect.bisect_right(offsets, offset) - 1
    if i < 0 or instrs[i].opname != "LOAD_ATTR" or instrs[i].argval != name:
        return False  # not a plain attribute load (getattr(), C code): count a read
    stack = [True]  # True marks a copy of the loaded container; the bottom is unknown
    for ins in instrs[i + 1 : i + 1 + _MAX_STEPS]:
        op = ins.opname
        if op in ("COPY", "SWAP"):
            _shuffle(stack, op, ins.arg)
            continue
        if op in _SHUFFLES:
            for step in _SHUFFLES[op]:
                _shuffle(stack, *step)
            continue
        if op in _UNKNOWN:
            raise UnknownOpcode(
                f"race: opcode {op} of Python {sys.version.split()[0]} (at {code.co_filename}:{code.co_firstlineno}) "
                f"is not in race/sites.py's tables: this version's bytecode was not checked "
                f"({interpose.OVERRIDE} is set); add it to a table there"
            )
        effect = _effect(ins)
        if effect is None:
            return False
        pops, pushes = effect
        while len(stack) < pops:
            stack.insert(0, False)
        popped = stack[len(stack) - pops :] if pops else []
        del stack[len(stack) - pops :]
        if any(popped):
            if op in ("STORE_SUBSCR", "DELETE_SUBSCR") and popped[-2]:
                return True  # the container is the subscript's target
            if op == "STORE_SLICE" and popped[-3]:
                return True
            if op in ("LOAD_ATTR", "LOAD_METHOD") and ins.argval in MUTATING_METHODS:
                return True
        stack.extend([False] * pushes)
        if not any(stack):
            return False  # every copy was consumed by a read
    return False


# The opcodes dis.get_instructions can show: not the pseudo ones (3.12's LOAD_METHOD is
# one, numbered from 256) nor INSTRUMENTED_* (dis shows the instruction they stand for).
_UNKNOWN = frozenset(unclassified(n for n, op in opcode.opmap.items() if op < 256 and not n.startswith("INSTRUMENTED_")))
if _UNKNOWN and sys.version_info[:2] in interpose.VERIFIED:
    raise ImportError(f"race/sites.py: the opcode tables miss {', '.join(sorted(_UNKNOWN))} of Python {sys.version.split()[0]}")

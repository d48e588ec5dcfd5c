from .labgob import (  # noqa: F401
    DecodeError,
    LabDecoder,
    LabEncoder,
    NewDecoder,
    NewEncoder,
    Register,
    RegisterName,
    decode,
    encode,
)

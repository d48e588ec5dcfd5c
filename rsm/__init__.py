from .rsm import RSM, ErrTimeout, ErrWrongLeader, MakeRSM, OK, fresh  # noqa: F401

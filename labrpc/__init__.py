from .labrpc import (  # noqa: F401
    ClientEnd,
    MakeNetwork,
    MakeServer,
    MakeService,
    Network,
    RPCError,
    Server,
    Service,
)

from .persister import MakePersister, Persister  # noqa: F401

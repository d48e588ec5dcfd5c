"""Sequential models for the porcupine checker."""
from .kv import KvInput, KvModel, KvOutput

__all__ = ["KvInput", "KvModel", "KvOutput"]

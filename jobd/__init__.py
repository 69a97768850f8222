"""jobd: an asynchronous background job server on PostgreSQL and Redis."""

from jobd.handlers import JobContext, Registry

__all__ = ["JobContext", "Registry"]
__version__ = "0.1.0"

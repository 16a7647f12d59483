"""deer: a shop and a sales CRM for small and mid-size sales teams.

`deer.app.create_app(settings)` builds the aiohttp application; `run.py` runs it.
One package per domain (`accounts`, `catalog`, ...) with `models.py`, `service.py` and an
HTTP module of its own; `deer.web` holds the HTTP plumbing every domain shares.
"""

__version__ = "0.1.0"

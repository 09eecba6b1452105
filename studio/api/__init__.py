"""The parameter-recommendation API (``twinopt serve``, extra ``[api]``): :mod:`.app` (FastAPI
routes), :mod:`.store` (SQLAlchemy + Alembic), :mod:`.queue` (huey workers), :mod:`.jobs` (job
kinds), :mod:`.lifecycle` (a recommendation's states), :mod:`.audit` (the audit trail in the store),
:mod:`.roles` (what each role may do), :mod:`.client` (the typed httpx client). docs/api.md has the contract."""

#: every route lives under this prefix
PREFIX = "/api/v1"

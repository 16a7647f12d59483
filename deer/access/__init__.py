"""Authorisation: casbin policies (stored in PostgreSQL, reloaded in every process on change)
and the data scope (own rows, department subtree, all) every domain's queries reuse."""

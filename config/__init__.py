"""Settings and policy files: everything an operator may change without touching code.

`config.settings` loads the `DEER_*` environment (and `.env`) once, validated and frozen.
Authorisation policies (casbin model and default rules) will live here as data files too.
"""

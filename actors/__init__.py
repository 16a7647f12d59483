"""The actor runtime and the entity actors (cart, order, opportunity).

Commands for an actor `(kind, key)` are appended to a Redis Stream partition chosen by a
stable hash of the key; each process owns partitions through fenced leases, handles one
message per actor at a time, and commits the state change with the message id in one
PostgreSQL transaction. Built in the actor-runtime issue; see ROADMAP.
"""

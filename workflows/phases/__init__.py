"""The phases of a cutover, in order, each a function over a ``Kit``.

verify; prepare (repoint, lower TTL); switch (flip, drain, monitor); the gates; finish (decommission A,
restore the TTL).
"""

"""What stops an account: the bulk worker pool, verified cancel-all, flatten and its journal,
and the guard that runs flatten from a process of its own; they compose bulk calls and hub
snapshots.

May import `bulk`, `_hub`, `_http` and what they may; nothing above (`client`, `cli`).
"""

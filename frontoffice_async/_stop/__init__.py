"""What stops an account: the bulk worker pool, verified cancel-all, and (next) flatten and
its journal; they compose bulk calls and hub snapshots.

May import `bulk`, `_hub`, `_http` and what they may; nothing above (`client`, `cli`).
"""

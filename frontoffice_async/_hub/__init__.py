"""The SignalR client of the account hub: protocol, transport, connections, reconnecting
snapshots and live streams.

May import `_http` and what it may; nothing above (`bulk`, `_stop`, `client`, `cli`).
"""

"""`python -m frontoffice_async`: the `frontoffice` command line."""

from .cli import console

__all__: list[str] = []

raise SystemExit(console())

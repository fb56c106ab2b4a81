"""`python -m frontoffice_async`: the `frontoffice` command line."""

from .cli import main

__all__: list[str] = []

raise SystemExit(main())

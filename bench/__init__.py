"""Benchmarks for frontoffice-async: run them with `python -m bench` (or `make bench`)."""

"""Asyncio client for the Front Office trading API."""

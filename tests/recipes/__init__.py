"""The recipes of docs/web.md as files: the page includes them and tests/test_recipes.py runs
them."""

"""The `labkit` command: `main.py` builds the parser, `options.py` holds the shared options and the one
error-to-exit-code path, and each command group has its module."""

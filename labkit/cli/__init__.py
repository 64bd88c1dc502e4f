"""The `labkit` command: `main.py` builds the parser and dispatches, `options.py` holds the shared options
(lab flags, config flags generated from LabConfig, --json output), `exits.py` the exit codes and the one
error-to-exit-code path, and each command group has its module with a `register(subparsers)`."""

"""A whole lab applied on the real sandbox, for module-scoped fixtures of the integration tests."""

from __future__ import annotations


def sandbox_lab(lab: str, learner: str):
    """Reset the sandbox and apply a whole lab (writer + reader + instance); returns (config, backend).

    For module-scoped fixtures of the SQL and benchmark tests; close_engines() and close_all() after use.
    """
    import io

    from labkit import sandbox
    from labkit.config import LabConfig
    from labkit.lab.apply import apply
    from labkit.sandbox.backend import SandboxBackend

    sandbox.reset()
    backend = SandboxBackend()
    config = LabConfig(lab=lab, learner=learner)
    apply(config, backend, stream=io.StringIO())
    sandbox.wait_for_databases(2)
    return config, backend

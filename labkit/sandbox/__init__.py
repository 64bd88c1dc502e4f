"""The embedded sandbox backend: a local moto server for the AWS API and real database servers for the data plane.

The sandbox by the process each part runs in:

    client (the learner's kernel, the CLI)  control (up, down, status, reset, env), backend, vpc/dns,
                                            engines/base (only to ask: is the lab's engine installed?)
    daemon (`up` starts it detached)        daemon/: main (entry point), changes, ssm + inprocess, reconciler,
                                            apps; engines/: base (the data-plane interface), mariadb
    session plugin (a tunnel starts it)     procs/session_plugin + procs/settings, vpc/network, vpc/dns, backend
    app host (the daemon starts one per     procs/apphost + procs/settings, vpc/network, vpc/dns, backend
      lab instance's web app)
    every process                           state (the state file), processes (pids and ports)

Runs in every sandbox process (each imports a submodule), so it does nothing: the public names are listed once,
in `__init__.pyi`, and lazy_loader serves them on first use; the session plugin and the app hosts do not load
the client's control code or boto3.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)

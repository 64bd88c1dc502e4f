"""The sandbox's data plane: one module per database engine (mariadb.py for Aurora MySQL), behind the small
interface and registry in base.py. Runs in the daemon; the client only asks base.check_installed."""

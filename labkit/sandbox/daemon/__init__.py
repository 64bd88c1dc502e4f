"""Runs in the sandbox daemon process (`labkit sandbox up` starts it detached; main.py is its entry point):
the moto server, the change counter in front of it (changes.py), the SSM emulation (ssm.py, reading moto's
backends in process through inprocess.py), the reconciler that keeps the databases matching RDS
(reconciler.py, through the engine interface), and the web-app supervisor (apps.py)."""

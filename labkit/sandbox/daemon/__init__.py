"""Runs in the sandbox daemon process (`labkit sandbox up` starts it detached): the moto server, the
reconciler that keeps the databases matching RDS, the SSM emulation, and the web-app supervisor."""

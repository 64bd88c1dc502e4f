"""Small processes the sandbox starts, each its own entry point (`python -m ...`). Runs as those processes:
the stand-in session-manager-plugin (session_plugin.py, started by a tunnel in place of AWS's binary) and the
app host (apphost.py, started by the daemon for each lab instance's web app)."""

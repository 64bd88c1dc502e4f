"""Small processes the sandbox starts, each its own entry point: the stand-in session-manager-plugin
(started by a tunnel, in place of AWS's binary) and the app host (started by the daemon for each instance)."""

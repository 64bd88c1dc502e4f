# JupyterHub for a class on one machine: `make hub` runs it (labkit/hub/launch.py sets LABKIT_HUB_*).
# What it sets, and why, is in labkit/hub/config.py: PAM sign-in for the labkit-learners group, each learner's
# server as their own account (LocalProcessSpawner), their sandbox stopped with it, the idle culler.
from labkit.hub.config import HubSettings, configure

configure(c, HubSettings.from_env())  # noqa: F821 - `c` is the config object JupyterHub provides

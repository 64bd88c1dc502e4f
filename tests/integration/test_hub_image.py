"""The single-user image's install steps (deploy/kubernetes/install-image.sh), run on this machine (#24).

Docker is not available here, so the Dockerfile itself is never built; its RUN line is this script. `system`
installs the database programs from the archive (already there on this machine: apt confirms them), and `check`
starts the sandbox as an unprivileged user, as the image does for jovyan. The `labkit` step (pip install of this
repository into the image's Python) is the same install `make setup` does and is not repeated here.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from support.local_users import require_root

from labkit.hub.setup import hub_python

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes" / "install-image.sh"


def test_the_image_install_steps_run_here():
    require_root(__file__)
    python = hub_python()  # a labkit install every user can run (make hub-setup; the hub test makes it too)
    if not python.exists():
        subprocess.run([sys.executable, "-m", "labkit.hub.setup"], check=True, timeout=900)
    done = subprocess.run(
        ["bash", str(SCRIPT), "system", "check"], env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PYTHON": str(python)},
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "sandbox ready" in done.stdout and "sandbox down" in done.stdout
    assert "arn:aws:sts::" in done.stdout  # a signed call answered, as the unprivileged user

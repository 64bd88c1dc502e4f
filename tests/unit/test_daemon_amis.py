"""A sandbox account's public AMIs (sandbox/daemon/amis.py): moto's samples and the latest Amazon Linux images its
SSM public parameters name, the lab's among them, but not the 1,284 ECS-optimized images per region moto adds to
every new account (96% of the EC2 state, so of every save of the control plane)."""

from __future__ import annotations

import json
import subprocess
import sys

from labkit.lab.resources.compute import AMI_PARAMETERS

# A fresh interpreter: importing the daemon changes what moto loads for the whole process.
SCRIPT = f"""
import json
import labkit.sandbox.daemon.main
from moto.backends import get_backend
from moto.core import DEFAULT_ACCOUNT_ID
result = {{}}
for region in ("us-east-1", "eu-west-1"):
    ec2 = get_backend("ec2")[DEFAULT_ACCOUNT_ID][region]
    ssm = get_backend("ssm")[DEFAULT_ACCOUNT_ID][region]
    names = [ami.name for ami in ec2.amis.values()]
    lab = [ssm.get_parameter(path).value for path in {list(AMI_PARAMETERS.values())!r}]
    result[region] = {{
        "amis": len(names), "ecs": [n for n in names if "-ecs-" in n or "ecs-optimized" in n.lower()],
        "lab_images_known": [image in ec2.amis for image in lab]
    }}
print(json.dumps(result))
"""


def test_a_new_account_holds_the_labs_images_and_no_ecs_optimized_ones():
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    for region, seen in json.loads(done.stdout.strip().splitlines()[-1]).items():
        assert seen["ecs"] == [], f"{region}: ECS-optimized images were loaded"
        assert all(seen["lab_images_known"]), f"{region}: the image the lab launches is missing"
        assert 20 < seen["amis"] < 200, f"{region}: {seen['amis']} images (moto's samples and latest Amazon Linux)"


# A home saved before this trimming: moto made the ECS images; the learner launched an instance from one and tagged
# another. Saved without the daemon's trimming (persist alone), then loaded in a daemon.
SAVE_OLD = """
import sys
from pathlib import Path
from moto.backends import get_backend
from moto.core import DEFAULT_ACCOUNT_ID
from labkit.sandbox.daemon.persist import ControlPlaneStore
ec2 = get_backend("ec2")[DEFAULT_ACCOUNT_ID]["us-east-1"]
ecs = sorted(i for i, ami in ec2.amis.items() if "-ecs-" in ami.name)
assert len(ecs) > 1000, len(ecs)
launched, tagged = ecs[0], ecs[1]
ec2.run_instances(launched, 1, {}, [], instance_type="t3.micro", is_instance_type_default=False)
ec2.create_tags([tagged], {"kept": "yes"})
(Path(sys.argv[1]) / "data").mkdir()
ControlPlaneStore(Path(sys.argv[1]), DEFAULT_ACCOUNT_ID).save()
print(launched, tagged)
"""
LOAD = """
import json, sys
from pathlib import Path
import labkit.sandbox.daemon.main
from moto.backends import get_backend
from moto.core import DEFAULT_ACCOUNT_ID
from labkit.sandbox.daemon.persist import ControlPlaneStore
ControlPlaneStore(Path(sys.argv[1]), DEFAULT_ACCOUNT_ID).load()
ec2 = get_backend("ec2")[DEFAULT_ACCOUNT_ID]["us-east-1"]
ecs = sorted(i for i, ami in ec2.amis.items() if "-ecs-" in ami.name)
snapshots = sorted(s.from_ami for s in ec2.snapshots.values() if getattr(s, "from_ami", None) in ecs)
print(json.dumps({"ecs": ecs, "instances": len(ec2.reservations), "others": len(ec2.amis) - len(ecs),
                  "snapshots": snapshots}))
"""


def test_an_old_homes_unused_ecs_images_are_shed_as_it_loads_and_used_ones_kept(tmp_path):
    def run(script: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=120
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout.strip().splitlines()[-1]

    launched, tagged = run(SAVE_OLD).split()
    loaded = json.loads(run(LOAD))
    assert loaded["ecs"] == sorted([launched, tagged]), "the images the learner used are kept, no other"
    assert loaded["instances"] == 1 and loaded["others"] > 20
    assert loaded["snapshots"] == sorted([launched, tagged]), "a shed image's snapshot went with it, a kept one stays"

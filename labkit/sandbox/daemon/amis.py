"""The public AMIs a sandbox account holds: moto's sample of Amazon's images and the latest Amazon Linux ones its
SSM public parameters name, without the 1,284 ECS-optimized images per region moto adds to every new account.

Runs in the daemon (installed as its main module is imported, before moto's EC2 models are; a saved account from
before is trimmed as it loads, persist.py).

moto makes, in each region of each new account, an Ami object per public image it knows, each with its own EBS
snapshot and volume; 96% of them are ECS-optimized images (`ecs/optimized_amis`), which no step of this lab, and
no lab built on it, launches. They were 4,100 of the 4,300 objects of the EC2 state, so most of every save of the
control plane (persist.py saves after every changing call, 36 in a lab's `up`) and of every load, and 0.1-0.2 s
of a new account's first EC2 call. Amazon Linux 2023, the lab's image (labkit.lab.resources.compute names it
through its SSM parameter), and moto's other samples stay. An ECS-optimized image id is refused
as an unknown AMI, as it would be in a region that does not publish it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import cache
from typing import Any

SKIPPED = "ec2/resources/ecs/optimized_amis/"  # moto's per-region lists of ECS-optimized images
_moto_load_resource: Callable[[str], Any] | None = None


def load_resource(resource: str) -> Any:
    """moto's `load_resource`, but the ECS-optimized images' lists are missing, as for a region moto has none of."""
    if resource.startswith(SKIPPED):
        raise FileNotFoundError(resource)  # moto's AMI loader skips a region whose list is missing
    assert _moto_load_resource is not None, "without_ecs_images() installs it"
    return _moto_load_resource(resource)


def without_ecs_images() -> None:
    """Install `load_resource` where moto's AMI loader reads it (before its EC2 models import, or after)."""
    global _moto_load_resource
    import moto.utilities.utils  # moto: the daemon only (persist.py, which the client imports, imports this module)

    if _moto_load_resource is None:
        _moto_load_resource = moto.utilities.utils.load_resource
    moto.utilities.utils.load_resource = load_resource
    loaded = sys.modules.get("moto.ec2.models.amis")
    if loaded is not None:
        loaded.load_resource = load_resource  # type: ignore[attr-defined]


@cache
def _ecs_image_ids(region: str) -> frozenset[str]:
    from moto.utilities.utils import load_resource as moto_load_resource  # moto: the daemon only, as above

    reader = _moto_load_resource or moto_load_resource
    try:
        return frozenset(image["ami_id"] for image in reader(f"{SKIPPED}{region}.json"))
    except FileNotFoundError:
        return frozenset()


def shed_ecs_images(state: dict[str, dict[str, Any]]) -> int:
    """Drop from a loaded account the ECS-optimized images moto made in it before this module (and their EBS
    snapshots), unless the learner used one: launched an instance from it, tagged it or its snapshot, or changed
    who may launch it. Returns how many were dropped (the account is saved whole at its next change)."""
    shed = 0
    for region, backend in state.get("ec2", {}).items():
        ecs = _ecs_image_ids(region) & set(getattr(backend, "amis", {}))
        if not ecs:
            continue
        launched = {
            instance.image_id for reservation in backend.reservations.values() for instance in reservation.instances
        }
        tags = getattr(backend, "tags", {})
        for image_id in ecs - launched:
            image = backend.amis[image_id]
            snapshot = getattr(image, "ebs_snapshot", None)
            snapshot_id = getattr(snapshot, "id", None)
            if tags.get(image_id) or (snapshot_id and tags.get(snapshot_id)):
                continue
            if image.launch_permissions != [{"Group": "all"}]:
                continue
            del backend.amis[image_id]
            if snapshot_id and backend.snapshots.get(snapshot_id) is snapshot:
                del backend.snapshots[snapshot_id]
            shed += 1
    return shed

"""apply survives EC2's eventual consistency right after a create (issue 15, item 9).

Right after CreateVpc or CreateRouteTable, calls naming the new id may answer NotFound for a moment (EC2 API
reference, "Eventual consistency in the Amazon EC2 API"); botocore's vpc_available waiter does not retry that,
and the route table has no waiter at all. The strict layer answers NotFound a few times after each create.
"""

from __future__ import annotations

import io

from labkit.aws.patience import Timing
from labkit.config import LabConfig
from labkit.lab.apply import apply

FAST = Timing(poll_seconds=0.01, retry_attempts=6, retry_first_delay=0.01, retry_max_delay=0.05)


def test_a_new_vpc_and_route_table_that_are_not_visible_yet_are_waited_for(strict_backend):
    strict_backend.strict.lag_after_create = 2
    result = apply(LabConfig(), strict_backend, stream=io.StringIO(), timing=FAST, only="network")
    refused = {code for _, code in strict_backend.strict.refusals}
    assert refused == {"InvalidVpcID.NotFound", "InvalidRouteTableID.NotFound"}, "the layer did answer NotFound"
    assert "vpc" in result.ids and "route-table-public" in result.ids
    assert not strict_backend.strict.unseen or not any(strict_backend.strict.unseen.values())

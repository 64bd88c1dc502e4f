"""iam:SimulatePrincipalPolicy, which moto lacks, answered from the account's real policies by support/iam_eval.

As AWS's policy simulator does it (IAM API reference, SimulatePrincipalPolicy; IAM User Guide, "Testing IAM
policies with the IAM policy simulator"): the principal's identity policies and its permissions boundary; each
action evaluated on the resource given (or "*"); the context entries given, and nothing else: the principal's tags
reach the policies only as `aws:PrincipalTag/*` entries, and a condition key or policy variable the matching
statements use that the context lacks is listed in a denied result's MissingContextValues.

`Simulator(admin).install(events)` on a learner's botocore session (before it makes clients) answers that
session's calls; `calls` records each request, for assertions. It reads each principal's policies once:
`forget()` after changing them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from support.iam_eval import Principal, Request, _action_matches, _as_list, _statements, evaluate
from support.iam_requests import role_principal, user_principal
from support.strict import _answer_from, _keep_params

_VARIABLE = re.compile(r"\$\{([^}]+)\}")
# What the simulator knows of the principal without being told (its ARN names them).
KNOWN = {"aws:username", "aws:userid", "aws:principalarn", "aws:principalaccount"}


def _context(entries: list[dict[str, Any]]) -> dict[str, Any]:
    context: dict[str, Any] = {}
    for entry in entries:
        values = entry["ContextKeyValues"]
        context[entry["ContextKeyName"]] = values if entry.get("ContextKeyType", "").endswith("List") else values[0]
    return context


def _keys_used(statements: list[dict[str, Any]]) -> set[str]:
    """The condition keys and policy variables of `statements`."""
    keys = set()
    for statement in statements:
        for block in (statement.get("Condition") or {}).values():
            keys |= set(block)
            for values in block.values():
                keys |= {m for v in _as_list(values) for m in _VARIABLE.findall(str(v))}
        for resource in _as_list(statement.get("Resource")):
            keys |= set(_VARIABLE.findall(resource))
    return keys


class Simulator:
    """Answers SimulatePrincipalPolicy for the principals of the account `admin` reads (un-enforced moto)."""

    def __init__(self, admin: Callable[[str], Any]) -> None:
        self.admin = admin
        self.calls: list[dict[str, Any]] = []
        self._read: dict[str, Principal] = {}

    def forget(self) -> None:
        self._read.clear()

    def install(self, events: Any) -> Simulator:
        events.register("before-parameter-build.iam.SimulatePrincipalPolicy", _keep_params)
        events.register("before-call.iam.SimulatePrincipalPolicy", _answer_from(self.answer))
        return self

    def principal(self, arn: str, context: dict[str, Any]) -> Principal:
        name = arn.rsplit("/", 1)[-1]
        if arn not in self._read:
            self._read[arn] = user_principal(self.admin, name) if ":user/" in arn else role_principal(self.admin, name)
        found = self._read[arn]
        tags = {key.split("/", 1)[1]: value for key, value in context.items() if key.startswith("aws:PrincipalTag/")}
        return Principal(found.arn, found.account, found.policies, found.boundary, tags, found.username, found.userid)

    def answer(self, params: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(params)
        context = _context(params.get("ContextEntries", []))
        principal = self.principal(params["PolicySourceArn"], context)
        given = {key.lower() for key in context} | KNOWN
        documents = [*principal.policies, *([principal.boundary] if principal.boundary else [])]
        results = []
        for action in params["ActionNames"]:
            for resource in params.get("ResourceArns") or ["*"]:
                decision = evaluate(principal, Request(action, resource, context))
                verdict = "allowed" if decision.allowed else "implicitDeny"
                if decision.reason.startswith("explicitly denied"):
                    verdict = "explicitDeny"
                result: dict[str, Any] = {"EvalActionName": action, "EvalResourceName": resource,
                                          "EvalDecision": verdict}  # fmt: skip
                if verdict == "implicitDeny":
                    matching = [s for d in documents for s in _statements(d)
                                if _action_matches(_as_list(s.get("Action")), action)]  # fmt: skip
                    lacking = sorted(key for key in _keys_used(matching) if key.lower() not in given)
                    if lacking:
                        result["MissingContextValues"] = lacking
                results.append(result)
        return {"EvaluationResults": results, "IsTruncated": False}

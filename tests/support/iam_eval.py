"""A strict IAM policy evaluator for tests: the documented semantics moto's enforcement lacks.

moto's IAM enforcement compares action names only (FACTS.md): it ignores conditions, policy variables,
permissions boundaries and iam:PassRole. This module evaluates identity policies the way the IAM User Guide
describes it, for one principal and one request (action, resource ARN, request context):

- "Policy evaluation logic": an explicit Deny in any policy wins; otherwise the request needs an Allow in an
  identity policy AND, when the principal has a permissions boundary, an Allow in the boundary too.
- "IAM JSON policy elements": Action / NotAction and Resource / NotResource with `*` and `?` wildcards
  (actions case-insensitive, resources case-sensitive); all condition operators in one statement must hold
  (AND), the keys of one operator must all hold (AND), the values of one key are alternatives (OR).
- "Condition operators": String*, Arn*, Bool, Null, the `...IfExists` suffix (a missing key satisfies it),
  the `ForAllValues:` / `ForAnyValue:` set prefixes; a missing key makes every other operator false, even a
  negated one (StringNotEquals is false when the key is absent).
- "Policy variables" (`${aws:username}`, `${aws:PrincipalTag/k}`, `${aws:PrincipalAccount}`, ...): replaced
  by the request context's value; a variable with no value makes the element it is in match nothing.
- Context keys are case-insensitive; tag values compare case-sensitively.

Only what the labkit policies need is modelled; an unknown operator raises, so a policy that uses one cannot
pass by accident.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

_VARIABLE = re.compile(r"\$\{([^}]+)\}")
_STRING_OPS = {"StringEquals", "StringNotEquals", "StringEqualsIgnoreCase", "StringNotEqualsIgnoreCase",
               "StringLike", "StringNotLike"}  # fmt: skip
_ARN_OPS = {"ArnEquals", "ArnLike", "ArnNotEquals", "ArnNotLike"}
_NEGATED = {"StringNotEquals", "StringNotEqualsIgnoreCase", "StringNotLike", "ArnNotEquals", "ArnNotLike"}


class _Unresolved(Exception):
    """A policy variable has no value in the request context."""


@dataclass
class Principal:
    """Who calls: its identity policies, its permissions boundary (if any), and the context keys it brings."""

    arn: str
    account: str
    policies: list[dict[str, Any]]
    boundary: dict[str, Any] | None = None
    tags: dict[str, str] = field(default_factory=dict)
    username: str | None = None
    userid: str | None = None

    def context(self) -> dict[str, Any]:
        """The principal's part of the request context (IAM User Guide, "Global condition context keys")."""
        keys: dict[str, Any] = {"aws:PrincipalArn": self.arn, "aws:PrincipalAccount": self.account}
        if self.username:
            keys["aws:username"] = self.username
        if self.userid:
            keys["aws:userid"] = self.userid
        keys |= {f"aws:PrincipalTag/{k}": v for k, v in self.tags.items()}
        return keys


@dataclass(frozen=True)
class Request:
    """One authorization: an action on one resource, with the request's context keys."""

    action: str
    resource: str
    context: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    """The outcome, and the statement (policy name and Sid) that decided it."""

    allowed: bool
    reason: str


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _statements(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    return _as_list(document.get("Statement"))


def _lookup(context: Mapping[str, Any], key: str) -> Any:
    """A context value by key, case-insensitively for the key (IAM: key names are not case-sensitive)."""
    wanted = key.lower()
    for name, value in context.items():
        if name.lower() == wanted:
            return value
    return None


def _substitute(text: str, context: Mapping[str, Any]) -> str:
    """Replace ${...} policy variables; ${*}, ${?}, ${$} are the literal characters."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in ("*", "?", "$"):
            return "\\" + name if name != "$" else "$"
        found = _lookup(context, name)
        if found is None or isinstance(found, list):
            raise _Unresolved(name)
        return str(found).replace("*", "\\*").replace("?", "\\?")

    return _VARIABLE.sub(value, text)


def _glob(pattern: str, text: str, *, ignore_case: bool = False) -> bool:
    """IAM wildcards: `*` any run of characters, `?` one character; `\\*` a literal (from a substituted value)."""
    parts = re.split(r"(\\\*|\\\?|\*|\?)", pattern)
    regex = "".join({"*": ".*", "?": ".", "\\*": r"\*", "\\?": r"\?"}.get(part, re.escape(part)) for part in parts)
    return re.fullmatch(regex, text, flags=re.DOTALL | (re.IGNORECASE if ignore_case else 0)) is not None


def _action_matches(patterns: Iterable[str], action: str) -> bool:
    return any(fnmatch.fnmatchcase(action.lower(), pattern.lower()) for pattern in patterns)


def _resource_matches(patterns: Iterable[str], resource: str, context: Mapping[str, Any]) -> bool:
    for pattern in patterns:
        try:
            if _glob(_substitute(pattern, context), resource):
                return True
        except _Unresolved:
            continue  # a variable without a value matches nothing
    return False


def _literal(text: str) -> str:
    return text.replace("\\*", "*").replace("\\?", "?")


def _compare(base: str, expected: str, actual: str) -> bool:
    """One expected value against one actual value; Arn* operators take wildcards in Equals too (IAM docs)."""
    if base in ("StringEquals", "StringNotEquals"):
        return _literal(expected) == actual
    if base in ("StringEqualsIgnoreCase", "StringNotEqualsIgnoreCase"):
        return _literal(expected).lower() == actual.lower()
    if base in ("StringLike", "StringNotLike") or base in _ARN_OPS:
        return _glob(expected, actual)
    if base == "Bool":
        return expected.lower() == str(actual).lower()
    raise NotImplementedError(f"condition operator {base} is not modelled")


def _condition_holds(operator: str, key: str, expected_values: list[Any], context: Mapping[str, Any]) -> bool:
    qualifier, _, name = operator.rpartition(":")
    if_exists = name.endswith("IfExists")
    base = name.removesuffix("IfExists")
    actual = _lookup(context, key)
    if base == "Null":
        wanted_missing = str(expected_values[0]).lower() == "true"
        missing = actual is None or actual == []
        return missing == wanted_missing
    if base not in _STRING_OPS | _ARN_OPS | {"Bool"}:
        raise NotImplementedError(f"condition operator {operator} is not modelled")
    if actual is None:
        # IfExists: a missing key passes; ForAllValues over no values passes; anything else is false.
        return if_exists or qualifier == "ForAllValues"
    try:
        expected = [_substitute(str(value), context) for value in expected_values]
    except _Unresolved:
        return False  # a variable without a value: the condition cannot hold
    negated = base in _NEGATED
    values = _as_list(actual)
    if qualifier in ("ForAllValues", "ForAnyValue"):
        each = [any(_compare(base, e, str(v)) for e in expected) for v in values]
        if negated:
            each = [not hit for hit in each]
        return all(each) if qualifier == "ForAllValues" else any(each)
    if len(values) != 1:
        return False  # a single-valued operator on a multi-valued key without a set prefix
    hit = any(_compare(base, e, str(values[0])) for e in expected)
    return not hit if negated else hit


def _conditions_hold(condition: Mapping[str, Mapping[str, Any]], context: Mapping[str, Any]) -> bool:
    return all(
        _condition_holds(operator, key, _as_list(values), context)
        for operator, keys in condition.items()
        for key, values in keys.items()
    )


def _statement_applies(statement: Mapping[str, Any], request: Request, context: Mapping[str, Any]) -> bool:
    if "Action" in statement:
        if not _action_matches(_as_list(statement["Action"]), request.action):
            return False
    elif _action_matches(_as_list(statement.get("NotAction")), request.action):
        return False
    if "Resource" in statement:
        if not _resource_matches(_as_list(statement["Resource"]), request.resource, context):
            return False
    elif _resource_matches(_as_list(statement.get("NotResource")), request.resource, context):
        return False
    return _conditions_hold(statement.get("Condition", {}), context)


def _matching(documents: Iterable[Mapping[str, Any]], request: Request, context: Mapping[str, Any], effect: str) -> str:
    """The name of the first statement with `effect` that applies ('' when none does)."""
    for document in documents:
        for index, statement in enumerate(_statements(document)):
            if statement.get("Effect") == effect and _statement_applies(statement, request, context):
                return f"{document.get('_name', 'policy')}:{statement.get('Sid', index)}"
    return ""


def evaluate(principal: Principal, request: Request) -> Decision:
    """Allow or deny one request for one principal (identity policies and permissions boundary)."""
    context = {**principal.context(), **request.context}
    scopes = [principal.policies] + ([[principal.boundary]] if principal.boundary is not None else [])
    for documents in scopes:
        denied_by = _matching(documents, request, context, "Deny")
        if denied_by:
            return Decision(False, f"explicitly denied by {denied_by}")
    allowed_by = _matching(principal.policies, request, context, "Allow")
    if not allowed_by:
        return Decision(False, "no identity-based policy allows it")
    if principal.boundary is not None and not _matching([principal.boundary], request, context, "Allow"):
        return Decision(False, "the permissions boundary does not allow it")
    return Decision(True, f"allowed by {allowed_by}")

"""The least-privilege policies in policies/: enough for the whole workbook, nothing labkit never uses.

1. An enforced run: in-process moto with IAM enforcement on, an IAM user holding only the learner policies
   plans, builds (stage by stage, as the notebooks do), inspects and breaks-and-fixes the security groups,
   diagnoses SSM readiness, reads the SQL credentials, destroys and verifies the lab; an action outside
   the policies is denied.
2. Coverage: every action that run needed (recorded by labkit.aws.actions, including the actions AWS checks on
   the caller's behalf, modelled from the AWS documentation) is granted, every granted action was needed (or is
   on a short, commented list of actions moto cannot exercise), and every AWS operation named anywhere in the
   learner's code paths is granted.
3. The documents: each fits a managed policy in every partition; every change is scoped to the learner's own
   tags; no escalation path is granted.

What moto cannot check (FACTS.md): its enforcement compares action names only. The enforced run therefore uses
a copy of each policy with every Resource "*" and no Condition. Resource ARNs, tag conditions, policy
variables, the permissions boundary and the authorization AWS does on the caller's behalf are evaluated by
the strict evaluator in tests/support/iam_eval.py, in tests/unit/test_abac_matrix.py.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore import xform_name
from botocore.exceptions import ClientError
from support.backends import InProcessBackend
from support.learner_run import workbook as _workbook

from labkit.aws.actions import (
    WORKBOOK_ACTIONS,
    ActionRecorder,
    iam_action,
    implied_actions,
    policy_actions,
    record_actions,
)
from labkit.aws.backend import FAKE_CREDENTIALS, Backend
from labkit.aws.policies import (
    BOUNDARY_POLICY,
    INSTRUCTOR_POLICIES,
    LEARNER_POLICIES,
    MANAGED_POLICY_LIMIT,
    PARTITIONS,
    TAG_DB_CLASS,
    TAG_INSTANCE_TYPE,
    render,
    size,
)
from labkit.engines import ENGINES
from labkit.workbook.progress import TAG_PROGRESS

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
ALL_POLICIES = tuple(dict.fromkeys((*LEARNER_POLICIES, *INSTRUCTOR_POLICIES, BOUNDARY_POLICY)))
# Until labkit/lab/resources/iam.py gives the roles it creates the class's permissions boundary (found with
# iam:GetPolicy), the learner policy's iam:GetPolicy has no caller; see policies/README.md, "No escalation".
BOUNDARY_PENDING = "PermissionsBoundary" not in (ROOT / "labkit" / "lab" / "resources" / "iam.py").read_text()
PENDING = {"iam:GetPolicy"} if BOUNDARY_PENDING else set()

# Actions the learner policy grants that the in-process run cannot reach. Each must still be named in
# the learner's code (checked below), and must leave this list once a recorded run reaches it.
NOT_RECORDED_ON_MOTO = {
    # labkit.access.tunnel (notebook 04): moto does not implement these SSM calls (in-process they raise
    # NotImplementedError); the sandbox answers them in its own control plane, on AWS they open the
    # port forward, wait for the agent, and end the session.
    "ssm:StartSession": "labkit/access/tunnel/session.py",
    "ssm:TerminateSession": "labkit/access/tunnel/session.py",
    "ssm:DescribeInstanceInformation": "labkit/access/tunnel/session.py",
    # Run Command (labkit/aws/runcommand.py), on AWS only: the benchmark's direct path runs the harness on the
    # instance (tests/test_bench_remote.py runs the command it sends, with a stand-in agent), and the web app's
    # settings change with it (the sandbox edits its app's file itself).
    "ssm:SendCommand": "labkit/aws/runcommand.py",
    "ssm:GetCommandInvocation": "labkit/aws/runcommand.py",
    # labkit.failover (notebook 05) probes live databases through the endpoints while it fails over;
    # tests/test_bench_sandbox.py runs it on the real sandbox.
    "rds:FailoverDBCluster": "labkit/bench/failover.py",
    "rds:RebootDBInstance": "labkit/failover_lab/failures.py",  # the failover lab (06): tests/integration
    # labkit.lab.cost asks the Pricing API only on the aws backend (the sandbox prices from its table), and
    # moto does not implement it.
    "pricing:GetProducts": "labkit/lab/cost.py",
    # destroy deletes detached lab-tagged network interfaces (AWS can leave one after an instance goes);
    # moto removes an instance's interfaces with it, so a clean run finds none.
    "ec2:DeleteNetworkInterface": "labkit/lab/resources/network.py",
    # RouteTable.converge repairs a default route that points somewhere else; a clean run never meets one.
    "ec2:ReplaceRoute": "labkit/lab/resources/network.py",
    # the engine check asks which DB classes are orderable once the engine version resolves; moto does not
    # implement describe_db_engine_versions, so on moto it stops before this call.
    "rds:DescribeOrderableDBInstanceOptions": "labkit/lab/engine.py",
}

# Operations the security views only *suggest* (Fix objects a learner may read, or run by hand); the
# workbook applies none of them, so the learner policy does not grant them. They may appear only here.
FIX_SUGGESTION_MODULES = {"labkit/security/lint.py", "labkit/security/paths.py", "labkit/security/routes.py"}
FIX_SUGGESTIONS = {
    "ec2:AllocateAddress",  # give an instance a public address
    "ec2:AssociateAddress",
    "ec2:CreateNetworkAclEntry",  # open a network ACL
    "ec2:ReplaceNetworkAclEntry",
    "ec2:CreateVpcPeeringConnection",  # connect two VPCs
    "ec2:ModifyInstanceMetadataOptions",  # require IMDSv2 on an instance labkit did not make
    "rds:ModifyDBInstance",  # make a public DB instance private
}

# Code that never runs with the learner's credentials, so the learner policy need not cover it.
NOT_LEARNER_CODE = {
    "labkit/sandbox": "the local control plane: moto and MariaDB with fake credentials, never an account",
    "labkit/app": "the web app on the instance: it runs with the instance role and its inline policy",
    "labkit/classroom": "the instructor's class view and reset: covered by the instructor policy",
}

# The instructor policy is attached together with the learner policy: `labkit run-notebooks` is the
# learner's workbook, and `labkit class reset` deletes through labkit.lab.destroy.destroy, i.e. with the learner's
# tag-scoped deletes, which hold for every learner. It adds exactly what labkit/classroom calls beyond them.

# The administrator's one-time setup writes the policies; the instructor's commands never do.
ADMIN_SETUP = "labkit/classroom/setup.py"
ADMIN_ONLY = {"iam:CreatePolicy", "iam:CreatePolicyVersion", "iam:DeletePolicyVersion", "iam:ListPolicyVersions"}

SERVICES = (
    "ec2",
    "rds",
    "iam",
    "ssm",
    "secretsmanager",
    "sts",
    "resourcegroupstaggingapi",
    "pricing",
    "service-quotas",
)


# ----- policies -----


def load_policy(stem: str, partition: str = "aws") -> dict[str, Any]:
    return render(stem, partition)


def learner_policy() -> dict[str, Any]:
    """Every statement of the learner's policies, as one document (what a learner holds altogether)."""
    return {
        "Version": "2012-10-17",
        "Statement": [s for stem in LEARNER_POLICIES for s in load_policy(stem)["Statement"]],
    }


def learner_sids() -> dict[str, dict[str, Any]]:
    return {s["Sid"]: s for s in learner_policy()["Statement"]}


def moto_compatible(document: dict[str, Any]) -> dict[str, Any]:
    """The copy moto can enforce: every Resource "*", no Condition, `tag:` spelled `tagging:`."""
    derived = copy.deepcopy(document)
    for statement in derived["Statement"]:
        statement["Resource"] = "*"
        statement.pop("Condition", None)
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        statement["Action"] = [re.sub(r"^tag:", "tagging:", action) for action in actions]
    return derived


def _sorted(actions: set[str]) -> str:
    return "\n  ".join(sorted(actions)) or "(none)"


# ----- operations named in the code -----


def _operations() -> dict[str, set[str]]:
    """snake_case operation name -> the IAM actions it may mean (list_tags_for_resource is in several services)."""
    session = boto3.Session(region_name=REGION, **FAKE_CREDENTIALS)
    names: dict[str, set[str]] = {}
    for service in SERVICES:
        for operation in session._session.get_service_model(service).operation_names:
            names.setdefault(xform_name(operation), set()).add(iam_action(service, operation))
    return names


def code_actions(scope: str = "labkit", skip: tuple[str, ...] = ()) -> dict[str, set[str]]:
    """Every AWS operation named in the code (calls, paginator and ApiCall strings): IAM action -> files.

    A name several services share (list_tags_for_resource) counts for the services the file names in quotes
    (client("rds")), or for all of them when it names none.
    """
    operations = _operations()
    words = re.compile(r"\b[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b")
    found: dict[str, set[str]] = {}
    where = ROOT / scope
    for path in [where] if where.is_file() else sorted(where.rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        if any(relative == prefix or relative.startswith(prefix + "/") for prefix in skip):
            continue
        text = path.read_text()
        prefixes = {iam_action(service, "").rstrip(":") for service in SERVICES if f'"{service}"' in text}
        for word in set(words.findall(text)) & operations.keys():
            actions = {a for a in operations[word] if a.split(":")[0] in prefixes} or operations[word]
            for action in actions:
                found.setdefault(action, set()).add(relative)
    return found


def waiter_actions() -> set[str]:
    """Waiters labkit uses (ctx.wait(service, name)) poll one describe operation each."""
    session = boto3.Session(region_name=REGION, **FAKE_CREDENTIALS)
    calls = re.compile(r'wait\(\s*"(\w+)",\s*"(\w+)"')
    actions = set()
    for path in (ROOT / "labkit").rglob("*.py"):
        for service, waiter in calls.findall(path.read_text()):
            client = session.client(service)
            actions.add(iam_action(service, client.get_waiter(waiter).config.operation))
    return actions


# ----- the enforced run -----


def learner_user(documents: list[dict[str, Any]], lab: str = "least", learner: str = "ana") -> Backend:
    """As the account's (un-enforced) admin: a class learner as `labkit class learners create` makes one (under
    /labkit/LAB/, tagged), holding only `documents`, and a backend with its keys."""
    iam = boto3.Session(region_name=REGION, **FAKE_CREDENTIALS).client("iam")
    user = f"{lab}-{learner}"
    tags = {"labkit:lab": lab, "labkit:learner": learner, TAG_INSTANCE_TYPE: "t3.micro", TAG_DB_CLASS: "db.t4g.medium"}
    iam.create_user(UserName=user, Path=f"/labkit/{lab}/", Tags=[{"Key": k, "Value": v} for k, v in tags.items()])
    for index, document in enumerate(documents):
        policy = iam.create_policy(PolicyName=f"{user}-policy-{index}", PolicyDocument=json.dumps(document))
        iam.attach_user_policy(UserName=user, PolicyArn=policy["Policy"]["Arn"])
    key = iam.create_access_key(UserName=user)["AccessKey"]
    credentials = {"aws_access_key_id": key["AccessKeyId"], "aws_secret_access_key": key["SecretAccessKey"]}
    return InProcessBackend.make(REGION, credentials)


@dataclass
class EnforcedRun:
    recorder: ActionRecorder
    error: BaseException | None
    remaining_rows: int
    denied: dict[str, str]  # action outside the policy -> how it was refused ("" when it was allowed)


def _denied(backend: Backend) -> dict[str, str]:
    """Calls outside the learner policy, made with the learner's keys: each must be refused."""
    attempts = {
        "iam:CreateUser": lambda: backend.client("iam").create_user(UserName="escalate"),
        "ec2:AllocateAddress": lambda: backend.client("ec2").allocate_address(Domain="vpc"),
        "secretsmanager:DeleteSecret": lambda: backend.client("secretsmanager").delete_secret(SecretId="anything"),
    }
    refusals = {}
    for action, attempt in attempts.items():
        try:
            attempt()
            refusals[action] = ""
        except ClientError as exc:
            status = exc.response["ResponseMetadata"]["HTTPStatusCode"]
            refusals[action] = f"{status} {exc.response['Error'].get('Message', '')}"
    return refusals


@pytest.fixture(scope="module", params=sorted(ENGINES))
def enforced_run(
    request: pytest.FixtureRequest, fast_moto: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EnforcedRun]:
    """The whole workbook once per engine, as a user holding only the (moto-compatible) learner policy, recorded."""
    from moto import mock_aws
    from moto.core import enable_iam_authentication

    from labkit.config import LabConfig

    patch = pytest.MonkeyPatch()
    patch.setenv("LABKIT_HOME", str(tmp_path_factory.mktemp("labkit-home")))
    # Every optional part on, so its calls are exercised: a key pair, SSH from one address, deletion
    # protection (which destroy turns off first).
    config = LabConfig(
        lab="least", learner="ana", key_pair=True, ssh_cidr="203.0.113.7/32", deletion_protection=True,
        engine=request.param,
    )  # fmt: skip
    with mock_aws(config={"iam": {"load_aws_managed_policies": True}}):
        backend = learner_user([moto_compatible(load_policy(stem)) for stem in LEARNER_POLICIES])
        error, remaining, denied = None, -1, {}
        with enable_iam_authentication():
            with record_actions(backend) as recorder:
                try:
                    remaining = _workbook(config, backend)
                except Exception as exc:  # reported by the tests below, with the actions it needed
                    error = exc
            denied = _denied(backend)
    patch.undo()
    yield EnforcedRun(recorder, error, remaining, denied)


def test_the_whole_workbook_runs_with_only_the_learner_policy(enforced_run: EnforcedRun) -> None:
    assert enforced_run.error is None, f"the run failed under the learner policy: {enforced_run.error!r}"
    assert enforced_run.remaining_rows == 0, "destroy left lab resources behind"


def test_an_action_outside_the_learner_policy_is_denied(enforced_run: EnforcedRun) -> None:
    # HTTP 403 naming the action; moto's error body for JSON services (Secrets Manager) is XML that botocore
    # cannot parse, so its code reads "403" there, but the message is the same.
    assert enforced_run.denied, "nothing was tried"
    for action, refusal in enforced_run.denied.items():
        assert refusal.startswith("403 ") and f"not authorized to perform: {action}" in refusal, (
            f"{action}: {refusal!r}"
        )


def test_the_run_recorded_what_it_needed(enforced_run: EnforcedRun) -> None:
    """The recording is not empty or one-sided: the run called every service of the lab, and AWS's implied checks."""
    called = enforced_run.recorder.called
    assert {action.split(":")[0] for action in called} >= {"ec2", "rds", "iam", "ssm", "secretsmanager", "sts"}
    assert {"ec2:RunInstances", "rds:CreateDBCluster", "iam:PutRolePolicy", "secretsmanager:GetSecretValue"} <= called
    assert {"iam:PassRole", "ec2:CreateTags", "rds:AddTagsToResource"} <= enforced_run.recorder.implied


def test_the_learner_policy_grants_every_action_the_run_needed(enforced_run: EnforcedRun) -> None:
    missing = enforced_run.recorder.actions - policy_actions(learner_policy())
    assert not missing, f"add to one of labkit/data/policies/learner-*.json:\n  {_sorted(missing)}"


def unrecorded_actions() -> set[str]:
    """What the run cannot reach on moto, with what AWS checks on its behalf (a session's plugin actions)."""
    implied = [implied_actions(*action.split(":"), {}) for action in NOT_RECORDED_ON_MOTO]
    return set(NOT_RECORDED_ON_MOTO).union(*implied)


def test_the_learner_policy_grants_nothing_the_workbook_never_uses(enforced_run: EnforcedRun) -> None:
    assert enforced_run.error is None, "only a complete run shows what is unused"
    granted = policy_actions(learner_policy())
    unused = granted - enforced_run.recorder.actions - unrecorded_actions() - PENDING
    assert not unused, f"granted but never used; remove from labkit/data/policies/learner-*.json:\n  {_sorted(unused)}"
    reached = NOT_RECORDED_ON_MOTO.keys() & enforced_run.recorder.actions
    assert not reached, f"the run now reaches these; take them off NOT_RECORDED_ON_MOTO:\n  {_sorted(reached)}"


def test_the_preflight_simulates_what_the_workbook_records(enforced_run: EnforcedRun) -> None:
    """labkit.aws.actions.WORKBOOK_ACTIONS, which the preflight simulates, is what a whole run needs: the recording
    plus what moto cannot serve; a call added to labkit changes the recording and fails here until it is listed."""
    assert enforced_run.error is None, "only a complete run shows what the workbook needs"
    needed = enforced_run.recorder.actions | unrecorded_actions()
    assert needed == WORKBOOK_ACTIONS, (
        f"add to WORKBOOK_ACTIONS:\n  {_sorted(needed - WORKBOOK_ACTIONS)}\n"
        f"remove from it:\n  {_sorted(WORKBOOK_ACTIONS - needed)}"
    )


def test_every_operation_in_the_learner_code_is_granted() -> None:
    """Cross-check from the source: calls the run cannot reach (a failover, a tunnel) are covered too."""
    granted = policy_actions(learner_policy())
    missing = {
        action: ", ".join(sorted(files))
        for action, files in code_actions(skip=tuple(NOT_LEARNER_CODE)).items()
        if action not in granted and not (action in FIX_SUGGESTIONS and files <= FIX_SUGGESTION_MODULES)
    }
    missing.update({action: "a waiter" for action in waiter_actions() - granted})
    assert not missing, "grant in one of labkit/data/policies/learner-*.json:\n  " + "\n  ".join(
        f"{action} ({where})" for action, where in sorted(missing.items())
    )


def test_the_allow_lists_name_real_code() -> None:
    """NOT_RECORDED_ON_MOTO and FIX_SUGGESTIONS hold only operations the code names, where they say."""
    named = code_actions(skip=tuple(NOT_LEARNER_CODE))
    for action, where in NOT_RECORDED_ON_MOTO.items():
        assert where in named.get(action, set()), f"{action} is not called in {where}"
    for action in FIX_SUGGESTIONS:
        assert named.get(action), f"{action} is suggested nowhere: drop it from FIX_SUGGESTIONS"
        outside = named[action] - FIX_SUGGESTION_MODULES
        assert not outside, f"{action} is called in {outside}: grant it instead of listing it as a suggestion"


@pytest.mark.parametrize("partition", PARTITIONS)
def test_policy_documents_are_well_formed_and_fit_a_managed_policy_in_every_partition(partition: str) -> None:
    """Each file is one managed policy; rendered for China or GovCloud it must still fit (ARNs grow there)."""
    for stem in ALL_POLICIES:
        document = load_policy(stem, partition)
        assert document["Version"] == "2012-10-17"
        sids = [s["Sid"] for s in document["Statement"]]
        assert len(sids) == len(set(sids)), f"{stem}: duplicate Sid"
        for statement in document["Statement"]:
            assert statement["Effect"] == "Allow" and statement["Resource"], statement["Sid"]
            actions = statement["Action"]
            if stem != BOUNDARY_POLICY:
                assert all("*" not in action for action in actions), f"{stem} {statement['Sid']}: no wildcards"
            assert actions == sorted(actions), f"{stem} {statement['Sid']}: keep actions sorted"
        text = json.dumps(document)
        assert "arn:aws:" not in text or partition == "aws", f"{stem}: an ARN kept the aws partition"
        assert size(document) <= MANAGED_POLICY_LIMIT, (
            f"{stem} is {size(document)} characters in {partition}; a managed policy holds {MANAGED_POLICY_LIMIT}"
        )
    learner_sids_all = [s["Sid"] for stem in LEARNER_POLICIES for s in load_policy(stem, partition)["Statement"]]
    assert len(learner_sids_all) == len(set(learner_sids_all)), "a Sid repeats across the learner policies"


def test_a_learner_holds_few_enough_policies() -> None:
    """IAM attaches at most 10 managed policies to a user (IAM quotas); the learner set leaves room."""
    assert len(LEARNER_POLICIES) <= 10 and len(INSTRUCTOR_POLICIES) <= 10


OWN_RESOURCE = {"aws:ResourceTag/labkit:lab": "${aws:PrincipalTag/labkit:lab}",
                "aws:ResourceTag/labkit:learner": "${aws:PrincipalTag/labkit:learner}"}  # fmt: skip
OWN_REQUEST = {"aws:RequestTag/labkit:lab": "${aws:PrincipalTag/labkit:lab}",
               "aws:RequestTag/labkit:learner": "${aws:PrincipalTag/labkit:learner}"}  # fmt: skip
CHANGES = ("Delete", "Modify", "Terminate", "Revoke", "Authorize", "Attach", "Detach", "Associate", "Disassociate",
           "Create", "Replace", "Failover", "Reboot", "Run")  # fmt: skip


def test_every_change_is_scoped_to_the_learners_own_resources() -> None:
    """What moto cannot enforce, read from the documents (tests/unit/test_abac_matrix.py evaluates it):
    each change, delete, session and command names the principal's own tags, each create the request's."""
    statements = learner_sids()
    for sid in ("ChangeOwnNetworkAndInstance", "ChangeOwnDatabases"):
        assert statements[sid]["Condition"] == {"StringEquals": OWN_RESOURCE}, sid
        assert all(a.split(":")[1].startswith(CHANGES) for a in statements[sid]["Action"]), sid
    guardrails = {"CreateTaggedAsOwn": {"ec2:InstanceType": "${aws:PrincipalTag/labkit:instance-type}"},
                  "CreateDatabaseTaggedAsOwn": {"rds:DatabaseClass": "${aws:PrincipalTag/labkit:db-class}"}}  # fmt: skip
    for sid, limit in guardrails.items():
        assert statements[sid]["Condition"]["StringEquals"] == OWN_REQUEST, sid
        assert statements[sid]["Condition"]["StringEqualsIfExists"] == OWN_RESOURCE | limit, sid
    # An existing VPC or subnet (the default VPC's, untagged) may be used, another learner's not; only for the two
    # calls that use one without creating it (a security group in it, an instance in it).
    existing = statements["InAnExistingVpcUnlessAnothers"]
    assert existing["Condition"] == {"StringEqualsIfExists": OWN_RESOURCE}
    assert existing["Action"] == ["ec2:CreateSecurityGroup", "ec2:RunInstances"]
    assert existing["Resource"] == ["arn:aws:ec2:*:*:vpc/*", "arn:aws:ec2:*:*:subnet/*"]
    tagging = statements["TagOnlyWhileCreatingAsOwn"]["Condition"]["StringEquals"]
    assert tagging["ec2:CreateAction"] and OWN_REQUEST.items() <= tagging.items()
    progress = statements["ProgressTagsOnOwnGroups"]  # a passed check's tag (labkit.workbook.progress), nothing else
    assert progress["Action"] == ["ec2:CreateTags"] and progress["Resource"] == "arn:aws:ec2:*:*:security-group/*"
    assert progress["Condition"] == {"StringEquals": OWN_RESOURCE, "Null": {"aws:TagKeys": "false"},
                                     "ForAllValues:StringLike": {"aws:TagKeys": [TAG_PROGRESS + "*"]}}  # fmt: skip
    sessions = statements["OnOwnInstancesOnly"]["Condition"]["StringEquals"]
    assert sessions == {k.replace("aws:ResourceTag", "ssm:resourceTag"): v for k, v in OWN_RESOURCE.items()}
    # Session Manager checks a session's document only when every statement allowing StartSession asks for it
    for sid, statement in statements.items():
        if "ssm:StartSession" in statement["Action"]:
            assert statement["Condition"]["BoolIfExists"] == {"ssm:SessionDocumentAccessCheck": "true"}, sid
    own_sessions = statements["OwnSessionsOnly"]
    assert own_sessions["Action"] == ["ssm:ResumeSession", "ssm:TerminateSession", "ssmmessages:OpenDataChannel"]
    assert all(r.endswith((":session/${aws:username}-*", ":session/${aws:userid}-*")) for r in own_sessions["Resource"])
    secret = statements["ReadOwnClusterSecret"]["Condition"]["StringLike"]
    assert secret["aws:ResourceTag/aws:rds:primaryDBClusterArn"].endswith(
        ":cluster:${aws:PrincipalTag/labkit:lab}-${aws:PrincipalTag/labkit:learner}-cluster"
    )
    # Every statement whose actions change something is conditioned or confined to the learner's own ARNs.
    for sid, statement in statements.items():
        changes = [a for a in statement["Action"] if a.split(":")[1].startswith(CHANGES)]
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        own_path = all("${aws:PrincipalTag/labkit:learner}" in r or "aws-service-role" in r or "rds!cluster" in r
                       or "::image/" in r or "security-group-rule" in r or "${aws:user" in r for r in resources)  # fmt: skip
        assert not changes or "Condition" in statement or own_path, f"{sid} changes {changes} unconditionally"


def test_no_escalation_is_written_into_the_learner_policies() -> None:
    """Roles a learner makes carry the instructor's boundary; policies go only on such roles; only the SSM
    managed policy may be attached; roles pass only to EC2 and only the learner's own (by IAM path)."""
    statements = learner_sids()
    boundary = "arn:aws:iam::${aws:PrincipalAccount}:policy/labkit/labkit-instance-boundary"
    assert (
        statements["CreateOwnRoleWithinTheBoundary"]["Condition"]["StringEquals"]["iam:PermissionsBoundary"] == boundary
    )
    assert statements["PolicyOnlyOnBoundedOwnRoles"]["Condition"] == {
        "StringEquals": {"iam:PermissionsBoundary": boundary}
    }
    attach = statements["AttachOnlyTheSsmPolicy"]["Condition"]
    assert attach["ArnEquals"]["iam:PolicyARN"].endswith("/AmazonSSMManagedInstanceCore")
    assert attach["StringEquals"]["iam:PermissionsBoundary"] == boundary
    assert statements["PassOwnRolesToEc2Only"]["Condition"] == {
        "StringEqualsIfExists": {"iam:PassedToService": "ec2.amazonaws.com"}
    }
    granted = policy_actions(learner_policy())
    for dangerous in ("iam:DeleteRolePermissionsBoundary", "iam:PutRolePermissionsBoundary", "iam:CreatePolicyVersion",
                      "iam:CreateUser", "iam:AttachUserPolicy", "iam:TagUser", "iam:UntagRole", "iam:UpdateAssumeRolePolicy",
                      "ec2:AssociateIamInstanceProfile", "ec2:ReplaceIamInstanceProfileAssociation", "ec2:DeleteTags",
                      "rds:RemoveTagsFromResource"):  # fmt: skip
        assert dangerous not in granted, dangerous
    for statement in statements.values():
        for action in statement["Action"]:
            if action.startswith("iam:") and action not in ("iam:ListRoles", "iam:ListInstanceProfiles"):
                resources = (
                    statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
                )
                assert all("/labkit/${aws:PrincipalTag/labkit:lab}/${aws:PrincipalTag/labkit:learner}/" in r
                           or r.endswith("/labkit/${aws:PrincipalTag/labkit:lab}/${aws:username}")
                           or "aws-service-role" in r or r.endswith("policy/labkit/labkit-instance-boundary") for r in resources), f"{action}: {resources}"  # fmt: skip


def test_the_instructor_policies_cover_the_class_code() -> None:
    """Every operation of labkit/classroom is granted to the instructor; the class policy grants nothing the
    class code never names (the reset policy is checked by the reset run in tests/unit/test_abac_matrix.py)."""
    instructor = set().union(*(policy_actions(load_policy(stem)) for stem in INSTRUCTOR_POLICIES))
    class_code = code_actions("labkit/classroom")
    for action in ADMIN_ONLY:  # the administrator's setup writes the policies; the instructor never does
        class_code.pop(action, None)
    reset_code = code_actions("labkit/lab")  # reset deletes through labkit.lab.destroy
    missing = {a for a in class_code if a not in instructor and not a.startswith(("ec2:Create", "rds:Create"))}
    missing -= {"iam:TagUser"}  # granted below; named as a tag of create_user, not an operation
    assert not missing, f"grant in labkit/data/policies/instructor-*.json:\n  {_sorted(missing)}"
    unused = policy_actions(load_policy("instructor-class")) - class_code.keys() - {"iam:TagUser"}
    assert not unused, f"granted but never named in labkit/classroom; remove:\n  {_sorted(unused)}"
    reset_unknown = policy_actions(load_policy("instructor-reset")) - reset_code.keys()
    assert not reset_unknown, f"the reset policy grants what labkit/lab never calls:\n  {_sorted(reset_unknown)}"


# IAM actions that write or attach a policy document, or lift a boundary: none may be the instructor's.
POLICY_WRITES = {"iam:CreatePolicy", "iam:CreatePolicyVersion", "iam:DeletePolicyVersion", "iam:SetDefaultPolicyVersion",
                 "iam:PutUserPolicy", "iam:PutRolePolicy", "iam:PutGroupPolicy", "iam:AttachRolePolicy",
                 "iam:AttachGroupPolicy", "iam:DeleteUserPermissionsBoundary", "iam:DeleteRolePermissionsBoundary",
                 "iam:PutRolePermissionsBoundary", "iam:CreateRole", "iam:UpdateAssumeRolePolicy", "iam:PassRole",
                 "iam:AddUserToGroup", "iam:CreateLoginProfile", "iam:UpdateLoginProfile", "sts:AssumeRole"}  # fmt: skip


def test_the_instructor_writes_no_policy_the_administrator_does() -> None:
    """Onboarding needs no power to write a policy (issue 25, item 8): the administrator's one-time setup
    (labkit/classroom/setup.py) creates them; the instructor's policies grant none of these writes, and create users
    and attach policies only with the learner boundary (tests/unit/test_abac_matrix.py evaluates every path)."""
    instructor = set().union(*(policy_actions(load_policy(stem)) for stem in INSTRUCTOR_POLICIES))
    assert not instructor & POLICY_WRITES, sorted(instructor & POLICY_WRITES)
    admin, instructor_code = code_actions(ADMIN_SETUP), code_actions("labkit/classroom", skip=(ADMIN_SETUP,))
    assert admin.keys() >= ADMIN_ONLY and not ADMIN_ONLY & instructor_code.keys(), "only the setup writes policies"
    assert not ADMIN_ONLY & instructor
    statements = {s["Sid"]: s for s in load_policy("instructor-class")["Statement"]}
    boundary = "arn:aws:iam::${aws:PrincipalAccount}:policy/labkit/labkit-learner-boundary"
    for sid in ("LearnersOnlyWithinTheBoundary", "OnlyTheLearnerPoliciesOnBoundedLearners"):
        assert statements[sid]["Condition"]["StringEquals"] == {"iam:PermissionsBoundary": boundary}, sid
    attachable = statements["OnlyTheLearnerPoliciesOnBoundedLearners"]["Condition"]["ArnEquals"]["iam:PolicyARN"]
    assert sorted(a.rsplit("/", 1)[-1] for a in attachable) == sorted(f"labkit-{stem}" for stem in LEARNER_POLICIES)


def test_moto_compatible_copy_drops_only_what_moto_cannot_check() -> None:
    for stem in LEARNER_POLICIES:
        learner = load_policy(stem)
        derived = moto_compatible(learner)
        assert all(s["Resource"] == "*" and "Condition" not in s for s in derived["Statement"])
        assert policy_actions(derived) == policy_actions(learner)
    assert moto_compatible({"Statement": [{"Action": "tag:GetResources", "Resource": "arn:x"}]})["Statement"] == [
        {"Action": ["tagging:GetResources"], "Resource": "*"}
    ]


# ----- the recorder -----


def test_iam_action_names_and_implied_checks() -> None:
    assert iam_action("resourcegroupstaggingapi", "GetResources") == "tag:GetResources"
    assert iam_action("service-quotas", "GetServiceQuota") == "servicequotas:GetServiceQuota"
    assert iam_action("ec2", "RunInstances") == "ec2:RunInstances"
    launch = {"IamInstanceProfile": {"Name": "p"}, "TagSpecifications": [{"ResourceType": "instance", "Tags": []}]}
    assert implied_actions("ec2", "RunInstances", launch) == {"iam:PassRole", "ec2:CreateTags"}
    assert implied_actions("ec2", "RunInstances", {}) == set()
    assert implied_actions("rds", "CreateDBSubnetGroup", {"Tags": [{"Key": "k", "Value": "v"}]}) == {
        "rds:AddTagsToResource"
    }
    # Aurora User Guide, "Password management with Amazon Aurora and AWS Secrets Manager": exactly these three.
    assert implied_actions("rds", "CreateDBCluster", {"ManageMasterUserPassword": True}) == {
        "iam:CreateServiceLinkedRole",
        "kms:DescribeKey",
        "secretsmanager:CreateSecret",
        "secretsmanager:TagResource",
    }
    assert implied_actions("rds", "CreateDBCluster", {}) == {"iam:CreateServiceLinkedRole"}
    assert implied_actions("iam", "AddRoleToInstanceProfile", {"RoleName": "r", "InstanceProfileName": "p"}) == {
        "iam:PassRole"
    }
    assert implied_actions("iam", "CreateUser", {"Tags": [{"Key": "k", "Value": "v"}]}) == {"iam:TagUser"}
    assert implied_actions("iam", "CreateRole", {"Tags": [{"Key": "k", "Value": "v"}]}) == {"iam:TagRole"}


def test_recorder_sees_calls_paginators_and_waiters_then_lets_go(fast_moto: None) -> None:
    from moto import mock_aws

    with mock_aws():
        backend = InProcessBackend.make()
        with record_actions(backend) as recorder:
            ec2 = backend.client("ec2")
            vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
            list(backend.client("iam").get_paginator("list_roles").paginate())
            ec2.get_waiter("vpc_available").wait(VpcIds=[vpc])
            backend.client("resourcegroupstaggingapi").get_resources()
        backend.client("ec2").delete_vpc(VpcId=vpc)  # after the block: not recorded
    assert recorder.called == {"ec2:CreateVpc", "iam:ListRoles", "ec2:DescribeVpcs", "tag:GetResources"}
    assert recorder.implied == set()
    assert "client" not in vars(backend), "the backend's client method is restored"

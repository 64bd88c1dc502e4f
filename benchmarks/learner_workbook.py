"""The learner's workbook end to end, solving the exercises: how long the machine takes, with what a learner typed.

    .venv/bin/python benchmarks/learner_workbook.py [--keep DIR]

Releases the learner's copies (labkit.release_notebooks) into a fresh temporary LABKIT home, starts a sandbox,
and runs 00 to 06 in order in fresh kernels (nbclient), each "your turn" placeholder replaced by the answer below:
what one learner typed, not the committed solutions (boto3 for the app's outbound rule, the endpoints table for the
reader endpoint, the verdict's own fix in 03, ...), so the checks are seen passing on answers written differently.
Before each answer, the learner asks for the first hint, as a stuck learner would. Prints each notebook's seconds,
its checks passed, and the total. A learner's reading and typing time comes on top; the note in the report says
how long that took by hand.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

# What one learner typed in each "your turn" cell.
ANSWERS = {
    "01.db-ingress": 'labkit.authorize_ingress(config, group="sg-db", port=3306, source_group="sg-app")',
    "01.app-egress": (
        'ec2 = config.make_backend().client("ec2")\n'
        'ec2.authorize_security_group_egress(GroupId=result.ids["sg-app"], IpPermissions=[{"IpProtocol": "tcp", '
        '"FromPort": 3306, "ToPort": 3306, "UserIdGroupPairs": [{"GroupId": result.ids["sg-db"]}]}])'
    ),
    "02.reader-endpoint": 'reader_endpoint = labkit.endpoints(config).query("endpoint == \'reader\'")["host"].item()',
    "02.backups": (
        'changed = rds.modify_db_cluster(DBClusterIdentifier=result.ids["cluster"], BackupRetentionPeriod=7, '
        "ApplyImmediately=True)"
    ),
    "03.imdsv2": (
        'reservations = config.make_backend().client("ec2").describe_instances(InstanceIds=[result.ids["instance"]])'
        '["Reservations"]\nhttp_tokens = reservations[0]["Instances"][0]["MetadataOptions"]["HttpTokens"]'
    ),
    "03.fix-reach": "verdict.fixes[0].apply(config.make_backend())",
    "04.param-insert": (
        'labkit.sql("INSERT INTO orders (product_id, customer, quantity) VALUES (:p, :c, :q)",\n'
        '           params={"p": 7, "c": "Robert\'); DROP TABLE orders;--", "q": 2}, config=config)'
    ),
    "04.read-on-reader": (
        'found = labkit.sql("SELECT * FROM orders WHERE customer = :c", on="reader",\n'
        '                   params={"c": "Robert\'); DROP TABLE orders;--"}, config=config)'
    ),
    "04.who-answered": 'answered = labkit.whoami("reader", config=config)',
    "05.predict": 'prediction = "writer is slower"',
    "05.interval": (
        "row = comparison.difference().iloc[0]\n"
        "inside = abs(row.ci95_low_us) <= row.threshold_us and abs(row.ci95_high_us) <= row.threshold_us"
    ),
    "05.new-writer": 'answered = labkit.whoami("writer", config=config)',
}
PLACEHOLDER = 'labkit.your_turn("{id}")'


def answered(notebook: nbformat.NotebookNode) -> int:
    """Put each answer where its placeholder is (with a hint asked first); returns how many."""
    count = 0
    for cell in notebook.cells:
        for exercise_id, answer in ANSWERS.items():
            if PLACEHOLDER.format(id=exercise_id) in cell.get("source", ""):
                cell.source = f'print(labkit.exercise("{exercise_id}").hint())\n{answer}'
                count += 1
    return count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", default=None, help="keep the executed copies in this folder")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="labkit-learner-"))
    os.environ.update(LABKIT_HOME=str(home), LABKIT_BACKEND="sandbox", PYTHONHASHSEED="0")
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        del os.environ[name]
    from labkit import sandbox
    from labkit.workbook.release import release_notebooks

    release = release_notebooks()  # into the fresh home's notebooks/, as make lab does
    started = time.monotonic()
    sandbox.up(quiet=True)
    os.environ.update(sandbox.env_exports())
    total_checks = 0
    try:
        for path in sorted(release.out.glob("0[0-6]_*.ipynb")):
            notebook = nbformat.read(path, as_version=4)
            exercises = answered(notebook)
            began = time.monotonic()
            NotebookClient(
                notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
            ).execute()
            passed = sum(
                "passed" in "".join(str(o.get("data", {}).get("text/plain", "")) for o in cell.get("outputs", []))
                for cell in notebook.cells
                if cell.cell_type == "code" and ").check(" in cell.source
            )
            total_checks += passed
            print(f"{path.stem:<14} {time.monotonic() - began:6.1f} s  exercises {exercises}, checks passed {passed}",
                  flush=True)  # fmt: skip
            if args.keep:
                Path(args.keep).mkdir(parents=True, exist_ok=True)
                nbformat.write(notebook, Path(args.keep) / path.name)
    finally:
        sandbox.down(quiet=True)
        shutil.rmtree(home, ignore_errors=True)
    print(f"total          {time.monotonic() - started:6.1f} s  checks passed {total_checks} of {len(ANSWERS)}")
    return 0 if total_checks == len(ANSWERS) else 1


if __name__ == "__main__":
    sys.exit(main())

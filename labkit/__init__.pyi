# The public API of labkit, listed once: each line names where a public name lives.
# `labkit/__init__.py` serves these lazily (lazy_loader.attach_stub); type checkers and IDEs read them here.
# Result types, backends and helpers live in their subpackages (labkit.lab, labkit.access, labkit.aws, ...).

from . import bench, sandbox
from .access.encryption import encryption, plaintext_refused
from .access.endpoints import endpoints
from .access.schema import create_schema
from .access.sql import close_engines, credentials, engine, sql, whoami
from .access.tunnel import tunnel
from .access.tunnel.readiness import readiness
from .access.webapp import app_code, web_app
from .bench import benchmark, compare, failover, replica_lag, watch_failover
from .classroom import (
    class_check,
    class_reset,
    class_setup,
    class_status,
    learners_create,
    learners_delete,
    learners_list,
)
from .classroom.progress import class_progress
from .config import LabConfig
from .errors import ConfigError, LabkitError
from .failover_lab import failover_lab
from .lab.apply import apply
from .lab.cost import plan_cost, running_cost
from .lab.destroy import destroy
from .lab.inventory import status, verify
from .lab.plan import plan
from .lab.preflight import preflight
from .security import authorize_egress, authorize_ingress, can_reach, lint, revoke_rules, security_groups, style_rules
from .workbook.checkpoints import begin, checkpoint
from .workbook.doctor import environment_report
from .workbook.exercises import exercise, exercises, your_turn
from .workbook.explain import explain
from .workbook.form import config_form
from .workbook.held import hold_connection
from .workbook.leftovers import other_labs
from .workbook.release import release_notebooks
from .workbook.runner import run_notebooks

__version__: str

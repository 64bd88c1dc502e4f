# The public API of labkit.sandbox, listed once; `__init__.py` serves it lazily (lazy_loader.attach_stub).

from .control import down, env_exports, reset, status, up, wait_for_databases
from .state import SandboxState, read_state
from .vpc.dns import endpoint_map, resolve

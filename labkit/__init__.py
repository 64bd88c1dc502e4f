"""labkit: provision, inspect, query, benchmark and clean up an Aurora (MySQL or PostgreSQL) + EC2 lab.

The public API is listed once, in `__init__.pyi`; notebooks and the CLI use nothing else. lazy_loader
serves it from that stub, importing each name's module on first use, so a small tool (the sandbox's
session plugin, `labkit --help`) does not pay for pandas and the whole API.
"""

import sys

import lazy_loader

__version__ = "0.1.0"

__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)
__all__ = [*__all__, "__version__"]

if "IPython" in sys.modules:  # inside IPython or Jupyter: a LabkitError shows as its message and fix only
    from labkit.workbook.shell import install as _install_error_display

    _install_error_display()

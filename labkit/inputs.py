"""Checks of command inputs that are not lab config fields: lists of names and folders labkit writes into.

Each refuses a bad value before any work, with a ConfigError naming the flag and the fix: a name list with a
repeat or an empty item (a typo that would otherwise be dropped in silence), a folder inside a kernel
pseudo-filesystem (/proc, /sys, /dev), where nothing can be saved and a later mkdir would end in a traceback.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from labkit.errors import ConfigError

# Filesystems the kernel makes up on the fly: no file written there is kept (or can be written at all).
KERNEL_FILESYSTEMS = frozenset(
    {"proc", "sysfs", "devtmpfs", "devpts", "cgroup", "cgroup2", "securityfs", "debugfs", "tracefs", "configfs",
     "pstore", "bpf", "mqueue", "fusectl", "binfmt_misc", "efivarfs", "autofs", "hugetlbfs"}
)  # fmt: skip
KERNEL_TREES = ("/proc", "/sys", "/dev")  # the same, whatever is mounted there (a container's /dev is a tmpfs)
WRITABLE_UNDER_DEV = ("/dev/shm",)  # a real tmpfs for files, though it sits under /dev


def split_names(names: str | Iterable[str], *, field: str = "--names") -> list[str]:
    """'ada,grace' (or ['ada', 'grace']) -> the names, stripped, in order; an empty item or a repeat is refused:
    `a,,b` is a typo, and `a,a` asks for one learner twice (dropping either in silence hides the mistake)."""
    items = names.split(",") if isinstance(names, str) else [str(name) for name in names]
    chosen = [item.strip() for item in items]
    if not any(chosen):
        raise ConfigError("no learner names given", field=field, fix=f"list them: {field} ada,grace,alan")
    if "" in chosen:
        where = chosen.index("")
        raise ConfigError(
            f"name {where + 1} of {len(chosen)} is empty ({','.join(chosen)!r})",
            field=field,
            fix=f"one name between each pair of commas, no comma at either end: {field} "
            f"{','.join(name for name in chosen if name)}",
        )
    repeated = sorted({name for name in chosen if chosen.count(name) > 1})
    if repeated:
        raise ConfigError(
            f"{', '.join(map(repr, repeated))} given more than once",
            field=field,
            fix=f"give each learner once: {field} {','.join(dict.fromkeys(chosen))}",
        )
    return chosen


def _mounts() -> list[tuple[str, str]]:
    """(mount point, filesystem type) of every mount ([] without /proc, as on macOS)."""
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return []
    mounts = []
    for line in lines:
        parts = line.split()
        if len(parts) >= 3:
            mounts.append((parts[1].replace("\\040", " "), parts[2]))
    return mounts


def _kernel_filesystem(path: Path) -> str | None:
    """The kernel pseudo-filesystem `path` (resolved) is inside, as 'type at mount point'; None for a real one."""
    mounted = [(Path(point), kind) for point, kind in _mounts() if path.is_relative_to(point)]
    if mounted:
        point, kind = max(mounted, key=lambda found: len(found[0].parts))
        if kind in KERNEL_FILESYSTEMS:
            return f"{kind} at {point}"
    if any(path.is_relative_to(tree) for tree in WRITABLE_UNDER_DEV):
        return None
    tree = next((tree for tree in KERNEL_TREES if path.is_relative_to(tree)), None)
    return f"the kernel's {tree}" if tree else None


def check_output_folder(path: str | Path, *, field: str, example: str = "~/lab-output") -> Path:
    """The folder `path` (expanded, made absolute), refused when it is inside a kernel pseudo-filesystem or names a
    file: labkit creates it and writes files into it, which neither allows."""
    folder = Path(path).expanduser().absolute()
    kernel = _kernel_filesystem(folder.resolve())
    if kernel:
        raise ConfigError(
            f"{path} is inside {kernel}, a kernel pseudo-filesystem where no file can be saved",
            field=field,
            fix=f"choose a folder on a real disk, e.g. {field} {example}",
        )
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{path} is a file, not a folder", field=field, fix=f"choose a folder, e.g. {example}")
    return folder

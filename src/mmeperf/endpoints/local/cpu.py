"""Emulated vCPUs: the local MME's processes (front end and model workers) run inside a CPU
allowance of the instance's vCPUs times a scale, by a cgroup quota, else CPU affinity, else none.

The mechanism is detected, never assumed: a CPU quota needs a writable cgroup with the cpu
controller (cgroup v2 ``cpu.max``, or v1 ``cpu.cfs_quota_us``); affinity needs
``os.sched_setaffinity``. Whatever applied is labelled (:meth:`CpuAllowance.label`), and what
could not apply says why. Children started after :func:`apply` (the model workers) inherit the
cgroup and the affinity. :func:`cpu_allowance` removes it again on exit, also on SIGTERM.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Literal

__all__ = [
    "CPU_PERIOD_US",
    "CpuAllowance",
    "CpuEmulation",
    "apply",
    "cpu_allowance",
    "current",
    "default_scale",
    "host_cpus",
    "read_back",
    "remove",
]

log = logging.getLogger("mmeperf.serve")

#: How an allowance may be enforced; "auto" tries quota, then affinity.
CpuEmulation = Literal["auto", "quota", "affinity", "none"]
#: The CFS period of our quotas, microseconds (the kernel's default period).
CPU_PERIOD_US = 100_000
#: Prefix of the cgroups we create (``mmeperf-<pid>``); stale ones of dead servers are removed.
CGROUP_PREFIX = "mmeperf-"

_current: CpuAllowance | None = None


@dataclass
class CpuAllowance:
    """The CPU allowance in force for this process and its children."""

    mechanism: Literal["quota", "affinity", "none"]
    """What enforces it: a cgroup CPU quota, CPU affinity to whole cores, or nothing."""
    requested_cpus: float | None
    """Instance vCPUs x scale (None: nothing was requested)."""
    cpus: float
    """CPUs the processes may use: the quota, the number of cores, or the host's cores."""
    scale: float
    """Emulated CPUs per instance vCPU (offered load is scaled by the same factor)."""
    detail: str = ""
    """Where it lives: the cgroup folder and its setting, or the core list."""
    not_applied: list[str] = field(default_factory=list)
    """Why preferred mechanisms did not apply (tried in order)."""
    cgroup_dir: str | None = None
    cgroup_version: int | None = None
    cores: list[int] | None = None
    _previous_affinity: list[int] | None = None
    _parent_procs: str | None = None

    def label(self) -> str:
        """One line for reports: mechanism, CPUs, scale, and why others did not apply."""
        if self.mechanism == "none":
            text = f"CPU not emulated ({host_cpus()} host cores)"
        else:
            text = f"CPU allowance {self.cpus:g} CPUs by {self.mechanism} ({self.detail}), scale {self.scale:g}"
            if self.requested_cpus is not None and not math.isclose(self.cpus, self.requested_cpus):
                text += f", requested {self.requested_cpus:g}"
        if self.not_applied:
            text += "; not applied: " + "; ".join(self.not_applied)
        return text

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if not k.startswith("_")}
        out["label"] = self.label()
        return out


def host_cpus() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def default_scale(vcpus: int, *, largest_vcpus: int | None = None) -> float:
    """Emulated CPUs per vCPU so that the largest instance compared fits this host (at most 1)."""
    largest = max(largest_vcpus or vcpus, 1)
    return min(1.0, host_cpus() / largest)


def current() -> CpuAllowance | None:
    """The allowance :func:`apply` put in force in this process, if any."""
    return _current


# --- apply / remove ----------------------------------------------------------------------------


def apply(
    mechanism: CpuEmulation,
    cpus: float | None,
    *,
    scale: float = 1.0,
    cgroup_fs: str | os.PathLike[str] = "/sys/fs/cgroup",
    proc: str | os.PathLike[str] = "/proc",
) -> CpuAllowance:
    """Put this process (and the children it starts afterwards) inside ``cpus`` CPUs.

    ``mechanism``: "quota" or "auto" try a cgroup quota first, then affinity; "affinity" tries
    only affinity; "none" (or ``cpus`` None) applies nothing. Never raises for a host that cannot
    do it: the result says what applied and why the rest did not.
    """
    global _current
    if mechanism == "none" or cpus is None:
        off = CpuAllowance("none", cpus, float(host_cpus()), scale)
        if cpus is not None:
            off.not_applied.append("CPU emulation switched off (--cpu-emulation none)")
        _current = off
        return off
    if cpus <= 0:
        raise ValueError(f"Expected a CPU allowance > 0, received {cpus}")
    not_applied: list[str] = []
    allowance: CpuAllowance | None = None
    if mechanism in ("auto", "quota"):
        try:
            allowance = _apply_quota(cpus, scale, Path(cgroup_fs), Path(proc))
        except _CannotApply as exc:
            not_applied.append(f"quota: {exc}")
    if allowance is None:
        try:
            allowance = _apply_affinity(cpus, scale)
        except _CannotApply as exc:
            not_applied.append(f"affinity: {exc}")
    if allowance is None:
        allowance = CpuAllowance("none", cpus, float(host_cpus()), scale)
    allowance.not_applied = not_applied
    if not_applied:
        log.warning("CPU emulation: %s", allowance.label())
    _current = allowance
    return allowance


def remove(allowance: CpuAllowance) -> None:
    """Undo :func:`apply`: leave and delete the cgroup, or restore the affinity (idempotent)."""
    global _current
    if allowance.cgroup_dir is not None and allowance._parent_procs is not None:
        group = Path(allowance.cgroup_dir)
        _empty_cgroup(group, Path(allowance._parent_procs))
        with contextlib.suppress(OSError):
            group.rmdir()
        allowance._parent_procs = None
    if allowance._previous_affinity is not None:
        _set_affinity_all_threads(allowance._previous_affinity)
        allowance._previous_affinity = None
    if _current is allowance:
        _current = None


@contextlib.contextmanager
def cpu_allowance(mechanism: CpuEmulation, cpus: float | None, *, scale: float = 1.0,
                  cgroup_fs: str | os.PathLike[str] = "/sys/fs/cgroup") -> Iterator[CpuAllowance]:
    """:func:`apply` for the block, removed on exit; SIGTERM before anyone else handles it
    (e.g. during startup) exits through the block too, so the cgroup never outlives us."""
    allowance = apply(mechanism, cpus, scale=scale, cgroup_fs=cgroup_fs)
    previous = signal.getsignal(signal.SIGTERM)

    def on_term(signum: int, frame: FrameType | None) -> None:
        # Clean up, then die of the signal as if nobody had handled it (the exit status tells).
        remove(allowance)
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    installed = previous in (signal.SIG_DFL, None)
    if installed:
        with contextlib.suppress(ValueError):  # not the main thread: leave signals alone
            signal.signal(signal.SIGTERM, on_term)
    try:
        yield allowance
    finally:
        remove(allowance)
        if installed:
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(signal.SIGTERM, previous)


# --- reading back --------------------------------------------------------------------------------


def read_back(pid: int, *, proc: str | os.PathLike[str] = "/proc", cgroup_fs: str | os.PathLike[str] = "/sys/fs/cgroup") -> dict[str, Any]:
    """What the kernel enforces on ``pid``: its cpu cgroup and quota, and its allowed CPUs.

    ``{"cgroup": path or None, "quota_cpus": float or None, "cpus_allowed_list": "0-1"}``.
    """
    out: dict[str, Any] = {"cgroup": None, "quota_cpus": None, "cpus_allowed_list": None}
    base = Path(proc) / str(pid)
    try:
        for line in (base / "status").read_text().splitlines():
            if line.startswith("Cpus_allowed_list:"):
                out["cpus_allowed_list"] = line.split(":", 1)[1].strip()
    except OSError:
        return out
    found = _find_cpu_cgroup(Path(cgroup_fs), Path(proc), pid=pid)
    if found is not None:
        version, folder = found
        out["cgroup"] = str(folder)
        out["quota_cpus"] = _read_quota(version, folder)
    return out


def parse_cpu_list(text: str) -> list[int]:
    """``"0-2,5"`` -> [0, 1, 2, 5] (the kernel's CPU list format)."""
    cpus: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        lo, _, hi = part.partition("-")
        cpus.extend(range(int(lo), int(hi or lo) + 1))
    return cpus


# --- quota ---------------------------------------------------------------------------------------


class _CannotApply(Exception):
    """This mechanism is not available here (the message says why)."""


def _apply_quota(cpus: float, scale: float, cgroup_fs: Path, proc: Path) -> CpuAllowance:
    found = _find_cpu_cgroup(cgroup_fs, proc, pid=None)
    if found is None:
        raise _CannotApply(f"no cgroup with the cpu controller is mounted under {cgroup_fs}")
    version, parent = found
    _sweep_stale(parent)
    group = parent / f"{CGROUP_PREFIX}{os.getpid()}"
    quota_us = max(round(cpus * CPU_PERIOD_US), 1000)  # the kernel's minimum quota is 1 ms
    try:
        if version == 2:
            controllers = (parent / "cgroup.subtree_control").read_text().split()
            if "cpu" not in controllers:
                (parent / "cgroup.subtree_control").write_text("+cpu")
        group.mkdir(exist_ok=True)
        if version == 2:
            (group / "cpu.max").write_text(f"{quota_us} {CPU_PERIOD_US}")
            setting = f"cpu.max={quota_us} {CPU_PERIOD_US}"
        else:
            (group / "cpu.cfs_period_us").write_text(str(CPU_PERIOD_US))
            (group / "cpu.cfs_quota_us").write_text(str(quota_us))
            setting = f"cpu.cfs_quota_us={quota_us} per cpu.cfs_period_us={CPU_PERIOD_US}"
        (group / "cgroup.procs").write_text(str(os.getpid()))
    except OSError as exc:
        with contextlib.suppress(OSError):
            _empty_cgroup(group, parent / "cgroup.procs")
            group.rmdir()
        raise _CannotApply(f"cannot set a quota in {group} ({exc.strerror or exc})") from exc
    # Trust only what the kernel reports back.
    back = read_back(os.getpid(), proc=proc, cgroup_fs=cgroup_fs)
    if back["cgroup"] != str(group) or back["quota_cpus"] is None:
        with contextlib.suppress(OSError):
            _empty_cgroup(group, parent / "cgroup.procs")
            group.rmdir()
        raise _CannotApply(f"joined {group} but the kernel reports {back}")
    return CpuAllowance(
        "quota", cpus, back["quota_cpus"], scale, detail=f"cgroup v{version} {group}: {setting}",
        cgroup_dir=str(group), cgroup_version=version, _parent_procs=str(parent / "cgroup.procs"),
    )


def _mounts(proc: Path) -> list[tuple[str, str, str, set[str]]]:
    """(mount point, root, fstype, super options) of the cgroup mounts in our mount namespace."""
    out: list[tuple[str, str, str, set[str]]] = []
    try:
        text = (proc / "self" / "mountinfo").read_text()
    except OSError:
        return out
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields, rfields = left.split(), right.split()
        if len(fields) < 5 or len(rfields) < 3:
            continue
        fstype = rfields[0]
        if fstype in ("cgroup", "cgroup2"):
            out.append((fields[4], fields[3], fstype, set(rfields[2].split(","))))
    return out


def _find_cpu_cgroup(cgroup_fs: Path, proc: Path, *, pid: int | None) -> tuple[int, Path] | None:
    """(cgroup version, folder) of the cpu cgroup ``pid`` (None: this process) is in.

    Prefers cgroup v1's cpu hierarchy when both exist (on hybrid hosts v2 usually has no cpu
    controller); only mounts under ``cgroup_fs`` count.
    """
    try:
        lines = (proc / str(pid if pid is not None else "self") / "cgroup").read_text().splitlines()
    except OSError:
        return None
    paths_v1: dict[str, str] = {}
    path_v2: str | None = None
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if parts[0] == "0" and parts[1] == "":
            path_v2 = parts[2]
        for controller in parts[1].split(","):
            paths_v1[controller] = parts[2]
    root = str(cgroup_fs)
    v2: tuple[int, Path] | None = None
    for mount, mount_root, fstype, options in _mounts(proc):
        if not (mount == root or mount.startswith(root.rstrip("/") + "/")):
            continue
        if fstype == "cgroup" and "cpu" in options and "cpu" in paths_v1:
            return 1, _join(mount, mount_root, paths_v1["cpu"])
        if fstype == "cgroup2" and path_v2 is not None:
            folder = _join(mount, mount_root, path_v2)
            try:
                if "cpu" in (folder / "cgroup.controllers").read_text().split():
                    v2 = (2, folder)
            except OSError:
                continue
    return v2


def _join(mount: str, mount_root: str, path: str) -> Path:
    if mount_root != "/" and path.startswith(mount_root):
        path = path[len(mount_root):]
    return Path(mount) / path.lstrip("/")


def _read_quota(version: int, folder: Path) -> float | None:
    """The folder's CPU quota in CPUs (None: unlimited or unreadable)."""
    try:
        if version == 2:
            quota, period = (folder / "cpu.max").read_text().split()
            return None if quota == "max" else int(quota) / int(period)
        q = int((folder / "cpu.cfs_quota_us").read_text())
        p = int((folder / "cpu.cfs_period_us").read_text())
        return None if q < 0 else q / p
    except (OSError, ValueError):
        return None


def _empty_cgroup(group: Path, parent_procs: Path) -> None:
    """Move every process left in ``group`` (this one, workers still exiting) to the parent."""
    try:
        pids = (group / "cgroup.procs").read_text().split()
    except OSError:
        return
    for pid in pids:
        with contextlib.suppress(OSError):
            parent_procs.write_text(pid)


def _sweep_stale(parent: Path) -> None:
    """Remove cgroups a previous server left behind when it was killed (SIGKILL skips cleanup)."""
    try:
        children = list(parent.glob(f"{CGROUP_PREFIX}*"))
    except OSError:
        return
    for child in children:
        owner = child.name[len(CGROUP_PREFIX):]
        if not owner.isdigit() or int(owner) == os.getpid() or _alive(int(owner)):
            continue
        with contextlib.suppress(OSError):
            _empty_cgroup(child, parent / "cgroup.procs")
            child.rmdir()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --- affinity ------------------------------------------------------------------------------------


def _apply_affinity(cpus: float, scale: float) -> CpuAllowance:
    if not hasattr(os, "sched_setaffinity"):
        raise _CannotApply("os.sched_setaffinity is not available on this platform")
    available = sorted(os.sched_getaffinity(0))
    n = min(max(1, round(cpus)), len(available))  # whole cores only
    cores = available[:n]
    try:
        _set_affinity_all_threads(cores)
    except OSError as exc:
        raise _CannotApply(f"sched_setaffinity failed ({exc.strerror or exc})") from exc
    detail = f"cores {','.join(map(str, cores))} of {len(available)}"
    return CpuAllowance("affinity", cpus, float(n), scale, detail=detail, cores=cores,
                        _previous_affinity=available)


def _set_affinity_all_threads(cores: list[int]) -> None:
    """sched_setaffinity is per thread on Linux: set it for every thread already running, so
    pools started before (and threads they start later) obey it too."""
    os.sched_setaffinity(0, cores)
    try:
        tids = [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:
        return
    for tid in tids:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(tid, cores)

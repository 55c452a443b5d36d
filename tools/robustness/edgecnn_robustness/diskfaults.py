"""A full disk and a read-only output folder, for real: small tmpfs mounts in a private mount namespace.

As root, ``chmod`` does not make a folder read-only, so permission bits prove nothing. When ``unshare -m`` and
``mount`` work (root with CAP_SYS_ADMIN, as in CI containers here), each case runs the real command inside
``unshare -m`` over a tmpfs mounted there (64 KiB: full; ``ro``: read-only); the mount disappears with the
namespace. Elsewhere :func:`mount_available` is False and only the portable case runs: an output path whose
parent is a file.

Each case must end in a clear one-line error, a non-zero exit (not a signal) and nothing left in the folder.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edgecnn_robustness.childenv import child_env


@dataclass(frozen=True)
class DiskCase:
    """One output-location failure: the command, what the folder was, exit code, the error line, the files left
    in the folder afterwards, and whether that is all as required."""

    name: str
    command: str
    returncode: int
    error_line: str
    files_left: tuple[str, ...]
    ok: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def mount_available() -> bool:
    """True when a tmpfs can be mounted in a private mount namespace here."""
    if not shutil.which("unshare") or os.geteuid() != 0:
        return False
    try:
        p = subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=16k tmpfs /mnt && umount /mnt"],
                           check=False, capture_output=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return p.returncode == 0


def _edgecnn(args: list[str]) -> str:
    return " ".join(shlex.quote(a) for a in [sys.executable, "-m", "edgecnn", *args])


def _judge(name: str, command: str, rc: int, stderr: str, left: list[str]) -> DiskCase:
    err = next((ln for ln in stderr.splitlines() if ln.startswith("Error:")), "")
    ok = rc > 0 and "Traceback" not in stderr and bool(err) and not left
    return DiskCase(name, command, rc, err, tuple(left), ok)


def run_in_mount(name: str, folder: Path, mount_opts: str, args: list[str], timeout: float = 600) -> DiskCase:
    """Mount a tmpfs with ``mount_opts`` on ``folder`` in a private namespace, run ``edgecnn ARGS`` there, and
    list what is left in the folder (hidden files included) before the namespace goes away."""
    folder.mkdir(parents=True, exist_ok=True)
    marker = "::files-left::"
    script = (f"mount -t tmpfs -o {shlex.quote(mount_opts)} tmpfs {shlex.quote(str(folder))} || exit 97\n"
              f"{_edgecnn(args)}\nrc=$?\necho {marker} >&2\nls -A {shlex.quote(str(folder))} >&2\nexit $rc\n")
    env = child_env(TF_CPP_MIN_LOG_LEVEL="3")
    p = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script], check=False,
                       capture_output=True, text=True, timeout=timeout, env=env)
    head, _, tail = p.stderr.partition(marker)
    left = [ln for ln in tail.splitlines() if ln.strip()]
    return _judge(name, "edgecnn " + " ".join(args[:1]) + f" --out <{mount_opts} tmpfs>", p.returncode, head, left)


def parent_is_a_file(folder: Path, args_for: Any) -> DiskCase:
    """The portable case: ``--out`` below a path that is a regular file."""
    folder.mkdir(parents=True, exist_ok=True)
    blocker = folder / "not_a_folder"
    blocker.write_text("a file where a folder should be\n")
    args = args_for(blocker / "model.tflite")
    env = child_env(TF_CPP_MIN_LOG_LEVEL="3")
    p = subprocess.run([sys.executable, "-m", "edgecnn", *args], check=False, capture_output=True, text=True,
                       env=env, timeout=600)
    left = [x.name for x in folder.iterdir() if x.name != blocker.name]
    return _judge("output parent is a file", f"edgecnn {args[0]} --out <file>/model.tflite", p.returncode, p.stderr, left)


def disk_cases(run: str | Path, calibration: str | Path, work: str | Path, quick: bool = False) -> list[DiskCase]:
    """Full disk (quantize and export into a 64 KiB tmpfs), read-only folder (quantize and export into a
    read-only tmpfs), and an output under a file; the mount cases only when :func:`mount_available`.
    ``quick`` leaves out the export cases (each costs a full conversion before the write fails)."""
    work = Path(work)
    run, calibration = str(run), str(calibration)

    def quantize(out: Path) -> list[str]:
        return ["quantize", run, "--calibration", calibration, "--out", str(out)]

    def export(out: Path) -> list[str]:
        return ["export", run, "--calibration", calibration, "--out", str(out)]

    cases = [parent_is_a_file(work / "file_parent", quantize)]
    if mount_available():
        full, ro = work / "full", work / "readonly"
        cases.append(run_in_mount("full disk: quantize", full, "size=64k", quantize(full / "model.tflite")))
        if not quick:
            cases.append(run_in_mount("full disk: export", full, "size=64k", export(full / "bundle")))
        cases.append(run_in_mount("read-only folder: quantize", ro, "ro,size=1m", quantize(ro / "model.tflite")))
        if not quick:
            cases.append(run_in_mount("read-only folder: export", ro, "ro,size=1m", export(ro / "bundle")))
    return cases

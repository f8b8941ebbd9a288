"""``--sandbox``: the student's worker in a bubblewrap container that sees only what it needs.

Inside, the worker runs as ``nobody`` in new user, PID, network, IPC and UTS namespaces, with
every capability dropped, and a filesystem view made of:

* the system's ``/usr`` and the Python installation, read-only;
* the course library, read-only, with the grader's checks hidden and each off-limits module
  replaced by its inert shadow (:mod:`.offlimits`), so that not even its source can be read;
* the student's own file, read-only, as ``/submission/<name>.py``;
* a fresh, empty, writable home directory, which is also the working directory.

No ``solutions/``, no other student's folder, no network. When the judge ends the worker,
the kernel ends every process in its PID namespace with it. The resource limits of
:func:`mlsec_lessons.grading.worker.set_limits` apply inside and, with no capabilities,
cannot be raised.

When bubblewrap is missing or the kernel refuses it, :func:`require` says what is missing and
how to get it; a grade is never produced in a weaker mode than the one asked for.
"""
import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

import mlsec_lessons

from ..errors import MLSecError

LEVEL = "sandbox (bubblewrap: own user, PID and network namespaces, no capabilities, read-only view)"
HOME = "/home/student"
SUBMISSION = "/submission"


class SandboxUnavailable(MLSecError, RuntimeError):
    """``--sandbox`` was asked for and cannot be provided here."""


@functools.lru_cache(maxsize=1)
def problem():
    """Why the sandbox cannot run here, or None when it can."""
    if not sys.platform.startswith("linux"):
        return f"--sandbox needs Linux (bubblewrap and namespaces); this is {sys.platform}"
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return ("--sandbox needs bubblewrap, which is not installed: `sudo apt-get install bubblewrap` "
                "(Debian/Ubuntu), `sudo dnf install bubblewrap` (Fedora)")
    try:
        probe = subprocess.run([bwrap, *base_arguments(), "--", "/bin/true" if os.path.exists("/bin/true")
                                else "/usr/bin/true"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"--sandbox could not start bubblewrap: {e}"
    if probe.returncode != 0:
        why = " ".join(probe.stderr.split())[:300]
        return (f"--sandbox: bubblewrap cannot create namespaces here ({why}); allow unprivileged user "
                "namespaces (`sudo sysctl kernel.unprivileged_userns_clone=1`, or on Ubuntu 24.04+ "
                "`sudo sysctl kernel.apparmor_restrict_unprivileged_userns=0`), or grade on a machine that does")
    return None


def available():
    return problem() is None


def require():
    why = problem()
    if why is not None:
        raise SandboxUnavailable(why)


def base_arguments():
    """Namespaces, capabilities and the system directories every sandbox has."""
    args = ["--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
            "--uid", "65534", "--gid", "65534", "--ro-bind", "/usr", "/usr",
            "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    for top in ("bin", "lib", "lib32", "lib64", "sbin"):
        path = Path("/") / top
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    for name in ("ld.so.cache", "localtime", "nsswitch.conf", "passwd", "group"):
        if Path("/etc", name).exists():
            args += ["--ro-bind", f"/etc/{name}", f"/etc/{name}"]
    return args


def _python_roots():
    """The directories Python and the installed packages live in (the venv, the base install)."""
    roots = {Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve(), Path(sys.executable).resolve().parents[1]}
    for entry in sys.path:
        if entry and "site-packages" in entry:
            roots.add(Path(entry).resolve())
    return _outermost(roots)


def _outermost(paths):
    paths = sorted({Path(p) for p in paths}, key=lambda p: len(p.parts))
    kept = []
    for p in paths:
        if not any(k == p or k in p.parents for k in kept):
            kept.append(p)
    return kept


class Sandbox:
    """The bubblewrap command for one worker. ``shadows`` is ``{module: (original, shadow)}``."""

    level = LEVEL

    def __init__(self, shadows=None, files=()):
        require()
        self.shadows, self.files = shadows or {}, list(files)

    @staticmethod
    def exchange_path():
        """Where the worker sees the judge's exchange folder (``home/exchange`` of its work folder)."""
        return f"{HOME}/exchange"

    def student_path(self, path):
        return f"{SUBMISSION}/{Path(path).name}"

    def wrap(self, command, worker):
        """``command`` run inside the sandbox, as seen from ``worker``'s files; returns (command)."""
        library = Path(mlsec_lessons.__file__).resolve().parent
        home = worker.workdir / "home"
        home.mkdir(parents=True, exist_ok=True)
        os.chmod(home, 0o777)  # nobody, inside, must be able to write there
        args = ["bwrap", *base_arguments()]
        for root in _python_roots():
            if root != library and library not in root.parents:
                args += ["--ro-bind", str(root), str(root)]
        args += ["--ro-bind", str(library), str(library),
                 "--tmpfs", str(library / "grading" / "checks")]  # the checks stay the judge's
        for original, shadow in self.shadows.values():
            args += ["--ro-bind", str(shadow), str(Path(original).resolve())]
        for path in self.files:  # course files a check needs the student's code to see (SANDBOX_FILES)
            args += ["--ro-bind", path, path]
        args += ["--ro-bind", str(worker.path), self.student_path(worker.path),
                 "--bind", str(home), HOME, "--chdir", HOME]
        env = worker.env
        args += ["--setenv", "HOME", HOME, "--setenv", "TMPDIR", "/tmp"]
        for key in ("MLSEC_CACHE_DIR", "KERAS_HOME", "MPLCONFIGDIR"):
            if key in env:
                args += ["--setenv", key, env[key].replace(str(home), HOME)]
        return [*args, "--", *command]

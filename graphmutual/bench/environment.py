"""Hardware and software description written next to every table.

The one place that captures the machine a number was measured on: ``graphmutual bench``,
``benchmarks/tools/merge_reports.py`` and every script under ``benchmarks/`` (speed, checks,
recsys) call :func:`environment` (a dict for the JSON) and :func:`report_header` /
:func:`environment_markdown` (the markdown), never ``lscpu`` themselves.
"""
from __future__ import annotations

import os
import platform
import shlex
import subprocess
import sys
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional


def cpu_model() -> str:
    """``lscpu``'s model name (falls back to /proc/cpuinfo, then ``platform.processor``)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load_average() -> str:
    """The 1/5/15-minute load average as ``"0.52 0.60 0.71"`` (``"n/a"`` where unknown)."""
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except (AttributeError, OSError):
        return "n/a"


def environment(extra: Optional[Dict[str, Any]] = None) -> Dict[str, str]:
    """CPU model and core count, load, torch threads, GPU, Python/torch/PyG/ogb versions,
    UTC time and the harness's git commit; ``extra`` entries (e.g. a kernel backend) are
    appended as strings."""
    import torch
    import torch_geometric

    info = {
        "cpu": cpu_model(),
        "cores": str(os.cpu_count()),
        "load average (1/5/15 min, at report time)": load_average(),
        "torch threads": str(torch.get_num_threads()),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_geometric": torch_geometric.__version__,
        "os": platform.platform(),
        "date (UTC)": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M"),
    }
    try:
        import ogb

        info["ogb"] = ogb.__version__
    except ImportError:
        pass
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10)
        if out.returncode == 0:
            info["git commit (harness)"] = out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    info.update({k: str(v) for k, v in (extra or {}).items()})
    return info


def command_line(argv: Optional[List[str]] = None) -> str:
    """The command as typed, for the report header.

    ``graphmutual bench ...`` stays as is; ``python -m graphmutual bench ...`` stays
    ``python -m graphmutual bench ...``; ``python -m graphmutual.bench.cli ...`` is shown as
    ``graphmutual bench ...``; a script is shown as ``python <script> ...`` (relative to the
    working directory).
    """
    argv = sys.argv if argv is None else argv
    first = argv[0] if argv else "graphmutual"
    base = os.path.basename(first)
    if base == "cli.py" and "bench" in first:
        prog = "graphmutual bench"
    elif base == "__main__.py" and os.path.basename(os.path.dirname(first)) == "graphmutual":
        prog = "python -m graphmutual"
    elif base.endswith(".py"):
        prog = f"python {os.path.relpath(first) if os.path.isabs(first) else first}"
    else:
        prog = base
    return " ".join([prog] + [shlex.quote(a) for a in argv[1:]])


def environment_markdown(info: Dict[str, str]) -> str:
    """``info`` as a markdown list, one ``- **key**: value`` line per entry."""
    return "\n".join(f"- **{k}**: {v}" for k, v in info.items())


def report_header(title: str, info: Dict[str, str], notes: str = "",
                  load_at_start: Optional[str] = None) -> str:
    """The top of a result file: title, the command, ``notes``, hardware and software.

    ``load_at_start`` (from :func:`load_average` before the measurement) is printed next to
    the load at report time, so a reader sees whether other jobs shared the CPU.
    """
    parts = [f"# {title}", "", "Command:", "", "```", command_line(), "```", ""]
    if notes:
        parts += [notes.strip(), ""]
    if load_at_start is not None:
        parts += [f"Load average (1/5/15 min) at the start {load_at_start}, at the end "
                  f"{load_average()} (timings on a shared machine are upper bounds).", ""]
    parts += ["Hardware and software:", "", environment_markdown(info), ""]
    return "\n".join(parts)

"""Hardware and software description written next to every table."""
from __future__ import annotations

import os
import platform
import shlex
import subprocess
import sys
from datetime import datetime, timezone
from typing import Dict, List, Optional


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


def environment() -> Dict[str, str]:
    """CPU model and core count, load, GPU, Python/torch/PyG/ogb versions, UTC time."""
    import torch
    import torch_geometric

    info = {
        "cpu": cpu_model(),
        "cores": str(os.cpu_count()),
        "load average (1/5/15 min, at report time)": (
            " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg")
            else "n/a"),
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
    return info


def command_line(argv: Optional[List[str]] = None) -> str:
    """The command as typed, for the report header.

    ``graphmutual bench ...`` stays as is; ``python -m graphmutual.bench.cli ...`` is shown as
    ``graphmutual bench ...``; a script is shown as ``python <script> ...``.
    """
    argv = sys.argv if argv is None else argv
    first = argv[0] if argv else "graphmutual"
    base = os.path.basename(first)
    if base == "cli.py" and "bench" in first:
        prog = "graphmutual bench"
    elif base.endswith(".py"):
        prog = f"python {os.path.relpath(first) if os.path.isabs(first) else first}"
    else:
        prog = base
    return " ".join([prog] + [shlex.quote(a) for a in argv[1:]])


def environment_markdown(info: Dict[str, str]) -> str:
    return "\n".join(f"- **{k}**: {v}" for k, v in info.items())

"""The kernel's environment: Python, platform, hardware, installed distributions, ML libraries."""

from __future__ import annotations

import logging
import os
import platform
import socket
import sys
import threading
from collections.abc import Mapping
from functools import lru_cache
from types import ModuleType

from nbtrack.capture.redact import redact_env

_log = logging.getLogger(__name__)

# Import name -> param prefix. Only libraries the kernel has actually imported are recorded:
# a version of something the code never used is noise in a comparison.
ML_LIBRARIES = {
    "numpy": "numpy",
    "pandas": "pandas",
    "scipy": "scipy",
    "sklearn": "sklearn",
    "torch": "torch",
    "torchvision": "torchvision",
    "torchaudio": "torchaudio",
    "lightning": "lightning",
    "pytorch_lightning": "pytorch_lightning",
    "tensorflow": "tensorflow",
    "keras": "keras",
    "jax": "jax",
    "flax": "flax",
    "xgboost": "xgboost",
    "lightgbm": "lightgbm",
    "catboost": "catboost",
    "transformers": "transformers",
    "datasets": "datasets",
    "statsmodels": "statsmodels",
    "polars": "polars",
    "mlflow": "mlflow",
}


def python_version() -> str:
    return platform.python_version()


def library_versions(modules: Mapping[str, ModuleType] | None = None) -> dict[str, str]:
    """``{"<lib>_version": version}`` for the ML libraries imported in this process."""
    mods = sys.modules if modules is None else modules
    out = {}
    for name, prefix in ML_LIBRARIES.items():
        mod = mods.get(name)
        version = getattr(mod, "__version__", None) if mod is not None else None
        if isinstance(version, str):
            out[f"{prefix}_version"] = version
    return out


@lru_cache(maxsize=1)
def installed_distributions() -> str:
    """requirements.txt lines (``name==version``) for every distribution the kernel can import.

    Walking site-packages costs ~150 ms, so it is computed once per kernel (``prefetch`` starts it
    in the background when the extension loads) and cached: a ``pip install`` in a running kernel
    is not seen until the kernel restarts, which is also when the new version is actually used.
    """
    from importlib import metadata

    seen: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"] if dist.metadata else None
        if name and name.lower() not in seen:
            seen[name.lower()] = f"{name}=={dist.version}"
    return "".join(line + "\n" for _, line in sorted(seen.items()))


_prefetch_lock = threading.Lock()
_prefetched = False


def prefetch() -> None:
    """Warm the distribution cache in a daemon thread so the first tracked cell does not wait."""
    global _prefetched
    with _prefetch_lock:
        if _prefetched:
            return
        _prefetched = True
    threading.Thread(target=installed_distributions, name="nbtrack-env", daemon=True).start()


def _gpus(modules: Mapping[str, ModuleType]) -> list[str]:
    # Only asked of torch when the kernel already imported it: importing torch costs seconds.
    torch = modules.get("torch")
    try:
        if torch is not None and torch.cuda.is_available():
            return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except Exception:  # a broken CUDA setup: the record says no GPU rather than failing
        _log.debug("asking torch for its GPUs failed", exc_info=True)
    return []


def environment_info(
    environ: Mapping[str, str] | None = None, modules: Mapping[str, ModuleType] | None = None
) -> dict:
    """What ``nbtrack/environment.json`` holds; environment variables are redacted."""
    env = os.environ if environ is None else environ
    mods = sys.modules if modules is None else modules
    torch = mods.get("torch")
    deterministic = None
    if torch is not None:
        try:
            deterministic = {
                "deterministic_algorithms": bool(torch.are_deterministic_algorithms_enabled()),
                "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
                "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
            }
        except Exception:  # an older torch without these switches
            _log.debug("reading torch's determinism switches failed", exc_info=True)
            deterministic = None
    return {
        "python": sys.version,
        "python_version": python_version(),
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
        "platform": platform.platform(),
        "system": platform.system(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "hostname": socket.gethostname(),
        "cpu_count": os.cpu_count(),
        "gpus": _gpus(mods),
        "torch_determinism": deterministic,
        "pythonhashseed": env.get("PYTHONHASHSEED"),
        "libraries": library_versions(mods),
        "env": dict(sorted(redact_env(env).items())),
    }

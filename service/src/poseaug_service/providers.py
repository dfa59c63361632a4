"""Where the sessions run: the execution providers to ask ONNX Runtime for, and the CPU threads.

`auto` asks for CUDA when this onnxruntime build has it and an NVIDIA device is present; the
session then reports what it really runs on (`get_providers()`), because ORT silently falls
back to CPU when CUDA libraries are missing (see sessions.open_session).
"""

from __future__ import annotations

import logging
import os

import onnxruntime as ort

from poseaug_service.bundle import BundleError
from poseaug_service.config import ServerConfig

log = logging.getLogger(__name__)

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"


def _nvidia_device_present() -> bool:
    return os.path.exists("/dev/nvidiactl") or os.path.exists("/dev/dxg")


_preloaded = False


def _preload_cuda_libraries() -> None:
    """Load CUDA/cuDNN from the nvidia-* pip wheels when they are installed (the GPU image's
    way of shipping them, see Dockerfile); a system CUDA on the loader path works without."""
    global _preloaded
    if _preloaded or not hasattr(ort, "preload_dlls"):
        return
    _preloaded = True
    try:
        ort.preload_dlls(directory="")
    except Exception as exc:  # a missing library surfaces again when the session loads
        log.warning("preloading CUDA libraries from nvidia wheels failed: %s", exc)


def requested_providers(mode: str) -> list[str]:
    """The provider list to ask ORT for under `--providers`."""
    if mode == "cpu":
        return [CPU]
    has_cuda = CUDA in ort.get_available_providers()
    if mode == "cuda":
        if not has_cuda:
            raise BundleError("--providers cuda: this onnxruntime build has no CUDA provider")
        _preload_cuda_libraries()
        return [CUDA, CPU]
    if has_cuda and _nvidia_device_present():
        _preload_cuda_libraries()
        return [CUDA, CPU]
    return [CPU]


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask, e.g. a container's cpuset)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def busy_intra_op_threads(config: ServerConfig) -> int:
    """Intra-op threads of the lifter runs made while other calls are in flight: by default
    all cores but one, which the event loop needs to answer those calls."""
    if config.busy_intra_op_threads:
        return config.busy_intra_op_threads
    return max(1, available_cores() - 1)

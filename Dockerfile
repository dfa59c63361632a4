# syntax=docker/dockerfile:1
# PoseAug serving image: poseaug-serve, the poseaug client/CLI and the model bundles of models/.
#
#   docker build --target gpu -t poseaug:gpu .    # default target: ONNX Runtime CUDA 13 + cuDNN 9
#   docker build --target cpu -t poseaug:cpu .    # ONNX Runtime CPU build, same recipe otherwise
#   docker run --rm --gpus all -p 50051:50051 -p 9464:9464 poseaug:gpu
#
# CUDA/cuDNN come as NVIDIA's pip wheels (nvidia-cuda-runtime, nvidia-cublas, nvidia-cudnn-cu13,
# ...), pinned in deploy/requirements-gpu.txt, on the same python:3.11-slim base as the CPU
# target, instead of an nvidia/cuda:*-cudnn-runtime base image, because: the wheels are exactly
# the libraries onnxruntime-gpu declares in its [cuda,cudnn] extras, locked in one file with
# the Python dependencies (tests/deploy checks the pins); both targets share one recipe and the
# project's Python 3.11 (the CUDA images bring the distribution's Python); and none of the CUDA
# toolkit that ONNX Runtime never loads is shipped. The NVIDIA driver (>= 580 for CUDA 13)
# comes from the host through the NVIDIA Container Toolkit / the Kubernetes device plugin, as
# with any CUDA image.
#
# Never in the image: torch, training code, Human3.6M or any other data set. .dockerignore
# admits only the two packages, models/ and the requirement files.
# tests/deploy/test_image_recipe.py replays the `cpu` target's pip commands in a fresh venv
# and runs ENTRYPOINT + CMD and the HEALTHCHECK command against it: keep them plain.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- build: one virtual environment per target, copied whole into the runtime stage ----
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
WORKDIR /src

FROM build AS build-cpu
COPY deploy/requirements-cpu.txt deploy/
RUN /opt/venv/bin/pip install --no-cache-dir -r deploy/requirements-cpu.txt
COPY clients/python clients/python
COPY service service
RUN /opt/venv/bin/pip install --no-cache-dir --no-deps ./clients/python ./service

FROM build AS build-gpu
COPY deploy/requirements-gpu.txt deploy/
RUN /opt/venv/bin/pip install --no-cache-dir -r deploy/requirements-gpu.txt
COPY clients/python clients/python
COPY service service
RUN /opt/venv/bin/pip install --no-cache-dir --no-deps ./clients/python ./service

# ---- runtime: no compiler, no pip cache, a non-root user, read-only models ----
FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
RUN groupadd --system --gid 10001 poseaug \
    && useradd --system --uid 10001 --gid poseaug --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin poseaug
WORKDIR /opt/poseaug
# Owned by root: the server only reads bundles. Mount a volume here for hot reload.
COPY models models
# 50051 gRPC (TLS when --tls-cert is given), 50052 plaintext grpc.health.v1 only (probes),
# 9464 Prometheus /metrics.
EXPOSE 50051 50052 9464
# Numeric, so Kubernetes' runAsNonRoot can verify it.
USER 10001:10001
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["poseaug", "health", "--server", "127.0.0.1:50052", "--timeout", "3", "--attempts", "1"]
ENTRYPOINT ["poseaug-serve"]
CMD ["--models", "/opt/poseaug/models", "--host", "0.0.0.0", "--port", "50051", "--health-port", "50052", "--metrics-port", "9464", "--metrics-host", "0.0.0.0", "--reload-interval-s", "30"]

FROM runtime AS cpu
COPY --from=build-cpu /opt/venv /opt/venv

# The default target (last stage).
FROM runtime AS gpu
ENV NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    LD_LIBRARY_PATH=/opt/venv/lib/python3.11/site-packages/nvidia/cu13/lib:/opt/venv/lib/python3.11/site-packages/nvidia/cudnn/lib
COPY --from=build-gpu /opt/venv /opt/venv

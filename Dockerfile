# The streamer worker image. Two targets, each in layers that change at different rates
# (base, torch, other dependencies, streamer's own code):
#
#   podman build --target cpu -t streamer:0.8.0 .       torch's CPU wheels (PyTorch's CPU index)
#   podman build --target gpu -t streamer:0.8.0-gpu .   torch's CUDA wheels (PyPI's default build)
#
# Build arguments: BASE, any Debian-like image with python3 (3.11+) and its venv module;
# TORCH_INDEX_URL, where torch and torchvision come from ("" = pip's own index); PIP_CERT,
# PIP_INDEX_URL, PIP_EXTRA_INDEX_URL, PIP_FIND_LINKS for a private mirror. The image holds no test tools, no
# embedded stack (milvus-lite, the Tansu broker) and no charts.
#
# At run time: user streamer (10001:10001); the root filesystem may be read-only; writable
# /var/lib/streamer (state: faust's data), /var/cache/streamer (calibration, model caches) and
# /tmp. Mount media read-only at /media.
ARG BASE=python:3.11-slim-bookworm

FROM ${BASE} AS base
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/streamer/bin:$PATH \
    HOME=/home/streamer \
    XDG_CACHE_HOME=/var/cache/streamer \
    HF_HOME=/var/cache/streamer/huggingface \
    TORCH_HOME=/var/cache/streamer/torch \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    STREAMER_STACK_STATE_DIR=/var/lib/streamer \
    STREAMER_BATCH_CALIBRATION_CACHE=/var/cache/streamer/calibration.json \
    STREAMER_FETCH_MEDIA_ROOTS=/media
RUN groupadd --system --gid 10001 streamer \
 && useradd --system --uid 10001 --gid 10001 --create-home --home-dir /home/streamer \
      --shell /usr/sbin/nologin streamer \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/streamer /var/cache/streamer /media \
 && python3 -m venv /opt/streamer
COPY pyproject.toml deploy/install.py deploy/constraints.txt /build/
EXPOSE 9400
VOLUME ["/var/lib/streamer", "/var/cache/streamer"]
ENTRYPOINT ["streamer"]
CMD ["worker"]

FROM base AS torch-gpu
ARG TORCH_INDEX_URL=""
ARG PIP_CERT
ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL
ARG PIP_FIND_LINKS
RUN /opt/streamer/bin/python /build/install.py torch "$TORCH_INDEX_URL" \
 && /opt/streamer/bin/python /build/install.py deps

FROM base AS torch-cpu
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG PIP_CERT
ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL
ARG PIP_FIND_LINKS
RUN /opt/streamer/bin/python /build/install.py torch "$TORCH_INDEX_URL" \
 && /opt/streamer/bin/python /build/install.py deps

FROM torch-gpu AS gpu
COPY . /build/src
RUN /opt/streamer/bin/python /build/install.py app /build/src && rm -rf /build/src
USER 10001:10001

# the default target comes last
FROM torch-cpu AS cpu
COPY . /build/src
RUN /opt/streamer/bin/python /build/install.py app /build/src && rm -rf /build/src
USER 10001:10001

# The streamer worker image (CPU; the GPU profile in docker-compose.yml reserves a device).
FROM python:3.11-slim-bookworm
ENV PIP_NO_CACHE_DIR=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY streamer ./streamer
COPY operators ./operators
COPY topologies ./topologies
RUN pip install "torch==2.14.1" "torchvision==0.29.1" && pip install .
USER 1000:1000
ENTRYPOINT ["streamer"]
CMD ["worker"]

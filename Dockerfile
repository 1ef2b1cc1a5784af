# syntax=docker/dockerfile:1
# The cachewarm image: Celery worker, beat and Flower, and the `cachewarm` CLI.
# Used by docker-compose.yml (build: .) and by the CDK app (infra/, a DockerImageAsset of this
# directory). The default command runs a worker; compose and ECS pass the others:
#   celery -A workers worker --loglevel=INFO
#   celery -A workers beat --loglevel=INFO
#   celery -A workers flower --address=0.0.0.0      (its config comes from the installed workers/flowerconfig.py)
#   cachewarm table create | cachewarm load FILE | cachewarm generate -o FILE ...
# Health checks: `python -m workers.health worker|beat|flower`, given per container by the ECS task definitions
# and docker-compose.yml. The image declares no HEALTHCHECK: ECS ignores one, and no single check fits every
# command this image runs (a one-off `cachewarm load` has nothing to check).
# tests/integration/test_image_commands.py runs every one of these commands from an installed wheel.
ARG PYTHON_VERSION=3.12

FROM python:${PYTHON_VERSION}-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Dependencies first, from pyproject.toml alone, so code changes do not reinstall them. The image
# gets the four runtime layers (core, loaders, workers, the shell for one-off `cachewarm` tasks) and
# the `cli` extra; never the dev stack (devstack/), the demo's plotting or the tests.
# constraints.txt: the versions the tests ran on (make setup installs with it too).
COPY pyproject.toml README.md constraints.txt ./
RUN mkdir cachewarm workers loaders cachewarm_cli \
 && touch cachewarm/__init__.py workers/__init__.py loaders/__init__.py cachewarm_cli/__init__.py \
 && pip install -c constraints.txt '.[cli]' \
 && pip uninstall --yes cachewarm \
 && rm -rf cachewarm workers loaders cachewarm_cli build
COPY cachewarm ./cachewarm
COPY workers ./workers
COPY loaders ./loaders
COPY cachewarm_cli ./cachewarm_cli
RUN pip install --no-deps . && rm -rf build

FROM python:${PYTHON_VERSION}-slim
LABEL org.opencontainers.image.title="cachewarm" \
      org.opencontainers.image.description="Celery workers warming a Redis cache in front of DynamoDB"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN useradd --system --uid 10001 --create-home --home-dir /app cachewarm
COPY --from=build /opt/venv /opt/venv
COPY --chmod=0755 infra/docker/entrypoint.sh /usr/local/bin/cachewarm-entrypoint
WORKDIR /app
# Celery refuses to run a worker as root with pickle and warns otherwise; nothing here needs root.
USER 10001
EXPOSE 5555
ENTRYPOINT ["cachewarm-entrypoint"]
CMD ["celery", "-A", "workers", "worker", "--loglevel=INFO"]

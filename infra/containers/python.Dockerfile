# Every Python deployable of the repo (gateway, discovery, the services): one image recipe, the project chosen by
# build arguments. Build context is the repo root:
#   docker build -f infra/containers/python.Dockerfile --build-arg PROJECT=services/order-service \
#     --build-arg MODULE=order_service -t kafka-sync/order-service .
# Debian's python3 with the third-party packages of requirements.lock (each checked against its hashes) and then
# the repo's own projects without resolving anything again: what infra/install.sh puts into .venv natively.
# Everything up to the project's own files is the same for every project, so the images share those layers.
# The last stage is the service image; `--target stack-tools` gives the image with every project and the tests.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE} AS dependencies

RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv tini \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --no-create-home --uid 10001 app
# The first process of a container gets no default signal actions: Python would ignore the engine's SIGTERM and
# be killed 10 s later. tini is that first process and passes the signal on to Python, which then stops as natively.
# Then with-secrets (copied below) exports the component's secret files (docker-compose.yml's secret volumes) as
# variables.
ENTRYPOINT ["/usr/bin/tini", "--", "with-secrets"]
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH

# A build behind a TLS-inspecting proxy mounts its CA bundle at /run/host-ca.crt for the build only
# (make compose-up does: podman build -v "$SSL_CERT_FILE":/run/host-ca.crt:ro); it is never part of an image.
COPY requirements.lock /opt/requirements.lock
RUN if [ -f /run/host-ca.crt ]; then export PIP_CERT=/run/host-ca.crt; fi \
    && python3 -m venv /opt/venv \
    && pip install --require-hashes -r /opt/requirements.lock

WORKDIR /app
# The shared projects: the libraries, and the consistency auditor (the monitor runs it; `make audit` natively).
COPY libs libs
COPY audit audit
RUN if [ -f /run/host-ca.crt ]; then export PIP_CERT=/run/host-ca.crt; fi \
    && pip install --no-deps ./libs/*/ ./audit
COPY infra/containers/bin/load-secrets infra/containers/bin/with-secrets infra/containers/bin/retry /usr/local/bin/

# Every project and the tests, as in the native .venv: compose's create-topics and register-connectors one-shots run
# the stack description's code in it, and make compose-test the e2e suite on the compose network, where the instances' registered addresses
# (container names) resolve.
FROM dependencies AS stack-tools
COPY pyproject.toml .env.example ./
COPY services services
COPY discovery discovery
COPY gateway gateway
COPY monitor monitor
COPY infra/pyproject.toml infra/
COPY infra/launcher infra/launcher
COPY infra/stack_description infra/stack_description
COPY infra/containers/compose_secrets.py infra/containers/register_connectors.py infra/containers/
# The connector configs, which compose's register-connectors one-shot renders with the launcher's code.
COPY infra/connect/*.json infra/connect/
COPY demo demo
COPY tests tests
RUN if [ -f /run/host-ca.crt ]; then export PIP_CERT=/run/host-ca.crt; fi \
    && for project in services/*/ discovery/ gateway/ monitor/ infra/; do \
         [ ! -f "$project/pyproject.toml" ] || set -- "$@" -e "./$project"; \
       done \
    && pip install --no-deps "$@"
# The mount points of the secret volumes the `secrets` one-shot writes (one per component), owned by app and the
# secrets group: a new volume takes its mount point's owner and mode, so the one-shot needs no root. (`-m infra.…`
# from /app, the working directory, as docker-compose.yml's `secrets` runs it.)
RUN python -m infra.containers.compose_secrets --mount-points /secrets
USER app
CMD ["python", "-m", "pytest", "-p", "no:cacheprovider", "tests/e2e"]

FROM dependencies AS service
# PROJECT is the folder (services/order-service, gateway, ...), MODULE the package `python -m` runs.
ARG PROJECT
ARG MODULE
COPY ${PROJECT} ${PROJECT}
# Editable, so files kept beside the package (alembic.ini, migrations, gateway/routes.yaml) are where the code
# looks for them, relative to /app.
RUN if [ -f /run/host-ca.crt ]; then export PIP_CERT=/run/host-ca.crt; fi \
    && pip install --no-deps -e "./${PROJECT}"
# user-service's signing-key volume takes this directory's owner and mode when first mounted (0700, app).
RUN install -d -o app -g app -m 0700 /var/lib/kafka-sync/user-service

USER app
ENV APP_MODULE=${MODULE}
CMD ["/bin/sh", "-c", "exec python -m \"$APP_MODULE\""]

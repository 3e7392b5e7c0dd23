# Prometheus from Debian's `prometheus` package (what make up runs), with the native stack's configuration
# template and rules (infra/prometheus/). Build context is the repo root:
#   docker build -f infra/containers/prometheus.Dockerfile -t kafka-sync/prometheus .
# start-prometheus renders the template with the containers' addresses when the container starts.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}

# The package's maintainer script would start its service: policy-rc.d says no (as in Docker's Debian images).
RUN printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d \
    && apt-get update \
    && apt-get install -y --no-install-recommends prometheus \
    && rm -rf /var/lib/apt/lists/* /usr/sbin/policy-rc.d \
    && mkdir -p /var/lib/kafka-sync/prometheus && chown prometheus /var/lib/kafka-sync/prometheus

COPY infra/containers/bin/render-template infra/containers/bin/start-prometheus /usr/local/bin/
COPY infra/prometheus/prometheus.yml /etc/kafka-sync/prometheus.yml.template
COPY infra/prometheus/rules.yml /etc/kafka-sync/rules.yml

USER prometheus
EXPOSE 9090
CMD ["start-prometheus"]

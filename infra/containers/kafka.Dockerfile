# Apache Kafka (broker and KRaft controller), Kafka Connect and Kafka's tools in one image, from the jars and
# plugins infra/pom.xml fetched for the native stack (infra/install.sh leaves them in infra/target; make compose-up
# runs it first), on Debian's Java 17. Build context is the repo root:
#   docker build -f infra/containers/kafka.Dockerfile -t kafka-sync/kafka .
# Compose runs it as the broker (start-broker), the worker (start-worker) and the one-shot setup steps.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}

# Java's package links its man pages, whose folder a slim base lacks.
RUN mkdir -p /usr/share/man/man1 \
    && apt-get update \
    && apt-get install -y --no-install-recommends openjdk-17-jre-headless curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --no-create-home --uid 10001 kafka \
    && mkdir -p /var/lib/kafka-sync/kafka && chown kafka /var/lib/kafka-sync/kafka

COPY infra/target/kafka/lib /opt/kafka/lib
# Every plugin folder (one class loader each), whatever infra/pom.xml adds.
COPY infra/target/connect-plugins /opt/connect/plugins
# The Prometheus JMX exporter agent and the beans it reads (launcher.environment.metrics_agent natively).
COPY infra/target/agents/jmx_prometheus_javaagent.jar /opt/agents/
COPY infra/prometheus/jmx-kafka.yml infra/prometheus/jmx-connect.yml /opt/agents/
COPY infra/containers/bin/render-template infra/containers/bin/kafka-tool infra/containers/bin/write-admin-config \
     infra/containers/bin/start-broker infra/containers/bin/start-worker infra/containers/bin/register-connectors \
     infra/containers/bin/connect-watchdog /usr/local/bin/
COPY infra/kafka/server.properties infra/kafka/log4j2.properties infra/kafka/acls.txt /opt/kafka/config/
COPY infra/connect/worker.properties /opt/connect/config/
# Every connector config (the file name is the connector's name); register-connectors PUTs each.
COPY infra/connect/*.json /opt/connect/connectors/

USER kafka
EXPOSE 9092 8083 9404 9405
CMD ["start-worker"]

# The Java images, on Debian's Java 17, from the jars infra/pom.xml fetched for the native stack (infra/install.sh
# leaves them in infra/target; make compose-up runs it first). Build context is the repo root:
#   docker build -f infra/containers/kafka.Dockerfile -t kafka-sync/kafka .
#   docker build -f infra/containers/kafka.Dockerfile --target zipkin -t kafka-sync/zipkin .
# The last stage (the default) is Apache Kafka (broker and KRaft controller), Kafka Connect and Kafka's tools in one
# image: compose runs it as the brokers (start-broker), the workers (start-worker) and the one-shot setup steps.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE} AS java

# Java's package links its man pages, whose folder a slim base lacks.
RUN mkdir -p /usr/share/man/man1 \
    && apt-get update \
    && apt-get install -y --no-install-recommends openjdk-17-jre-headless curl \
    && rm -rf /var/lib/apt/lists/*

# Zipkin's server (io.zipkin:zipkin-server exec jar), keeping spans in memory, as launcher/zipkin.py runs it.
FROM java AS zipkin
RUN useradd --system --no-create-home --uid 10002 zipkin
COPY infra/target/zipkin/zipkin.jar /opt/zipkin/zipkin.jar
USER zipkin
EXPOSE 9411
# 50,000 spans in a 256 MB heap (launcher.zipkin.MAX_SPANS: Zipkin's default needs more heap than the JVM gets).
CMD ["java", "-Xms64m", "-Xmx256m", "-jar", "/opt/zipkin/zipkin.jar", "--armeria.ports[0].port=9411", \
     "--armeria.ports[0].protocols[0]=http", "--zipkin.storage.type=mem", "--zipkin.storage.mem.max-spans=50000"]

FROM java AS kafka
RUN useradd --system --no-create-home --uid 10001 kafka \
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

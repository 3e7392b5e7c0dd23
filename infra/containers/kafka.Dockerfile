# The Java images, on Debian's Java 17, with the jars infra/pom.xml lists, fetched by Maven in this build's first
# stage: nothing from the host's infra/target, so `docker compose up` works on a bare clone. Build context is the
# repo root:
#   docker build -f infra/containers/kafka.Dockerfile -t kafka-sync/kafka .
#   docker build -f infra/containers/kafka.Dockerfile --target zipkin -t kafka-sync/zipkin .
# The last stage (the default) is Apache Kafka (broker and KRaft controller), Kafka Connect and Kafka's tools in one
# image: compose runs it as the brokers (start-broker), the workers (start-worker) and the one-shot setup steps.
ARG BASE_IMAGE=debian:bookworm-slim

# Debian's Maven and JDK run infra/pom.xml as infra/install.sh does natively (`mvn package`): target/kafka/lib,
# target/connect-plugins, target/agents and target/zipkin. Only pom.xml and src/ are copied, so this stage is rebuilt
# only when they change; Maven's downloads are kept in a build cache between builds.
FROM ${BASE_IMAGE} AS jars
# Behind a TLS-inspecting proxy the build mounts the host's CA bundle at /run/host-ca.crt (make compose-up does):
# its certificates are added to the system store, and from it to Java's, before the JDK's package is configured.
RUN mkdir -p /usr/share/man/man1 /usr/local/share/ca-certificates/host \
    && if [ -f /run/host-ca.crt ]; then \
         awk '/BEGIN CERTIFICATE/ { n++ } n { print > sprintf("/usr/local/share/ca-certificates/host/%03d.crt", n) }' \
           /run/host-ca.crt; \
       fi \
    && apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates openjdk-17-jdk-headless maven \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /build
COPY infra/pom.xml pom.xml
COPY infra/src src
RUN --mount=type=cache,target=/root/.m2/repository mvn -B -q package

FROM ${BASE_IMAGE} AS java
# Java's package links its man pages, whose folder a slim base lacks.
RUN mkdir -p /usr/share/man/man1 \
    && apt-get update \
    && apt-get install -y --no-install-recommends openjdk-17-jre-headless curl \
    && rm -rf /var/lib/apt/lists/*

# Zipkin's server (io.zipkin:zipkin-server exec jar), keeping spans in memory, as launcher/zipkin.py runs it.
FROM java AS zipkin
RUN useradd --system --no-create-home --uid 10002 zipkin
COPY --from=jars /build/target/zipkin/zipkin.jar /opt/zipkin/zipkin.jar
USER zipkin
EXPOSE 9411
# 50,000 spans in a 256 MB heap (launcher.zipkin.MAX_SPANS: Zipkin's default needs more heap than the JVM gets).
# Traces readable cross-origin by the console's page on its published port only (launcher.zipkin.console_origins).
CMD ["java", "-Xms64m", "-Xmx256m", "-jar", "/opt/zipkin/zipkin.jar", "--armeria.ports[0].port=9411", \
     "--armeria.ports[0].protocols[0]=http", "--zipkin.storage.type=mem", "--zipkin.storage.mem.max-spans=50000", \
     "--zipkin.query.allowed-origins=http://127.0.0.1:8090,http://localhost:8090"]

FROM java AS kafka
RUN useradd --system --no-create-home --uid 10001 kafka \
    && mkdir -p /var/lib/kafka-sync/kafka && chown kafka /var/lib/kafka-sync/kafka

COPY --from=jars /build/target/kafka/lib /opt/kafka/lib
# Every plugin folder (one class loader each), whatever infra/pom.xml adds.
COPY --from=jars /build/target/connect-plugins /opt/connect/plugins
# The Prometheus JMX exporter agent and the beans it reads (natively from infra/target/agents and infra/prometheus).
COPY --from=jars /build/target/agents/jmx_prometheus_javaagent.jar /opt/agents/
COPY infra/prometheus/jmx-kafka.yml infra/prometheus/jmx-connect.yml /opt/agents/
COPY infra/containers/bin/render-template infra/containers/bin/kafka-tool infra/containers/bin/write-admin-config \
     infra/containers/bin/start-broker infra/containers/bin/start-worker \
     infra/containers/bin/load-secrets infra/containers/bin/with-secrets infra/containers/bin/retry \
     /usr/local/bin/
COPY infra/kafka/server.properties infra/kafka/log4j2.properties infra/kafka/acls.txt /opt/kafka/config/
COPY infra/connect/worker.properties /opt/connect/config/

USER kafka
EXPOSE 9092 8083 9404 9405
# The component's secret files (docker-compose.yml's secret volumes) as variables, then the command.
ENTRYPOINT ["with-secrets"]
CMD ["start-worker"]

# MariaDB from Debian's mariadb-server (the package the native stack runs) with infra/mariadb/my.cnf, rendered
# as the launcher renders it, then told what differs in a container. Build context is the repo root:
#   docker build -f infra/containers/mariadb.Dockerfile -t kafka-sync/mariadb .
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}

RUN apt-get update \
    && apt-get install -y --no-install-recommends mariadb-server mariadb-client \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /var/lib/kafka-sync/mariadb && chown mysql:mysql /var/lib/kafka-sync/mariadb

COPY infra/containers/bin/render-template infra/containers/bin/start-mariadb infra/containers/bin/load-secrets \
     infra/containers/bin/with-secrets /usr/local/bin/
COPY infra/mariadb/my.cnf /etc/mysql/kafka-sync.cnf.template
# Later keys win: listen on the container's network (compose publishes the port on the host's loopback only), and
# log to stderr (the engine keeps the log) instead of a file. The client tools find the server's socket.
# The binlog carries this database alone (binlog_do_db): another CATALOG_DB needs --build-arg CATALOG_DB=...
ARG CATALOG_DB=catalogdb
RUN T_home=/var/lib/kafka-sync/mariadb T_log_file=/dev/stderr T_server_id=1 T_db_port=3306 \
      T_binlog_filter="binlog_do_db=$CATALOG_DB" render-template /etc/mysql/kafka-sync.cnf.template \
      >/etc/mysql/kafka-sync.cnf \
    && printf 'bind-address=0.0.0.0\nlog-error=/dev/stderr\n' >>/etc/mysql/kafka-sync.cnf \
    && sed -n 's/^socket=/socket=/p' /etc/mysql/kafka-sync.cnf | sed '1i [client]' \
      >/etc/mysql/mariadb.conf.d/99-kafka-sync-client.cnf

USER mysql
EXPOSE 3306
# The accounts' passwords from the secret volume docker-compose.yml mounts (with-secrets), then the server.
ENTRYPOINT ["with-secrets"]
CMD ["start-mariadb"]

# A node of compose's MariaDB Galera cluster: Debian's mariadb-server (the package the native stack runs; it brings
# galera-4, rsync and the socket tools Galera's state transfer uses) with infra/mariadb/my.cnf and galera.cnf, which
# start-mariadb renders for the node as the launcher renders them. Build context is the repo root:
#   docker build -f infra/containers/mariadb.Dockerfile -t kafka-sync/mariadb .
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}

# The client tools (the healthcheck's too) find the server's socket where my.cnf puts it ({{home}}/mysqld.sock).
RUN apt-get update \
    && apt-get install -y --no-install-recommends mariadb-server mariadb-client \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /var/lib/kafka-sync/mariadb && chown mysql:mysql /var/lib/kafka-sync/mariadb \
    && printf '[client]\nsocket=/var/lib/kafka-sync/mariadb/mysqld.sock\n' \
      >/etc/mysql/mariadb.conf.d/99-kafka-sync-client.cnf

COPY infra/containers/bin/render-template infra/containers/bin/start-mariadb infra/containers/bin/mariadb-ready \
     infra/containers/bin/load-secrets infra/containers/bin/with-secrets /usr/local/bin/
COPY infra/mariadb/my.cnf infra/mariadb/galera.cnf /etc/mysql/kafka-sync/
COPY infra/mariadb/wsrep-notify /usr/local/bin/

USER mysql
EXPOSE 3306 4567 4568 4569
# The accounts' passwords from the secret volume docker-compose.yml mounts (with-secrets), then the node.
ENTRYPOINT ["with-secrets"]
CMD ["start-mariadb"]

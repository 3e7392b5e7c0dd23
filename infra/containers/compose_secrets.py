"""The compose stack's secrets, made on its first `up` with nothing on the host: `python -m
infra.containers.compose_secrets /secrets` (docker-compose.yml's `secrets` one-shot, from /app) writes one volume per
component, mounted at /secrets/<component>, each file named by the variable the component reads (load-secrets
exports it). Compose's, not the native launcher's: it imports the launcher's descriptions, nothing imports it.

Every secret of .env.example gets a value: the one the environment gives (compose passes a `.env`'s, which win;
a placeholder or a short one is refused as `make up` refuses it), else the one an earlier `up` made, else a new
random one. `operator` holds them all under their .env names: the test runner and an operator's tools mount it,
no service does. Files are 0440 in the group SECRETS_GID, which each reading container adds. The one-shot runs as
the images' `app` user in that group: the stack-tools image holds the mount points (`--mount-points`), owned by
app and the group, and a new volume takes its mount point's owner and mode.
"""

import os
import pwd
import re
import sys
from pathlib import Path

from stack_description import access
from stack_description.access import CDC_DB, CONNECT_KAFKA, DB_ACCOUNTS, KAFKA_LOGINS, OPERATOR_DB, ORDERS_SINK_DB
from stack_description.deployables import secret_volumes
from stack_description.settings import INFRA_DIR, example_lines, is_secret, new_secret, weak_secrets

# The group every container that reads a secret volume adds (docker-compose.yml's x-secrets-group).
SECRETS_GID = 10010
OPERATOR = "operator"

# component -> {the variable the component reads: the .env key it takes its value from}
COMPONENT_SECRETS: dict[str, dict[str, str]] = {
    # Every account's password (start-mariadb makes them).
    "mariadb": {account.password_key: account.password_key for account in (OPERATOR_DB, *DB_ACCOUNTS)},
    # The brokers' inter-broker login and the one-shot that creates the topics.
    "kafka-admin": {"KAFKA_ADMIN_PASSWORD": "KAFKA_ADMIN_PASSWORD"},
    # Makes every component's SCRAM login.
    "kafka-access": {key: key for key in ("KAFKA_ADMIN_PASSWORD", *(login.password_key for login in KAFKA_LOGINS))},
    # The workers: their REST users (the admin, the monitor's read-only one), their Kafka login, and the connectors'
    # database accounts.
    "connect": {
        "CONNECT_PASSWORD": "CONNECT_PASSWORD",
        "CONNECT_MONITOR_PASSWORD": "CONNECT_MONITOR_PASSWORD",
        CONNECT_KAFKA.password_key: CONNECT_KAFKA.password_key,
        "SINK_DB_PASSWORD": ORDERS_SINK_DB.password_key,
        "CDC_DB_PASSWORD": CDC_DB.password_key,
    },
    # register-connectors: Connect's REST API only.
    "connect-client": {"CONNECT_PASSWORD": "CONNECT_PASSWORD"},
    # The Python deployables (discovery, the gateway, the services, the migrator, the monitor, connect-watchdog):
    # described once in stack_description.deployables, which the native launcher starts them from too.
    **secret_volumes(),
}


def secret_keys() -> list[str]:
    """Every secret .env.example names (JWT_SECRET aside: no process is given it any more)."""
    return [key for key, _, _ in example_lines() if key and is_secret(key) and key != "JWT_SECRET"]


def settle(provided: dict[str, str], earlier: dict[str, str]) -> dict[str, str]:
    """Each secret's value: provided (a .env's) wins, then an earlier run's, then a new one. A weak provided
    value raises ValueError naming every weak key."""
    given = {key: provided[key] for key in secret_keys() if provided.get(key)}
    problems = weak_secrets(given)
    if problems:
        raise ValueError("\n".join(problems))
    return {key: given.get(key) or earlier.get(key) or new_secret() for key in secret_keys()}


def layout(values: dict[str, str]) -> dict[str, dict[str, str]]:
    """component -> {file name: content}, the operator's volume included."""
    files = {
        component: {name: values[key] for name, key in wanted.items()}
        for component, wanted in COMPONENT_SECRETS.items()
    }
    files[OPERATOR] = dict(values)
    return files


def _write(path: Path, content: str) -> None:
    """0440 in SECRETS_GID from its creation (never readable by others, even for a moment), then renamed over."""
    partial = path.with_name(f".{path.name}.new")
    partial.unlink(missing_ok=True)
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o440)
    try:
        os.fchown(descriptor, -1, SECRETS_GID)
        os.write(descriptor, content.encode())
    finally:
        os.close(descriptor)
    partial.replace(path)


def write_volumes(root: Path, files: dict[str, dict[str, str]]) -> None:
    for component, secrets in files.items():
        folder = root / component
        folder.mkdir(exist_ok=True)
        os.chown(folder, -1, SECRETS_GID)
        folder.chmod(0o750)
        for name, content in secrets.items():
            _write(folder / name, content)
        for stale in set(path.name for path in folder.iterdir()) - set(secrets):
            (folder / stale).unlink()


def make_mount_points(root: Path, owner: str = "app") -> None:
    """At image build time, as root: /secrets/<component> for every volume, owned by `owner` and SECRETS_GID."""
    uid = pwd.getpwnam(owner).pw_uid
    for component in [*COMPONENT_SECRETS, OPERATOR]:
        folder = root / component
        folder.mkdir(parents=True, exist_ok=True)
        os.chown(folder, uid, SECRETS_GID)
        folder.chmod(0o750)


START_MARIADB = INFRA_DIR / "containers" / "bin" / "start-mariadb"
ACCOUNTS_BEGIN = "  # Rendered from stack_description.access' DbAccount descriptions"
ACCOUNTS_END = "  # End of the rendered accounts."


def rendered_accounts(script: str) -> str:
    """The accounts part of start-mariadb, its two marker comments aside."""
    begin = script.index("\n", script.index("\n", script.index(ACCOUNTS_BEGIN)) + 1) + 1
    return script[begin : script.index(ACCOUNTS_END)]


def compose_accounts() -> str:
    """The accounts as infra/containers/bin/start-mariadb makes them (its shell function `account`), rendered from the
    same descriptions: from any host ('%'; the engine picks the containers' addresses), table rights widened to their
    database (the server makes the accounts before the migration makes the tables), no benchmark databases (bench/
    runs natively)."""
    names = {"orders": "`$orders`", "catalog": "`$catalog`", "users": "`$users`", "orders_local": "`$local_dbs`"}
    lines = []
    for account in (OPERATOR_DB, *DB_ACCOUNTS):
        user = '"${DB_USER:-app}"' if account is OPERATOR_DB else account.user
        grants = [
            re.sub(r"\.`[^`]+`", ".*", grant).format(**names).replace("`", "\\`")
            for grant in account.grants
            if "{bench}" not in grant
        ]
        lines.append(" \\\n".join([f'  account {user} "${account.password_key}"', *(f'    "{g}"' for g in grants)]))
    return "\n".join(lines) + "\n"


def render_access() -> None:
    """Rewrite what compose's images read of the access descriptions: infra/kafka/acls.txt and the accounts of
    start-mariadb (the native launcher applies the descriptions themselves)."""
    access.ACL_FILE.write_text(access.acl_file_text())
    script = START_MARIADB.read_text()
    START_MARIADB.write_text(script.replace(rendered_accounts(script), compose_accounts()))


def main(argv: list[str]) -> int:
    if len(argv) > 2 and argv[1] == "--mount-points":
        make_mount_points(Path(argv[2]))
        return 0
    if len(argv) > 1 and argv[1] == "--render-access":
        render_access()
        return 0
    root = Path(argv[1] if len(argv) > 1 else "/secrets")
    operator = root / OPERATOR
    earlier = (
        {path.name: path.read_text() for path in operator.iterdir() if not path.name.startswith(".")}
        if operator.is_dir()
        else {}
    )
    try:
        values = settle(dict(os.environ), earlier)
    except ValueError as weak:
        listed = "\n".join(f"  - {line}" for line in str(weak).splitlines())
        print(
            f"the .env beside docker-compose.yml has weak secrets, so nothing was started:\n{listed}\n"
            "Fix: delete those lines from .env (missing secrets are generated into the compose volumes), or set each "
            "to 32+ random bytes, e.g. python3 -c 'import secrets; print(secrets.token_urlsafe(32))'",
            file=sys.stderr,
        )
        return 1
    write_volumes(root, layout(values))
    made = sorted(set(values) - set(earlier))
    print(f"secrets: {len(values)} in {len(COMPONENT_SECRETS) + 1} volumes; new this time: {len(made)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

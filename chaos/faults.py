"""The faults `make chaos` injects: each a kill -9 of one process of the native stack and the launcher's way of
starting it again. Blocking calls: the runner sends them to a thread."""

from collections.abc import Callable
from dataclasses import dataclass

from launcher import connect, kafka, mariadb, services
from launcher.processes import Component, kill
from stack_description.settings import StackConfig


@dataclass(frozen=True)
class Fault:
    target: str
    crash: Callable[[], None]
    recover: Callable[[], None]


def _service_fault(config: StackConfig, name: str) -> Fault:
    return Fault(name, lambda: kill(Component(name)), lambda: services.restart_service(config, name))


def _instances(config: StackConfig, prefix: str) -> list[str]:
    return [c.name for c in services.all_components(config) if c.name.startswith(prefix)]


def faults_in_turn(config: StackConfig) -> list[Fault]:
    """An order-service instance, catalog-service, the Connect worker, MariaDB and, with several brokers, one
    broker: in that order."""
    faults = [
        _service_fault(config, _instances(config, "order-service-")[-1]),
        _service_fault(config, _instances(config, "catalog-service-")[0]),
    ]
    worker = connect.components(config)[0]
    faults.append(Fault(worker.name, lambda: kill(worker), lambda: connect.ensure_running(config)))
    database = mariadb.component(config)
    faults.append(Fault(database.name, lambda: kill(database), lambda: mariadb.up(config)))
    brokers = kafka.components(config)
    if len(brokers) > 1:
        broker = brokers[-1]
        faults.append(Fault(broker.name, lambda: kill(broker), lambda: kafka.up(config)))
    return faults

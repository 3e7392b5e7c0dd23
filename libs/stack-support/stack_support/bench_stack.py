"""The benchmarks' own stack: a native stack beside make up's (stack_support.side_stack: .stack/bench and
.stack/bench.env, every port 12000 up, make up's layout, tracing on so that observability_cost has its Zipkin).
Every benchmark that touches Kafka or MariaDB runs on it, so none writes what make up's stack reacts to (its
`orders`, mydb.orders, catalogdb, its expirers, catalog-service, sink and auditor): the bench's orders are real
orders through a whole stack, but that stack is the bench's own, made fresh and removed afterwards.

    .venv/bin/python -m stack_support.bench_stack up            # fresh (an earlier one's data dropped)
    .venv/bin/python -m stack_support.bench_stack exec CMD...   # CMD with the bench stack's settings in its environment
    .venv/bin/python -m stack_support.bench_stack run CMD...    # up, CMD, down (what a benchmark started alone does)
    .venv/bin/python -m stack_support.bench_stack down

A benchmark started on its own calls `on_bench_stack()` first: outside the bench stack's environment it starts
itself again under `run`, so it can never place its orders on make up's stack.
"""

import argparse
import os
import subprocess
import sys

from stack_support.side_stack import SideStack

NAME = "bench"
# Every port of it stays below the kernel's ephemeral range (32768 up here), where a client's outgoing connection
# may hold any port for a while (at 30000 up the gateway found 38000 in use). make compose-test's stack is 10000 up,
# tests/cluster's 20000, bench/cluster_throughput.py's cluster 22000.
PORT_SHIFT = 12000
MARKER = "BENCH_STACK"


def bench_stack() -> SideStack:
    return SideStack(NAME, PORT_SHIFT, {}, tracing=True)


def environment(stack: SideStack) -> dict[str, str]:
    """This process's environment pointed at `stack`: its settings win over the repo's .env (for StackConfig and
    every pydantic settings class), the launcher's STACK_DIR and STACK_ENV_FILE, the signing key under its folder,
    and an auditor state file of its own."""
    return {
        **os.environ,
        **stack.config.values,
        "STACK_DIR": str(stack.stack_dir),
        "STACK_ENV_FILE": str(stack.env_file),
        "AUDIT_STATE_FILE": str(stack.stack_dir / "audit-state.json"),
        MARKER: stack.name,
    }


def on_bench_stack() -> None:
    """Return when this process runs with the bench stack's settings; otherwise run it again (same arguments) under
    `python -m stack_support.bench_stack run`, which starts the bench stack, runs it there and stops the stack."""
    if os.environ.get(MARKER) == NAME:
        return
    print(f"==> not on the benchmarks' own stack: starting it (.stack/bench, ports +{PORT_SHIFT}), running there")
    sys.stdout.flush()
    python = sys.executable
    os.execv(python, [python, "-m", "stack_support.bench_stack", "run", python, *sys.orig_argv[1:]])


def parse_args(parser: argparse.ArgumentParser, **quick: object) -> argparse.Namespace:
    """The arguments, with `--quick` added: the given tiny counts replace the defaults (arguments given still win)
    and the figures are printed but not judged against their targets. What tests/bench runs: it proves what a
    benchmark leaves behind, not how fast it is."""
    listed = ", ".join(f"{key.replace('_', '-')} {value}" for key, value in quick.items())
    parser.add_argument("--quick", action="store_true", help=f"tiny counts ({listed}); targets not judged")
    if parser.parse_known_args()[0].quick:
        parser.set_defaults(**quick)
    return parser.parse_args()


def is_up(stack: SideStack) -> bool:
    """Every component of the stack answers (`launcher status` exits 0)."""
    if not stack.env_file.exists():
        return False
    env = {key: value for key, value in environment(stack).items() if key not in stack.config.values}
    status = subprocess.run(
        [sys.executable, "-m", "launcher", "status"], env=env, capture_output=True, check=False, timeout=120
    )
    return status.returncode == 0


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m stack_support.bench_stack", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("up", "down", "exec", "run"))
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    stack = bench_stack()
    if args.action == "up":
        print(f"==> the benchmarks' own stack (.stack/bench, ports +{PORT_SHIFT}), fresh", flush=True)
        stack.up_fresh()
    elif args.action == "down":
        if stack.stack_dir.exists():
            stack.down()
    elif args.action == "exec":
        if not args.command:
            parser.error("exec needs a command")
        os.execvpe(args.command[0], args.command, environment(stack))
    else:
        if not args.command:
            parser.error("run needs a command")
        started = not is_up(stack)
        try:
            if started:
                print(f"==> the benchmarks' own stack (.stack/bench, ports +{PORT_SHIFT}), fresh", flush=True)
                stack.up_fresh()
            result = subprocess.run(args.command, env=environment(stack), check=False)
        finally:
            if started:
                stack.down()
        sys.exit(result.returncode)


if __name__ == "__main__":
    main()

"""Routes from YAML, in Spring Cloud Gateway's vocabulary: Path/Method predicates, RewritePath,
RemoveRequestHeader, AuthorizationHeaderFilter, TokenSubjectMatchesPath, TokenHasRole, RequestRateLimiter and
`lb://APP` targets.

Deny by default: a route either needs a token (one of the token filters) or says `Public`; one with
neither is a configuration error, so an open route is always a visible choice in routes.yaml."""

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from api_gateway.ratelimit import RateLimit


class RouteConfigError(ValueError):
    """The routes file says something this gateway does not understand."""


@dataclass(frozen=True)
class Route:
    id: str
    app: str
    paths: tuple[re.Pattern[str], ...]
    methods: frozenset[str] | None
    rewrite: tuple[re.Pattern[str], str] | None
    removed_headers: frozenset[bytes]
    requires_token: bool
    subject_path_variable: str | None
    required_role: str | None = None
    rate_limit: RateLimit | None = None
    # The literal first path segment all its Path patterns share, if any: lets RouteTable skip routes.
    first_segment: str | None = None
    # Its first Path pattern as written (`/order-service/{userId}/orders`): the name of its requests' spans.
    template: str = ""
    # When the rewrite only swaps a literal prefix for another (`/user-service/(?<segment>.*)` -> `/${segment}`):
    # the two prefixes, so most paths are rewritten by slicing instead of a regex substitution.
    rewrite_prefixes: tuple[str, str] | None = None

    def match(self, method: str, path: str) -> dict[str, str] | None:
        """The path variables when this route takes the request, else None."""
        if self.methods is not None and method not in self.methods:
            return None
        for pattern in self.paths:
            found = pattern.fullmatch(path)
            if found is not None:
                return found.groupdict()
        return None

    def rewritten(self, path: str) -> str:
        if self.rewrite is None:
            return path
        prefixes = self.rewrite_prefixes
        # `.` stops at a line end, where the substitution would go on searching: such paths take the regex.
        if prefixes is not None and path.startswith(prefixes[0]) and "\n" not in path:
            return prefixes[1] + path[len(prefixes[0]) :]
        pattern, replacement = self.rewrite
        return pattern.sub(replacement, path) or "/"


class RouteTable:
    """Routes in file order; the first that matches a request takes it. Indexed by first path segment."""

    def __init__(self, routes: list[Route]) -> None:
        self.routes = routes
        self._anywhere = [route for route in routes if route.first_segment is None]
        self._by_first_segment = {
            route.first_segment: [r for r in routes if r.first_segment in (route.first_segment, None)]
            for route in routes
            if route.first_segment is not None
        }

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        first_segment = path.split("/", 2)[1] if path.startswith("/") else ""
        for route in self._by_first_segment.get(first_segment, self._anywhere):
            variables = route.match(method, path)
            if variables is not None:
                return route, variables
        return None


def _literal_first_segment(spring_patterns: list[str]) -> str | None:
    firsts = {pattern.strip("/").split("/", 1)[0] for pattern in spring_patterns}
    if len(firsts) != 1:
        return None
    first = firsts.pop()
    return None if any(marker in first for marker in "{*") else first


def path_pattern(spring_pattern: str) -> re.Pattern[str]:
    """`/order-service/{userId}/**` → a regex: `{name}` is one segment, `*` part of one, `**` any rest."""
    regex = ""
    for segment in spring_pattern.strip("/").split("/"):
        if segment == "**":
            regex += "(?:/.*)?"
            continue
        regex += "/"
        for piece in re.split(r"(\{[A-Za-z_][A-Za-z0-9_]*\}|\*)", segment):
            if piece == "*":
                regex += "[^/]*"
            elif piece.startswith("{") and piece.endswith("}"):
                regex += f"(?P<{piece[1:-1]}>[^/]+)"
            else:
                regex += re.escape(piece)
    return re.compile(regex or "/")


def rewrite_rule(argument: str) -> tuple[re.Pattern[str], str]:
    """`/user-service/(?<segment>.*), /$\\{segment}` (Java syntax) → a Python pattern and replacement."""
    regexp, separator, replacement = argument.partition(",")
    if not separator:
        raise RouteConfigError(f"RewritePath needs 'regexp, replacement', got {argument!r}")
    python_regexp = regexp.strip().replace("(?<", "(?P<").replace("(?P<=", "(?<=").replace("(?P<!", "(?<!")
    python_replacement = re.sub(r"\$\\?\{(\w+)\}", r"\\g<\1>", replacement.strip())
    return re.compile(python_regexp), python_replacement


_PLAIN_PREFIX_REWRITE = re.compile(r"(/[A-Za-z0-9_/-]*)\(\?P<(\w+)>\.\*\)")


def prefix_rewrite(rewrite: tuple[re.Pattern[str], str]) -> tuple[str, str] | None:
    """(old, new) when `rewrite` is `<plain prefix>(?P<name>.*)` -> `<plain prefix>\\g<name>`, else None."""
    pattern, replacement = rewrite
    found = _PLAIN_PREFIX_REWRITE.fullmatch(pattern.pattern)
    if found is None or pattern.flags != re.UNICODE:
        return None
    old_prefix, name = found.groups()
    new_prefix, separator, rest = replacement.partition(f"\\g<{name}>")
    if not separator or rest or "\\" in new_prefix:
        return None
    return old_prefix, new_prefix


def rate_limit_rule(route_id: str, argument: str) -> RateLimit:
    """`RequestRateLimiter=<replenishRate>, <burstCapacity>, <address|subject>`."""
    parts = [part.strip() for part in argument.split(",")]
    try:
        rate, burst, key = float(parts[0]), int(parts[1]), parts[2]
    except (ValueError, IndexError):
        raise RouteConfigError(
            f"route {route_id}: RequestRateLimiter needs 'replenishRate, burstCapacity, address|subject', "
            f"got {argument!r}"
        ) from None
    if rate <= 0 or burst < 1 or key not in ("address", "subject"):
        raise RouteConfigError(f"route {route_id}: RequestRateLimiter needs a rate > 0, a burst >= 1, address|subject")
    return RateLimit(rate, burst, key)


def _name_and_argument(entry: str) -> tuple[str, str]:
    name, _, argument = str(entry).partition("=")
    return name.strip(), argument.strip()


def route_from_config(config: dict[str, Any]) -> Route:
    route_id = str(config.get("id", "?"))
    uri = str(config.get("uri", ""))
    if not uri.startswith("lb://"):
        raise RouteConfigError(f"route {route_id}: only lb:// targets are supported, got {uri!r}")
    paths: list[re.Pattern[str]] = []
    spring_paths: list[str] = []
    methods: frozenset[str] | None = None
    for predicate in config.get("predicates", []):
        name, argument = _name_and_argument(predicate)
        if name == "Path":
            spring_paths.extend(p.strip() for p in argument.split(","))
            paths.extend(path_pattern(p.strip()) for p in argument.split(","))
        elif name == "Method":
            methods = frozenset(m.strip().upper() for m in argument.split(","))
        else:
            raise RouteConfigError(f"route {route_id}: unknown predicate {name}")
    rewrite = None
    removed: set[bytes] = set()
    requires_token = False
    public = False
    subject_variable = None
    required_role = None
    rate_limit = None
    for entry in config.get("filters", []):
        name, argument = _name_and_argument(entry)
        if name == "RewritePath":
            rewrite = rewrite_rule(argument)
        elif name == "RemoveRequestHeader":
            removed.add(argument.lower().encode())
        elif name == "AuthorizationHeaderFilter":
            requires_token = True
        elif name == "TokenSubjectMatchesPath":
            requires_token = True
            subject_variable = argument
        elif name == "TokenHasRole":
            requires_token = True
            required_role = argument
        elif name == "Public":
            public = True
        elif name == "RequestRateLimiter":
            rate_limit = rate_limit_rule(route_id, argument)
        else:
            raise RouteConfigError(f"route {route_id}: unknown filter {name}")
    if not paths:
        raise RouteConfigError(f"route {route_id}: needs a Path predicate")
    if requires_token == public:
        raise RouteConfigError(f"route {route_id}: give it a token filter or mark it Public (exactly one)")
    if rate_limit is not None and rate_limit.key == "subject" and not requires_token:
        raise RouteConfigError(f"route {route_id}: a rate limit by subject needs a token filter")
    return Route(
        id=route_id,
        app=uri.removeprefix("lb://").upper(),
        paths=tuple(paths),
        methods=methods,
        rewrite=rewrite,
        removed_headers=frozenset(removed),
        requires_token=requires_token,
        subject_path_variable=subject_variable,
        required_role=required_role,
        rate_limit=rate_limit,
        first_segment=_literal_first_segment(spring_paths),
        template=spring_paths[0] if spring_paths else "",
        rewrite_prefixes=prefix_rewrite(rewrite) if rewrite is not None else None,
    )


def load_routes(path: Path) -> list[Route]:
    document = yaml.safe_load(path.read_text()) or {}
    entries = document.get("routes") or document.get("spring", {}).get("cloud", {}).get("gateway", {}).get("routes", [])
    return [route_from_config(entry) for entry in entries]

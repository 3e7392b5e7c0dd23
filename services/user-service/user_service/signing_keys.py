"""user-service's token signing keys: a file only it reads (mode 0600), made at first start, rotated live.

At most two keys are live. `rotate` adds a new one, published at once but signing only after
`activation_seconds` (the verifiers fetch the JWKS by then), and keeps the previous one published so the tokens
it signed stay valid; the key before that is dropped, which `rotate` refuses while its tokens may still be alive.
"""

import json
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from servicekit.tokens import SigningKey

LIVE_KEYS = 2


class RotationRefused(Exception):
    """Dropping the oldest key now would end tokens that have not expired yet."""


def _read(path: Path) -> list[SigningKey]:
    entries = json.loads(path.read_text())["keys"]
    keys = [SigningKey.from_raw(entry["kid"], entry["private"], float(entry["created"])) for entry in entries]
    return sorted(keys, key=lambda key: key.created)


def _write(path: Path, keys: list[SigningKey]) -> None:
    """Atomically, never readable by others: created 0600 in a 0700 directory, then renamed over the old file."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    document = {"keys": [{"kid": key.kid, "created": key.created, "private": key.raw} for key in keys]}
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        json.dump(document, file)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)


def _new_key() -> SigningKey:
    return SigningKey.generate(f"{time.strftime('%Y%m%d')}-{uuid.uuid4().hex[:8]}")


def ensure_key_file(path: Path) -> None:
    """The first start makes the file with one key."""
    if not path.exists():
        _write(path, [_new_key()])


def rotate(path: Path, token_ttl_seconds: float, activation_seconds: float, *, force: bool = False) -> SigningKey:
    """Add a new key; keep the newest existing one; drop older ones (refused while their tokens may live)."""
    keys = _read(path)
    dropped, kept = keys[: -(LIVE_KEYS - 1)], keys[-(LIVE_KEYS - 1) :]
    if dropped and not force:
        # The oldest key stopped signing when its successor became active; its tokens live token_ttl after that.
        alive_until = kept[0].created + activation_seconds + token_ttl_seconds
        if alive_until > time.time():
            raise RotationRefused(
                f"key {dropped[-1].kid} may have signed tokens valid until {time.ctime(alive_until)}; "
                "rotate again after that, or with --force to end them"
            )
    new = _new_key()
    _write(path, [*kept, new])
    return new


@dataclass
class KeyStore:
    """The key file as user-service uses it: read again whenever it changed on disk (a rotation)."""

    path: Path
    activation_seconds: float
    _keys: list[SigningKey] = field(default_factory=list)
    _read_version: tuple[int, int] = (0, 0)

    def published(self) -> list[SigningKey]:
        stat = self.path.stat()
        if (stat.st_mtime_ns, stat.st_ino) != self._read_version:
            self._keys = _read(self.path)
            self._read_version = (stat.st_mtime_ns, stat.st_ino)
        return self._keys

    def signing_key(self) -> SigningKey:
        """The newest key published long enough for every verifier to know it (the only key at first)."""
        keys = self.published()
        active = [key for key in keys if key.created <= time.time() - self.activation_seconds]
        return active[-1] if active else keys[0]

"""`python -m user_service`: migrate, then serve on a free port registered in discovery as USER-SERVICE.

`python -m user_service grant-admin <email>`: give an existing account the admin role (the next token carries it).
`python -m user_service rotate-key [--force]`: add a new signing key, live without a restart (docs/access.md).
"""

import argparse
import asyncio

from servicekit.database import make_engine, make_sessions, run_migrations
from servicekit.server import serve
from servicekit.tokens import ADMIN_ROLE
from user_service import service
from user_service.config import APP_NAME, UserServiceSettings
from user_service.main import ALEMBIC_INI, create_app
from user_service.signing_keys import RotationRefused, rotate


async def grant_admin(settings: UserServiceSettings, email: str) -> None:
    await asyncio.to_thread(run_migrations, ALEMBIC_INI, settings.users_db, settings)
    engine = make_engine(settings, settings.users_db, pool_size=1)
    try:
        async with make_sessions(engine)() as session:
            user = await service.grant_role(session, email, ADMIN_ROLE)
    finally:
        await engine.dispose()
    print(f"{user.email} ({user.user_id}) has the roles: {user.roles}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m user_service", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command")
    grant = commands.add_parser("grant-admin", help="give an existing account the admin role")
    grant.add_argument("email")
    rotation = commands.add_parser("rotate-key", help="add a new signing key; the previous one stays published")
    rotation.add_argument("--force", action="store_true", help="drop the oldest key even if its tokens live")
    args = parser.parse_args()
    settings = UserServiceSettings()
    if args.command == "rotate-key":
        try:
            key = rotate(
                settings.signing_keys_file,
                settings.jwt_ttl_seconds,
                settings.key_activation_seconds,
                force=args.force,
            )
        except RotationRefused as exc:
            raise SystemExit(f"error: {exc}") from exc
        print(f"published key {key.kid}; it signs from {settings.key_activation_seconds:g} s from now")
        return
    if args.command == "grant-admin":
        try:
            asyncio.run(grant_admin(settings, args.email))
        except service.UserNotFound as exc:
            raise SystemExit(f"error: {exc.detail}") from exc
        return
    serve(create_app(settings), settings, APP_NAME)


if __name__ == "__main__":
    main()

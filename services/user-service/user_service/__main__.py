"""`python -m user_service`: migrate, then serve on a free port registered in discovery as USER-SERVICE.

`python -m user_service create-admin [email]`: make the first admin (default ADMIN_EMAIL) with a generated password,
printed this once; nothing to do when it is an admin already; refused when someone else's account has the e-mail.
`python -m user_service grant-admin <email>`: give an existing account the admin role (the next token carries it).
`python -m user_service rotate-key [--force]`: add a new signing key, live without a restart (docs/access.md).
"""

import argparse
import asyncio

from pydantic import EmailStr, TypeAdapter, ValidationError

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


async def create_admin(settings: UserServiceSettings, email: str) -> None:
    await asyncio.to_thread(run_migrations, ALEMBIC_INI, settings.users_db, settings)
    engine = make_engine(settings, settings.users_db, pool_size=1)
    try:
        async with make_sessions(engine)() as session:
            user, password = await service.create_admin(session, email)
    finally:
        await engine.dispose()
    if password is None:
        print(f"{user.email} ({user.user_id}) is an admin already; nothing to do")
        return
    print(f"created the admin {user.email} ({user.user_id}); its password, shown this once and stored nowhere:")
    print(f"password: {password}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m user_service", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command")
    first = commands.add_parser("create-admin", help="make the first admin with a generated password")
    first.add_argument("email", nargs="?", help="default: ADMIN_EMAIL")
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
    if args.command == "create-admin":
        try:
            email = TypeAdapter(EmailStr).validate_python(args.email or settings.admin_email)
        except ValidationError as exc:
            raise SystemExit("error: name the admin's e-mail (a valid address), or set ADMIN_EMAIL") from exc
        try:
            asyncio.run(create_admin(settings, email))
        except service.AdminEmailTaken as exc:
            raise SystemExit(f"error: {exc.detail}") from exc
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

"""The users table in user-service's own database (USERS_DB)."""

from datetime import datetime

from sqlalchemy import BigInteger, Integer, String
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    # The public id (a UUID): what tokens carry as their subject and what order-service knows users by.
    user_id: Mapped[str] = mapped_column(String(36), unique=True)
    email: Mapped[str] = mapped_column(String(255), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(mysql.DATETIME(fsp=3))
    # Comma-separated role names carried into the user's tokens ("admin" or empty).
    roles: Mapped[str] = mapped_column(String(255), default="")
    # Tokens carry the version they were issued at; a password change raises it, which ends every older token.
    token_version: Mapped[int] = mapped_column(Integer, default=0)
    token_version_at: Mapped[datetime | None] = mapped_column(mysql.DATETIME(fsp=3), nullable=True)

    @property
    def role_names(self) -> tuple[str, ...]:
        return tuple(role for role in self.roles.split(",") if role)


class LoginThrottle(Base):
    """Failed logins of one account or one client address within the current window, and its lock."""

    __tablename__ = "login_throttle"

    throttle_key: Mapped[str] = mapped_column(String(320), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    window_started: Mapped[datetime] = mapped_column(mysql.DATETIME(fsp=3))
    lockouts: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(mysql.DATETIME(fsp=3), nullable=True)

"""Request and response bodies of the user-service API (camelCase on the wire, like the order and catalog APIs)."""

from datetime import datetime

from pydantic import BaseModel, ConfigDict, EmailStr, Field, ValidationInfo, field_validator, model_validator

from user_service.models import User
from user_service.password_rules import weakness


def _guessable_refused(pwd: str, email: str | None = None) -> str:
    reason = weakness(pwd, email)
    if reason is not None:
        raise ValueError(f"too easy to guess ({reason})")
    return pwd


class UserRegistration(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: EmailStr = Field(max_length=255)
    name: str = Field(min_length=2, max_length=100)
    pwd: str = Field(min_length=8, max_length=128)

    @field_validator("pwd")
    @classmethod
    def _pwd_not_guessable(cls, pwd: str, info: ValidationInfo) -> str:
        return _guessable_refused(pwd, info.data.get("email"))


class UserUpdate(BaseModel):
    """PUT /users/{userId}: a new name and/or a new password; a new password needs the current one."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=2, max_length=100)
    pwd: str | None = Field(default=None, min_length=8, max_length=128)
    currentPwd: str | None = Field(default=None, min_length=1, max_length=128)

    @model_validator(mode="after")
    def _changes_something(self) -> "UserUpdate":
        if self.name is None and self.pwd is None:
            raise ValueError("give name and/or pwd")
        if self.pwd is not None and self.currentPwd is None:
            raise ValueError("a new pwd needs currentPwd, the password it replaces")
        return self

    @field_validator("pwd")
    @classmethod
    def _pwd_not_guessable(cls, pwd: str | None) -> str | None:
        return _guessable_refused(pwd) if pwd is not None else None


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: EmailStr = Field(max_length=255)
    password: str = Field(min_length=1, max_length=128)


class LoginResponse(BaseModel):
    token: str
    userId: str


class UserView(BaseModel):
    email: str
    name: str
    userId: str

    @classmethod
    def of(cls, user: User) -> "UserView":
        return cls(email=user.email, name=user.name, userId=user.user_id)


class OrderView(BaseModel):
    """An order as order-service answers it; unknown extra fields are ignored."""

    orderId: str
    userId: str
    productId: str
    qty: int
    unitPrice: int
    totalPrice: int
    status: str
    # Passed through as order-service wrote it.
    createdAt: str | datetime


class UserWithOrders(UserView):
    # The latest page of the user's orders, newest first.
    orders: list[OrderView]
    # The next page's path through the gateway (same token), when the user has more orders than one page.
    ordersNext: str | None = None
    # Set, and `orders` left empty, when order-service could not be asked or did not answer in time.
    ordersError: str | None = None

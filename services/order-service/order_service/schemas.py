"""What the HTTP API accepts and answers (camelCase on the wire)."""

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from order_contract.order import Order, plain_values

# Bounds keep total_price inside the int32 the orders schema declares.
MAX_QTY = 1_000
MAX_UNIT_PRICE = 1_000_000

Identifier = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")]


class OrderRequest(BaseModel):
    # strict: "5" is not a quantity; forbid: a misspelt field is an error, not silently ignored.
    model_config = ConfigDict(strict=True, extra="forbid", alias_generator=to_camel, validate_by_name=False)

    product_id: Identifier
    qty: int = Field(gt=0, le=MAX_QTY)
    unit_price: int = Field(gt=0, le=MAX_UNIT_PRICE)


class OrderOut(BaseModel):
    """An order as the API answers it. The fields are listed (not derived) so OpenAPI documents them;
    tests/test_schemas.py keeps them equal to the contract's Order."""

    model_config = ConfigDict(alias_generator=to_camel, validate_by_name=True, serialize_by_alias=True)

    order_id: str
    user_id: str
    product_id: str
    qty: int
    unit_price: int
    total_price: int
    status: str
    created_at: str

    @classmethod
    def of(cls, order: Order) -> "OrderOut":
        return cls(**plain_values(order))

"""What the HTTP API accepts and answers (camelCase on the wire)."""

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from order_contract.order import MAX_QTY, MAX_UNIT_PRICE, Order, plain_values

Identifier = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")]


class OrderRequest(BaseModel):
    # strict: "5" is not a quantity; forbid: a misspelt field is an error, not silently ignored.
    model_config = ConfigDict(strict=True, extra="forbid", alias_generator=to_camel, validate_by_name=False)

    product_id: Identifier
    qty: int = Field(gt=0, le=MAX_QTY)
    # Optional: the catalog sets the price. A client that states one is told (409) when it is not the current one.
    unit_price: int | None = Field(default=None, gt=0, le=MAX_UNIT_PRICE)


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

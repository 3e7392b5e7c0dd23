"""What the HTTP API answers (camelCase on the wire)."""

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from catalog_service.models import CatalogRow
from order_contract.order import INT32_MAX, MAX_TEXT_LENGTH, MAX_UNIT_PRICE
from order_contract.timestamps import iso_ms

ProductId = Annotated[str, Field(min_length=1, max_length=MAX_TEXT_LENGTH, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")]
ProductName = Annotated[str, Field(min_length=1, max_length=255)]
# An order's price must fit the orders schema's bounds; the order-service read model skips anything else.
UnitPrice = Annotated[int, Field(gt=0, le=MAX_UNIT_PRICE)]

# strict: "5" is not a price; forbid: a misspelt field is an error, not silently ignored.
_STRICT_INPUT = ConfigDict(strict=True, extra="forbid", alias_generator=to_camel, validate_by_name=False)


class NewProduct(BaseModel):
    """POST /catalogs: a product with its starting stock."""

    model_config = _STRICT_INPUT

    product_id: ProductId
    product_name: ProductName
    unit_price: UnitPrice
    stock: int = Field(ge=0, le=INT32_MAX)


class ProductChange(BaseModel):
    """PUT /catalogs/{productId}: a new name, a new price, or both. Stock is not set here: orders take it."""

    model_config = _STRICT_INPUT

    product_name: ProductName | None = None
    unit_price: UnitPrice | None = None

    @model_validator(mode="after")
    def _changes_something(self) -> "ProductChange":
        if self.product_name is None and self.unit_price is None:
            raise ValueError("give productName, unitPrice or both")
        return self


class CatalogOut(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, validate_by_name=True, serialize_by_alias=True)

    product_id: str
    product_name: str
    unit_price: int
    stock: int
    created_at: str

    @classmethod
    def of(cls, row: CatalogRow) -> "CatalogOut":
        return cls(
            product_id=row.product_id,
            product_name=row.product_name,
            unit_price=row.unit_price,
            stock=row.stock,
            created_at=iso_ms(row.created_at),
        )

"""What the HTTP API answers (camelCase on the wire)."""

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from catalog_service.models import CatalogRow
from order_contract.timestamps import iso_ms


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

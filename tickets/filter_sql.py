"""The filter AST (``tickets.filters``) and sort orders as SQL on ``tickets``, for both databases.

Built-in properties are columns; custom ones live in the JSON column
``custom_properties`` and are read with a guard on the JSON value's type, so
a value stored before a property was defined (a web form's text in a number
property) never makes PostgreSQL's cast fail: it just does not match.
"is not" and "is none of" also match tickets where the property is unknown,
as in the reference product.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, case, false, func, literal, or_, select, true

from frontdesk.model import Pipeline, Status, Ticket
from frontdesk.tickets.filters import (
    AFTER, BEFORE, BETWEEN, CONTAINS, EQ, EXTRA_PROPERTIES, GT, IN, KNOWN, LAST_DAYS, LT, ME, NEQ, NIN, PIPELINE,
    STATUS, UNKNOWN, Filter,
)
from frontdesk.tickets.properties import BOOLEAN, DATE, ENUMERATION, NUMBER, PropertySpec


@dataclass(frozen=True)
class FilterContext:
    """What compiling needs besides the AST: who ``me`` is, the SQL dialect and the time "now"."""

    user_id: int | None
    dialect: str
    now: datetime


def _json_typed(name: str, json_types: tuple[str, ...], value: Any, dialect: str) -> Any:
    """``value`` (an extraction of custom property ``name``) where the stored JSON has one of ``json_types``."""
    if dialect == "postgresql":
        kind = func.json_typeof(Ticket.custom_properties[name])
    else:
        kind = func.json_type(Ticket.custom_properties, literal(f'$."{name}"'))
    return case((kind.in_(json_types), value), else_=None)


def value_column(spec: PropertySpec, dialect: str) -> Any:
    """The SQL expression holding ``spec``'s value on a ticket."""
    if spec.built_in:
        assert spec.attribute is not None
        return getattr(Ticket, spec.attribute)
    stored = Ticket.custom_properties[spec.name]
    if spec.type == NUMBER:
        json_types = ("number",) if dialect == "postgresql" else ("integer", "real")
        return _json_typed(spec.name, json_types, stored.as_float(), dialect)
    if spec.type == BOOLEAN:
        json_types = ("boolean",) if dialect == "postgresql" else ("true", "false")
        return _json_typed(spec.name, json_types, stored.as_boolean(), dialect)
    return stored.as_string()


def column_nullable(spec: PropertySpec) -> bool:
    return not spec.built_in or bool(getattr(Ticket, spec.attribute or "id").nullable)


def _resolve_me(values: tuple[Any, ...], context: FilterContext) -> list[Any]:
    return [context.user_id if value == ME else value for value in values if value != ME or context.user_id]


def _named(f: Filter) -> ColumnElement[bool]:
    """Pipeline or status criteria: ids, internal names, or (status) labels in any case."""
    ids = [v for v in f.values if isinstance(v, int)]
    names = [v for v in f.values if isinstance(v, str)]
    if f.spec.type == PIPELINE:
        by_name = select(Pipeline.id).where(Pipeline.internal_name.in_(names))
        column = Ticket.pipeline_id
    else:
        by_name = select(Status.id).where(or_(Status.internal_name.in_(names),
                                              func.lower(Status.label).in_([n.strip().lower() for n in names])))
        column = Ticket.status_id
    matched = or_(column.in_(ids), column.in_(by_name) if names else false())
    return ~matched if f.operator in (NEQ, NIN) else matched


def _date_bound(f: Filter, context: FilterContext) -> Any:
    days = f.values[0]
    if f.spec.type == DATE:
        return (context.now.date() - timedelta(days=days)).isoformat()
    return context.now - timedelta(days=days)


def filter_clause(f: Filter, context: FilterContext) -> ColumnElement[bool]:
    """One criterion as a WHERE clause on ``tickets``."""
    if f.spec.type in (PIPELINE, STATUS):
        return _named(f)
    column = value_column(f.spec, context.dialect)
    op, values = f.operator, f.values
    if op == KNOWN:
        return column.is_not(None)
    if op == UNKNOWN:
        return column.is_(None)
    if op in (EQ, NEQ, IN, NIN):
        wanted = _resolve_me(values, context)
        matched = column.in_(wanted) if wanted else false()
        if not column_nullable(f.spec):
            return ~matched if op in (NEQ, NIN) else matched
        return or_(column.is_(None), ~matched) if op in (NEQ, NIN) else matched
    if op == CONTAINS:
        return column.icontains(values[0], autoescape=True)
    if op in (GT, AFTER):
        return column > values[0]
    if op in (LT, BEFORE):
        return column < values[0]
    if op == BETWEEN:
        return and_(column >= values[0], column <= values[1])
    if op == LAST_DAYS:
        return and_(column >= _date_bound(f, context), column <= (
            context.now.date().isoformat() if f.spec.type == DATE else context.now))
    raise AssertionError(f"operator {op} has no SQL")  # bind_filter admits only the operators above


def filters_clause(filters: list[Filter], context: FilterContext) -> ColumnElement[bool]:
    """Every criterion ANDed (true for none)."""
    return and_(true(), *(filter_clause(f, context) for f in filters))


# --- sorting ----------------------------------------------------------------

def sortable(spec: PropertySpec) -> bool:
    return not spec.built_in or spec.attribute is not None


def sort_column(spec: PropertySpec, dialect: str) -> Any:
    """What ``sort=<property>`` orders by: the value, or an enumeration's option position (low < urgent)."""
    if spec.type == ENUMERATION and spec.options:
        column = value_column(spec, dialect)
        return case({option: rank for rank, option in enumerate(spec.options)}, value=column, else_=None)
    return value_column(spec, dialect)


SORT_PROPERTIES = {"id": EXTRA_PROPERTIES["id"]}

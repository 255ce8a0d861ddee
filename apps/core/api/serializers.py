"""Input serializers shared by every app's API.

``StrictSerializer`` is the one way an endpoint refuses fields it does not know:
a misspelt setting (``stop_los``) on an order or a bot must be an error, not
silently ignored. Unknown keys are reported together with every other bad
field, in the one error body.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from django.utils.functional import cached_property
from rest_framework import serializers
from rest_framework.fields import Field, SkipField, empty, is_simple_callable
from rest_framework.relations import PKOnlyObject
from rest_framework.settings import api_settings
from rest_framework.utils import html
from rest_framework.utils.serializer_helpers import BindingDict

UNKNOWN_FIELD = "Unknown field."
NOT_AN_OBJECT = "Expected a JSON object."


class StrictMixin:
    """Reject keys that are not declared fields (read-only fields count as unknown input)."""

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, dict):
            raise serializers.ValidationError({api_settings.NON_FIELD_ERRORS_KEY: [NOT_AN_OBJECT]})
        writable = {name for name, field in self.fields.items() if not field.read_only}
        unknown = {key: [UNKNOWN_FIELD] for key in data if key not in writable}
        missing = self._missing_from_form(data)
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as exc:
            detail = (
                exc.detail
                if isinstance(exc.detail, dict)
                else {api_settings.NON_FIELD_ERRORS_KEY: exc.detail}
            )
            raise serializers.ValidationError({**unknown, **detail, **missing}) from exc
        if unknown or missing:
            raise serializers.ValidationError({**unknown, **missing})
        return value

    def _missing_from_form(self, data: Any) -> dict[str, list[str]]:
        """Required fields a form body leaves out that DRF would fill in anyway.

        For form input DRF reads a missing boolean as ``False`` (an unticked HTML checkbox is not
        sent), so an empty form passed a required ``kill_switch``. This is an API: a required
        field is required in every body format, as in JSON.
        """
        if not html.is_html_input(data) or getattr(self.root, "partial", False):
            return {}
        return {
            name: [field.error_messages["required"]]
            for name, field in self.fields.items()
            if field.required
            and not field.read_only
            and field.default_empty_html is not empty
            and name not in data
        }


class SharedFieldsMixin:
    """Fields built and bound once per class, shared by its instances, for a class that opts in.

    DRF builds and binds every field for every serializer instance: for an order's 30 fields
    most of the cost of rendering one (0.28 ms; nested fills and legs 0.48 ms) or of validating
    one. A field reads only its arguments and the value it is given, except where it asks its
    serializer for ``context`` (the request: hyperlinks, current-user defaults, method fields)
    or ``partial``. ``shared_fields = True`` says no field of the class does the former (nested
    serializers included); the shared fields are then used by every instance but a partial
    one, bound to a serializer of their own with no context.
    """

    shared_fields = False

    @cached_property
    def fields(self) -> BindingDict:
        cls = type(self)
        if not cls.shared_fields or self.partial:
            return serializers.Serializer.fields.func(self)
        shared = cls.__dict__.get("_shared")
        if shared is None:  # (two threads may both build it: either is right)
            prototype = cls(context=_NoContext())
            prototype.__dict__["fields"] = shared = serializers.Serializer.fields.func(prototype)
            cls._shared_plan = getattr(prototype, "_reading_plan", None)
            cls._shared = shared
        return shared


class _NoContext(dict):
    """The shared fields' context: empty, and it stays so.

    Nothing of a request may linger in a class attribute; drf-spectacular writes its schema
    request into the context of each nested serializer it describes (the shared ones included).
    """

    def __setitem__(self, key, value) -> None:
        pass

    def update(self, *args, **kwargs) -> None:
        pass

    def setdefault(self, key, default=None):
        return default


class StrictSerializer(StrictMixin, SharedFieldsMixin, serializers.Serializer):
    """An input serializer (types only) that refuses unknown fields."""


class ModelSerializer(SharedFieldsMixin, serializers.ModelSerializer):
    """DRF's ModelSerializer with its fields built from the model once per class, not per use.

    DRF introspects the model for every serializer instance (1.1 ms for an order's 30 fields,
    the largest cost of a short list request); the built fields depend only on the class's
    ``Meta`` and declared fields, so the first build is kept and each instance gets fresh
    fields made from the kept ones' arguments (nested serializers: a deep copy, as DRF does).
    A subclass that builds fields from its context overrides ``get_fields`` and calls ``super()``.
    """

    def get_fields(self) -> dict[str, serializers.Field]:
        cls = type(self)
        built = cls.__dict__.get("_built_fields")
        if built is None:
            built = super().get_fields()
            cls._built_fields = built
        return {name: _fresh(field) for name, field in built.items()}

    def to_representation(self, instance: Any) -> dict[str, Any]:
        """DRF's ``Serializer.to_representation``, with a plain attribute read for plain fields.

        Per field DRF walks a generator, ``Field.get_attribute`` and the module's
        ``get_attribute`` with its checks: most of a list's cost. A field that reads one
        attribute through ``Field.get_attribute`` (not a relation, a method field or a
        dotted source) is read here with ``getattr`` (a simple callable is called, as DRF
        does); any exception goes back through DRF's own path, so defaults, nulls, skipped
        fields and error messages are DRF's.
        """
        if isinstance(instance, Mapping):
            return super().to_representation(instance)
        result: dict[str, Any] = {}
        for name, field, attr in self._reading_plan:
            if attr is None:
                try:
                    attribute = field.get_attribute(instance)
                except SkipField:
                    continue
            else:
                try:
                    attribute = getattr(instance, attr)
                    if callable(attribute) and is_simple_callable(attribute):
                        attribute = attribute()
                except Exception:
                    try:
                        attribute = field.get_attribute(instance)
                    except SkipField:
                        continue
            present = attribute.pk if isinstance(attribute, PKOnlyObject) else attribute
            result[name] = None if present is None else field.to_representation(attribute)
        return result

    @property
    def _reading_plan(self) -> list[tuple[str, serializers.Field, str | None]]:
        plan = self.__dict__.get("_plan")
        if plan is None and self.fields is type(self).__dict__.get("_shared"):
            plan = type(self)._shared_plan
        if plan is None:
            plan = [
                (
                    field.field_name,
                    field,
                    field.source_attrs[0]
                    if len(field.source_attrs) == 1 and type(field).get_attribute is Field.get_attribute
                    else None,
                )
                for field in self._readable_fields
            ]
            self.__dict__["_plan"] = plan
        return plan


def _fresh(field: serializers.Field) -> serializers.Field:
    """A new, unbound field like ``field``: made again from its arguments (DRF keeps them).

    DRF's own copy (``deepcopy``) also copies every argument, which for a choice field of the
    world's time zones costs more than building it; the arguments are only read, so they are
    shared. A field holding other fields (a nested serializer, a list's ``child``) is
    deep-copied, as DRF does: a child is bound to one parent.
    """
    if isinstance(field, serializers.BaseSerializer) or any(
        isinstance(value, Field) for value in (*field._args, *field._kwargs.values())
    ):
        return copy.deepcopy(field)
    return field.__class__(*field._args, **field._kwargs)

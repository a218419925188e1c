from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class OverrideKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OVERRIDE_KIND_UNSPECIFIED: _ClassVar[OverrideKind]
    OVERRIDE_KIND_TRUST_DEVICE: _ClassVar[OverrideKind]
    OVERRIDE_KIND_RAISE_THRESHOLD: _ClassVar[OverrideKind]
    OVERRIDE_KIND_EXTEND_BASELINE: _ClassVar[OverrideKind]

class OverrideStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OVERRIDE_STATUS_UNSPECIFIED: _ClassVar[OverrideStatus]
    OVERRIDE_STATUS_PENDING: _ClassVar[OverrideStatus]
    OVERRIDE_STATUS_APPROVED: _ClassVar[OverrideStatus]
    OVERRIDE_STATUS_EXPIRED: _ClassVar[OverrideStatus]

class BaselineAttribute(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BASELINE_ATTRIBUTE_UNSPECIFIED: _ClassVar[BaselineAttribute]
    BASELINE_ATTRIBUTE_OS_FAMILY: _ClassVar[BaselineAttribute]
    BASELINE_ATTRIBUTE_BROWSER_FAMILY: _ClassVar[BaselineAttribute]
    BASELINE_ATTRIBUTE_DEVICE_ID: _ClassVar[BaselineAttribute]
OVERRIDE_KIND_UNSPECIFIED: OverrideKind
OVERRIDE_KIND_TRUST_DEVICE: OverrideKind
OVERRIDE_KIND_RAISE_THRESHOLD: OverrideKind
OVERRIDE_KIND_EXTEND_BASELINE: OverrideKind
OVERRIDE_STATUS_UNSPECIFIED: OverrideStatus
OVERRIDE_STATUS_PENDING: OverrideStatus
OVERRIDE_STATUS_APPROVED: OverrideStatus
OVERRIDE_STATUS_EXPIRED: OverrideStatus
BASELINE_ATTRIBUTE_UNSPECIFIED: BaselineAttribute
BASELINE_ATTRIBUTE_OS_FAMILY: BaselineAttribute
BASELINE_ATTRIBUTE_BROWSER_FAMILY: BaselineAttribute
BASELINE_ATTRIBUTE_DEVICE_ID: BaselineAttribute

class Override(_message.Message):
    __slots__ = ("override_id", "kind", "organisation", "reason", "user_id", "device_id", "threshold", "attribute", "value", "requested_by", "requested_at", "expires_at", "status", "approved_by", "approved_at", "applied")
    OVERRIDE_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    ORGANISATION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTE_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_BY_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    APPROVED_BY_FIELD_NUMBER: _ClassVar[int]
    APPROVED_AT_FIELD_NUMBER: _ClassVar[int]
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    override_id: str
    kind: OverrideKind
    organisation: str
    reason: str
    user_id: str
    device_id: str
    threshold: float
    attribute: BaselineAttribute
    value: str
    requested_by: str
    requested_at: float
    expires_at: float
    status: OverrideStatus
    approved_by: str
    approved_at: float
    applied: bool
    def __init__(self, override_id: _Optional[str] = ..., kind: _Optional[_Union[OverrideKind, str]] = ..., organisation: _Optional[str] = ..., reason: _Optional[str] = ..., user_id: _Optional[str] = ..., device_id: _Optional[str] = ..., threshold: _Optional[float] = ..., attribute: _Optional[_Union[BaselineAttribute, str]] = ..., value: _Optional[str] = ..., requested_by: _Optional[str] = ..., requested_at: _Optional[float] = ..., expires_at: _Optional[float] = ..., status: _Optional[_Union[OverrideStatus, str]] = ..., approved_by: _Optional[str] = ..., approved_at: _Optional[float] = ..., applied: _Optional[bool] = ...) -> None: ...

class RequestOverrideRequest(_message.Message):
    __slots__ = ("kind", "organisation", "reason", "user_id", "device_id", "threshold", "attribute", "value")
    KIND_FIELD_NUMBER: _ClassVar[int]
    ORGANISATION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTE_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    kind: OverrideKind
    organisation: str
    reason: str
    user_id: str
    device_id: str
    threshold: float
    attribute: BaselineAttribute
    value: str
    def __init__(self, kind: _Optional[_Union[OverrideKind, str]] = ..., organisation: _Optional[str] = ..., reason: _Optional[str] = ..., user_id: _Optional[str] = ..., device_id: _Optional[str] = ..., threshold: _Optional[float] = ..., attribute: _Optional[_Union[BaselineAttribute, str]] = ..., value: _Optional[str] = ...) -> None: ...

class RequestOverrideResponse(_message.Message):
    __slots__ = ("override",)
    OVERRIDE_FIELD_NUMBER: _ClassVar[int]
    override: Override
    def __init__(self, override: _Optional[_Union[Override, _Mapping]] = ...) -> None: ...

class ApproveOverrideRequest(_message.Message):
    __slots__ = ("override_id",)
    OVERRIDE_ID_FIELD_NUMBER: _ClassVar[int]
    override_id: str
    def __init__(self, override_id: _Optional[str] = ...) -> None: ...

class ApproveOverrideResponse(_message.Message):
    __slots__ = ("override",)
    OVERRIDE_FIELD_NUMBER: _ClassVar[int]
    override: Override
    def __init__(self, override: _Optional[_Union[Override, _Mapping]] = ...) -> None: ...

class ListOverridesRequest(_message.Message):
    __slots__ = ("organisation", "pending_only")
    ORGANISATION_FIELD_NUMBER: _ClassVar[int]
    PENDING_ONLY_FIELD_NUMBER: _ClassVar[int]
    organisation: str
    pending_only: bool
    def __init__(self, organisation: _Optional[str] = ..., pending_only: _Optional[bool] = ...) -> None: ...

class ListOverridesResponse(_message.Message):
    __slots__ = ("overrides",)
    OVERRIDES_FIELD_NUMBER: _ClassVar[int]
    overrides: _containers.RepeatedCompositeFieldContainer[Override]
    def __init__(self, overrides: _Optional[_Iterable[_Union[Override, _Mapping]]] = ...) -> None: ...

class GetBaselineRequest(_message.Message):
    __slots__ = ("organisation",)
    ORGANISATION_FIELD_NUMBER: _ClassVar[int]
    organisation: str
    def __init__(self, organisation: _Optional[str] = ...) -> None: ...

class GetBaselineResponse(_message.Message):
    __slots__ = ("organisation", "os_families", "browser_families", "device_ids", "threshold", "threshold_overridden")
    ORGANISATION_FIELD_NUMBER: _ClassVar[int]
    OS_FAMILIES_FIELD_NUMBER: _ClassVar[int]
    BROWSER_FAMILIES_FIELD_NUMBER: _ClassVar[int]
    DEVICE_IDS_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_OVERRIDDEN_FIELD_NUMBER: _ClassVar[int]
    organisation: str
    os_families: _containers.RepeatedScalarFieldContainer[str]
    browser_families: _containers.RepeatedScalarFieldContainer[str]
    device_ids: _containers.RepeatedScalarFieldContainer[str]
    threshold: float
    threshold_overridden: bool
    def __init__(self, organisation: _Optional[str] = ..., os_families: _Optional[_Iterable[str]] = ..., browser_families: _Optional[_Iterable[str]] = ..., device_ids: _Optional[_Iterable[str]] = ..., threshold: _Optional[float] = ..., threshold_overridden: _Optional[bool] = ...) -> None: ...

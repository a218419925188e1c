from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class KeyChangeKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    KEY_CHANGE_KIND_UNSPECIFIED: _ClassVar[KeyChangeKind]
    KEY_CHANGE_KIND_ROTATE: _ClassVar[KeyChangeKind]
    KEY_CHANGE_KIND_RETIRE: _ClassVar[KeyChangeKind]
    KEY_CHANGE_KIND_REENCRYPT: _ClassVar[KeyChangeKind]
    KEY_CHANGE_KIND_PROVIDER: _ClassVar[KeyChangeKind]

class KeyChangeStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    KEY_CHANGE_STATUS_UNSPECIFIED: _ClassVar[KeyChangeStatus]
    KEY_CHANGE_STATUS_PENDING: _ClassVar[KeyChangeStatus]
    KEY_CHANGE_STATUS_APPROVED: _ClassVar[KeyChangeStatus]
    KEY_CHANGE_STATUS_APPLIED: _ClassVar[KeyChangeStatus]
    KEY_CHANGE_STATUS_FAILED: _ClassVar[KeyChangeStatus]
    KEY_CHANGE_STATUS_EXPIRED: _ClassVar[KeyChangeStatus]

class KeyState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    KEY_STATE_UNSPECIFIED: _ClassVar[KeyState]
    KEY_STATE_ACTIVE: _ClassVar[KeyState]
    KEY_STATE_DECRYPT_ONLY: _ClassVar[KeyState]
    KEY_STATE_RETIRED: _ClassVar[KeyState]
KEY_CHANGE_KIND_UNSPECIFIED: KeyChangeKind
KEY_CHANGE_KIND_ROTATE: KeyChangeKind
KEY_CHANGE_KIND_RETIRE: KeyChangeKind
KEY_CHANGE_KIND_REENCRYPT: KeyChangeKind
KEY_CHANGE_KIND_PROVIDER: KeyChangeKind
KEY_CHANGE_STATUS_UNSPECIFIED: KeyChangeStatus
KEY_CHANGE_STATUS_PENDING: KeyChangeStatus
KEY_CHANGE_STATUS_APPROVED: KeyChangeStatus
KEY_CHANGE_STATUS_APPLIED: KeyChangeStatus
KEY_CHANGE_STATUS_FAILED: KeyChangeStatus
KEY_CHANGE_STATUS_EXPIRED: KeyChangeStatus
KEY_STATE_UNSPECIFIED: KeyState
KEY_STATE_ACTIVE: KeyState
KEY_STATE_DECRYPT_ONLY: KeyState
KEY_STATE_RETIRED: KeyState

class KeyChange(_message.Message):
    __slots__ = ("change_id", "kind", "alias", "version", "reason", "requested_by", "requested_user", "requested_at", "expires_at", "status", "approved_by", "approved_user", "approved_at", "applied_at", "result", "error", "provider_fingerprint", "provider_summary")
    CHANGE_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_BY_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_USER_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    APPROVED_BY_FIELD_NUMBER: _ClassVar[int]
    APPROVED_USER_FIELD_NUMBER: _ClassVar[int]
    APPROVED_AT_FIELD_NUMBER: _ClassVar[int]
    APPLIED_AT_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_SUMMARY_FIELD_NUMBER: _ClassVar[int]
    change_id: str
    kind: KeyChangeKind
    alias: str
    version: int
    reason: str
    requested_by: str
    requested_user: str
    requested_at: float
    expires_at: float
    status: KeyChangeStatus
    approved_by: str
    approved_user: str
    approved_at: float
    applied_at: float
    result: str
    error: str
    provider_fingerprint: str
    provider_summary: str
    def __init__(self, change_id: _Optional[str] = ..., kind: _Optional[_Union[KeyChangeKind, str]] = ..., alias: _Optional[str] = ..., version: _Optional[int] = ..., reason: _Optional[str] = ..., requested_by: _Optional[str] = ..., requested_user: _Optional[str] = ..., requested_at: _Optional[float] = ..., expires_at: _Optional[float] = ..., status: _Optional[_Union[KeyChangeStatus, str]] = ..., approved_by: _Optional[str] = ..., approved_user: _Optional[str] = ..., approved_at: _Optional[float] = ..., applied_at: _Optional[float] = ..., result: _Optional[str] = ..., error: _Optional[str] = ..., provider_fingerprint: _Optional[str] = ..., provider_summary: _Optional[str] = ...) -> None: ...

class RequestKeyChangeRequest(_message.Message):
    __slots__ = ("kind", "alias", "version", "reason", "session_token", "provider_settings")
    KIND_FIELD_NUMBER: _ClassVar[int]
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    SESSION_TOKEN_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_SETTINGS_FIELD_NUMBER: _ClassVar[int]
    kind: KeyChangeKind
    alias: str
    version: int
    reason: str
    session_token: str
    provider_settings: str
    def __init__(self, kind: _Optional[_Union[KeyChangeKind, str]] = ..., alias: _Optional[str] = ..., version: _Optional[int] = ..., reason: _Optional[str] = ..., session_token: _Optional[str] = ..., provider_settings: _Optional[str] = ...) -> None: ...

class RequestKeyChangeResponse(_message.Message):
    __slots__ = ("change",)
    CHANGE_FIELD_NUMBER: _ClassVar[int]
    change: KeyChange
    def __init__(self, change: _Optional[_Union[KeyChange, _Mapping]] = ...) -> None: ...

class ApproveKeyChangeRequest(_message.Message):
    __slots__ = ("change_id", "session_token")
    CHANGE_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_TOKEN_FIELD_NUMBER: _ClassVar[int]
    change_id: str
    session_token: str
    def __init__(self, change_id: _Optional[str] = ..., session_token: _Optional[str] = ...) -> None: ...

class ApproveKeyChangeResponse(_message.Message):
    __slots__ = ("change",)
    CHANGE_FIELD_NUMBER: _ClassVar[int]
    change: KeyChange
    def __init__(self, change: _Optional[_Union[KeyChange, _Mapping]] = ...) -> None: ...

class ListKeyChangesRequest(_message.Message):
    __slots__ = ("pending_only",)
    PENDING_ONLY_FIELD_NUMBER: _ClassVar[int]
    pending_only: bool
    def __init__(self, pending_only: _Optional[bool] = ...) -> None: ...

class ListKeyChangesResponse(_message.Message):
    __slots__ = ("changes",)
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    changes: _containers.RepeatedCompositeFieldContainer[KeyChange]
    def __init__(self, changes: _Optional[_Iterable[_Union[KeyChange, _Mapping]]] = ...) -> None: ...

class ListKeysRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class KeyVersion(_message.Message):
    __slots__ = ("alias", "version", "state", "created")
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    alias: str
    version: int
    state: KeyState
    created: str
    def __init__(self, alias: _Optional[str] = ..., version: _Optional[int] = ..., state: _Optional[_Union[KeyState, str]] = ..., created: _Optional[str] = ...) -> None: ...

class ListKeysResponse(_message.Message):
    __slots__ = ("versions",)
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    versions: _containers.RepeatedCompositeFieldContainer[KeyVersion]
    def __init__(self, versions: _Optional[_Iterable[_Union[KeyVersion, _Mapping]]] = ...) -> None: ...

from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class MfaMethod(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MFA_METHOD_UNSPECIFIED: _ClassVar[MfaMethod]
    MFA_METHOD_TOTP: _ClassVar[MfaMethod]
    MFA_METHOD_PASSKEY: _ClassVar[MfaMethod]

class MfaResult(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MFA_RESULT_UNSPECIFIED: _ClassVar[MfaResult]
    MFA_RESULT_OK: _ClassVar[MfaResult]
    MFA_RESULT_INVALID: _ClassVar[MfaResult]
    MFA_RESULT_REPLAYED: _ClassVar[MfaResult]
    MFA_RESULT_LOCKED_OUT: _ClassVar[MfaResult]
    MFA_RESULT_NOT_ENROLLED: _ClassVar[MfaResult]
MFA_METHOD_UNSPECIFIED: MfaMethod
MFA_METHOD_TOTP: MfaMethod
MFA_METHOD_PASSKEY: MfaMethod
MFA_RESULT_UNSPECIFIED: MfaResult
MFA_RESULT_OK: MfaResult
MFA_RESULT_INVALID: MfaResult
MFA_RESULT_REPLAYED: MfaResult
MFA_RESULT_LOCKED_OUT: MfaResult
MFA_RESULT_NOT_ENROLLED: MfaResult

class SessionSelector(_message.Message):
    __slots__ = ("user_id", "session_id")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    session_id: str
    def __init__(self, user_id: _Optional[str] = ..., session_id: _Optional[str] = ...) -> None: ...

class CreateSessionRequest(_message.Message):
    __slots__ = ("user_id", "organisation", "roles", "device_id", "user_agent", "ip", "geo", "mfa_verified_at", "mfa_method", "enrolment_grant_seconds")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ORGANISATION_FIELD_NUMBER: _ClassVar[int]
    ROLES_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    USER_AGENT_FIELD_NUMBER: _ClassVar[int]
    IP_FIELD_NUMBER: _ClassVar[int]
    GEO_FIELD_NUMBER: _ClassVar[int]
    MFA_VERIFIED_AT_FIELD_NUMBER: _ClassVar[int]
    MFA_METHOD_FIELD_NUMBER: _ClassVar[int]
    ENROLMENT_GRANT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    organisation: str
    roles: _containers.RepeatedScalarFieldContainer[str]
    device_id: str
    user_agent: str
    ip: str
    geo: str
    mfa_verified_at: float
    mfa_method: MfaMethod
    enrolment_grant_seconds: int
    def __init__(self, user_id: _Optional[str] = ..., organisation: _Optional[str] = ..., roles: _Optional[_Iterable[str]] = ..., device_id: _Optional[str] = ..., user_agent: _Optional[str] = ..., ip: _Optional[str] = ..., geo: _Optional[str] = ..., mfa_verified_at: _Optional[float] = ..., mfa_method: _Optional[_Union[MfaMethod, str]] = ..., enrolment_grant_seconds: _Optional[int] = ...) -> None: ...

class CreateSessionResponse(_message.Message):
    __slots__ = ("session_token", "session_id", "expires_at", "idle_timeout")
    SESSION_TOKEN_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    IDLE_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    session_token: str
    session_id: str
    expires_at: float
    idle_timeout: float
    def __init__(self, session_token: _Optional[str] = ..., session_id: _Optional[str] = ..., expires_at: _Optional[float] = ..., idle_timeout: _Optional[float] = ...) -> None: ...

class ListUserSessionsRequest(_message.Message):
    __slots__ = ("user_id",)
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    def __init__(self, user_id: _Optional[str] = ...) -> None: ...

class SessionInfo(_message.Message):
    __slots__ = ("session_id", "user_id", "organisation", "roles", "device_id", "created_at", "last_seen_at", "idle_expires_at", "absolute_expires_at", "mfa_verified_at", "mfa_method", "expired")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ORGANISATION_FIELD_NUMBER: _ClassVar[int]
    ROLES_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_AT_FIELD_NUMBER: _ClassVar[int]
    IDLE_EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    ABSOLUTE_EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    MFA_VERIFIED_AT_FIELD_NUMBER: _ClassVar[int]
    MFA_METHOD_FIELD_NUMBER: _ClassVar[int]
    EXPIRED_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    user_id: str
    organisation: str
    roles: _containers.RepeatedScalarFieldContainer[str]
    device_id: str
    created_at: float
    last_seen_at: float
    idle_expires_at: float
    absolute_expires_at: float
    mfa_verified_at: float
    mfa_method: MfaMethod
    expired: bool
    def __init__(self, session_id: _Optional[str] = ..., user_id: _Optional[str] = ..., organisation: _Optional[str] = ..., roles: _Optional[_Iterable[str]] = ..., device_id: _Optional[str] = ..., created_at: _Optional[float] = ..., last_seen_at: _Optional[float] = ..., idle_expires_at: _Optional[float] = ..., absolute_expires_at: _Optional[float] = ..., mfa_verified_at: _Optional[float] = ..., mfa_method: _Optional[_Union[MfaMethod, str]] = ..., expired: _Optional[bool] = ...) -> None: ...

class ListUserSessionsResponse(_message.Message):
    __slots__ = ("sessions", "factors")
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    FACTORS_FIELD_NUMBER: _ClassVar[int]
    sessions: _containers.RepeatedCompositeFieldContainer[SessionInfo]
    factors: _containers.RepeatedScalarFieldContainer[MfaMethod]
    def __init__(self, sessions: _Optional[_Iterable[_Union[SessionInfo, _Mapping]]] = ..., factors: _Optional[_Iterable[_Union[MfaMethod, str]]] = ...) -> None: ...

class RevokeSessionRequest(_message.Message):
    __slots__ = ("session_token", "session")
    SESSION_TOKEN_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    session_token: str
    session: SessionSelector
    def __init__(self, session_token: _Optional[str] = ..., session: _Optional[_Union[SessionSelector, _Mapping]] = ...) -> None: ...

class RevokeSessionResponse(_message.Message):
    __slots__ = ("revoked",)
    REVOKED_FIELD_NUMBER: _ClassVar[int]
    revoked: bool
    def __init__(self, revoked: _Optional[bool] = ...) -> None: ...

class RevokeUserSessionsRequest(_message.Message):
    __slots__ = ("user_id",)
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    def __init__(self, user_id: _Optional[str] = ...) -> None: ...

class RevokeUserSessionsResponse(_message.Message):
    __slots__ = ("revoked",)
    REVOKED_FIELD_NUMBER: _ClassVar[int]
    revoked: int
    def __init__(self, revoked: _Optional[int] = ...) -> None: ...

class BeginTotpEnrolmentRequest(_message.Message):
    __slots__ = ("user_id", "organisation")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ORGANISATION_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    organisation: str
    def __init__(self, user_id: _Optional[str] = ..., organisation: _Optional[str] = ...) -> None: ...

class BeginTotpEnrolmentResponse(_message.Message):
    __slots__ = ("provisioning_uri", "qr_png_base64")
    PROVISIONING_URI_FIELD_NUMBER: _ClassVar[int]
    QR_PNG_BASE64_FIELD_NUMBER: _ClassVar[int]
    provisioning_uri: str
    qr_png_base64: str
    def __init__(self, provisioning_uri: _Optional[str] = ..., qr_png_base64: _Optional[str] = ...) -> None: ...

class ConfirmTotpEnrolmentRequest(_message.Message):
    __slots__ = ("user_id", "organisation", "code")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ORGANISATION_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    organisation: str
    code: str
    def __init__(self, user_id: _Optional[str] = ..., organisation: _Optional[str] = ..., code: _Optional[str] = ...) -> None: ...

class ConfirmTotpEnrolmentResponse(_message.Message):
    __slots__ = ("result",)
    RESULT_FIELD_NUMBER: _ClassVar[int]
    result: MfaResult
    def __init__(self, result: _Optional[_Union[MfaResult, str]] = ...) -> None: ...

class VerifyMfaRequest(_message.Message):
    __slots__ = ("session_token", "session", "code")
    SESSION_TOKEN_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    session_token: str
    session: SessionSelector
    code: str
    def __init__(self, session_token: _Optional[str] = ..., session: _Optional[_Union[SessionSelector, _Mapping]] = ..., code: _Optional[str] = ...) -> None: ...

class VerifyMfaResponse(_message.Message):
    __slots__ = ("result", "mfa_verified_at")
    RESULT_FIELD_NUMBER: _ClassVar[int]
    MFA_VERIFIED_AT_FIELD_NUMBER: _ClassVar[int]
    result: MfaResult
    mfa_verified_at: float
    def __init__(self, result: _Optional[_Union[MfaResult, str]] = ..., mfa_verified_at: _Optional[float] = ...) -> None: ...

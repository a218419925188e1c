"""The `pkcs11` provider: non-extractable AES master keys that never leave the token.

Each version is a token object labelled `<alias>@v<version>`, generated inside the
token with CKA_SENSITIVE=true and CKA_EXTRACTABLE=false. DEKs are wrapped with
CKM_AES_GCM inside the token using the same nonce || ciphertext || tag layout and
associated data as `admitd.kms.wrap`. The highest version present is active;
retiring destroys the object.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11 import exceptions as p11
from pkcs11.mechanisms import GCMParams

from admitd.errors import KmsError
from admitd.kms.base import KeyState, KeyVersion, WrappedDek, check_alias
from admitd.kms.errors import AliasNotFound, KeyInUse, KeyVersionNotFound, WrongKey
from admitd.kms.wrap import WRAP_NONCE_BYTES, WRAPPED_DEK_BYTES, check_dek, wrap_aad

__all__ = ["Pkcs11Kms", "key_label"]

_LABEL = re.compile(r"(kms/[a-z0-9][a-z0-9-]*)@v([1-9][0-9]*)")

# What the token says when GCM authentication fails differs by vendor
# (SoftHSM2 answers CKR_GENERAL_ERROR); all of them mean "wrong key".
_AUTH_FAILURES = (p11.EncryptedDataInvalid, p11.EncryptedDataLenRange, p11.GeneralError)

# One lock for the whole process, not per instance: python-pkcs11 initialises the
# module with C_Initialize(NULL), which tells the library it will never be called
# from two threads at once, and it releases the GIL inside each call.
_TOKEN_CALLS = threading.Lock()


def key_label(alias: str, version: int) -> str:
    """CKA_LABEL of one master-key version."""
    return f"{alias}@v{version}"


@contextmanager
def _translated(what: str) -> Iterator[None]:
    # The one place PKCS#11 exceptions become admitd ones.
    try:
        yield
    except p11.PKCS11Error as exc:
        raise KmsError(f"PKCS#11 token refused {what}: {type(exc).__name__}") from exc


class Pkcs11Kms:
    """A `ManagedKms` over one PKCS#11 token, one logged-in session guarded by a lock.

    Every call is a device round trip, so the async adapter runs it off the event
    loop; one worker thread is enough, since calls are serialised anyway.
    """

    worker_threads = 1

    def __init__(
        self,
        module: str,
        token_label: str,
        pin: str,
        *,
        randbytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        with _translated(f"opening token {token_label!r}"):
            token = pkcs11.lib(module).get_token(token_label=token_label)
            try:
                self._session = token.open(user_pin=pin, rw=True)
            except p11.UserAlreadyLoggedIn:
                # Login is per process in PKCS#11: a second session shares it.
                self._session = token.open(rw=True)
        self._randbytes = randbytes
        self._lock = _TOKEN_CALLS
        self._keys: dict[tuple[str, int], Any] = {}
        self._refresh()

    def close(self) -> None:
        with self._lock, _translated("closing the session"):
            self._session.close()

    def wrap_dek(self, alias: str, dek: bytes) -> WrappedDek:
        check_dek(dek)
        version = self.active_version(alias)
        nonce = self._randbytes(WRAP_NONCE_BYTES)
        params = GCMParams(nonce, wrap_aad(alias, version), 128)
        with self._lock, _translated(f"wrapping under {alias} v{version}"):
            sealed = self._keys[(alias, version)].encrypt(
                dek, mechanism=Mechanism.AES_GCM, mechanism_param=params
            )
        return WrappedDek(version, nonce + bytes(sealed))

    def unwrap_dek(self, alias: str, key_version: int, wrapped: bytes) -> bytes:
        key = self._key(alias, key_version)
        if len(wrapped) != WRAPPED_DEK_BYTES:
            raise WrongKey(f"wrapped DEK for {alias} v{key_version} has the wrong length")
        nonce, sealed = wrapped[:WRAP_NONCE_BYTES], wrapped[WRAP_NONCE_BYTES:]
        params = GCMParams(nonce, wrap_aad(alias, key_version), 128)
        with self._lock:
            try:
                dek = key.decrypt(sealed, mechanism=Mechanism.AES_GCM, mechanism_param=params)
            except _AUTH_FAILURES:
                raise WrongKey(f"{alias} v{key_version} did not unwrap the DEK") from None
            except p11.PKCS11Error as exc:
                raise KmsError(f"PKCS#11 token refused unwrap: {type(exc).__name__}") from exc
        return bytes(dek)

    def active_version(self, alias: str) -> int:
        versions = [v for (a, v) in self._keys if a == alias]
        if not versions:
            raise AliasNotFound(f"no master key for alias {alias} in the token")
        return max(versions)

    def aliases(self) -> tuple[str, ...]:
        return tuple(sorted({a for (a, _) in self._keys}))

    def versions(self, alias: str) -> tuple[KeyVersion, ...]:
        active = self.active_version(alias)
        # Creation dates are not kept: CKA_START_DATE is optional and unevenly supported.
        return tuple(
            KeyVersion(alias, v, KeyState.ACTIVE if v == active else KeyState.DECRYPT_ONLY, "")
            for v in sorted(v for (a, v) in self._keys if a == alias)
        )

    def create_alias(self, alias: str) -> KeyVersion:
        check_alias(alias)
        if alias in self.aliases():
            raise KmsError(f"alias {alias} already exists in the token")
        return self._generate(alias, 1)

    def rotate(self, alias: str) -> KeyVersion:
        self._refresh()
        return self._generate(alias, self.active_version(alias) + 1)

    def retire(self, alias: str, version: int) -> KeyVersion:
        key = self._key(alias, version)
        if version == self.active_version(alias):
            raise KeyInUse(f"{alias} v{version} is the active version; rotate first")
        with self._lock, _translated(f"destroying {alias} v{version}"):
            key.destroy()
            del self._keys[(alias, version)]
        return KeyVersion(alias, version, KeyState.RETIRED, "")

    def _generate(self, alias: str, version: int) -> KeyVersion:
        template = {
            Attribute.TOKEN: True,
            Attribute.PRIVATE: True,
            Attribute.SENSITIVE: True,  # the value can never be read
            Attribute.EXTRACTABLE: False,  # nor wrapped out: key export is disabled
            Attribute.ENCRYPT: True,
            Attribute.DECRYPT: True,
            Attribute.WRAP: False,
            Attribute.UNWRAP: False,
        }
        label = key_label(alias, version)
        with self._lock, _translated(f"generating {label}"):
            key = self._session.generate_key(KeyType.AES, 256, label=label, template=template)
            self._keys[(alias, version)] = key
        return KeyVersion(alias, version, KeyState.ACTIVE, "")

    def _key(self, alias: str, version: int) -> Any:
        if (alias, version) not in self._keys:
            self._refresh()  # another process may have rotated since
        try:
            return self._keys[(alias, version)]
        except KeyError:
            if alias not in self.aliases():
                raise AliasNotFound(f"no master key for alias {alias} in the token") from None
            raise KeyVersionNotFound(f"{alias} has no version {version} in the token") from None

    def _refresh(self) -> None:
        with self._lock, _translated("listing keys"):
            found = {}
            for obj in self._session.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY}):
                match = _LABEL.fullmatch(str(obj[Attribute.LABEL]))
                if match:
                    found[(match[1], int(match[2]))] = obj
            self._keys = found

"""The encrypted cookie format: a session's bytes under AES-GCM, and back.

``!`` followed by url-safe base64 (``django.core.signing.b64_encode``) of the
nonce, then the AES-GCM ciphertext and tag of: a compression flag, the time
of encryption and the (zlib-compressed when that helps) data. The key is
derived with HKDF from ``SECRET_KEY`` or one of ``SECRET_KEY_FALLBACKS``;
``decrypt()`` tries each. The signed format is Django's own
(``django.core.signing``): see ``signed_cookies.py``.
"""

from __future__ import annotations

import functools
import os
import struct
import zlib
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.signing import BadSignature, b64_decode, b64_encode
from django.utils.encoding import force_bytes

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

ENCRYPTED_PREFIX = "!"
_ENCRYPTION_INFO = b"django_prologue_sessions.signed_cookies.aes-gcm.v1"
_NONCE_BYTES = 12
_TAG_BYTES = 16
# Plaintext header: compressed flag, time of encryption.
_HEADER = struct.Struct(">?Q")

Secret = str | bytes


def encrypt(data: bytes, timestamp: int) -> str:
    """``data`` compressed when that helps (Django's rule), then encrypted."""
    compressed = zlib.compress(data)
    is_compressed = len(compressed) < len(data) - 1
    if is_compressed:
        data = compressed
    nonce = os.urandom(_NONCE_BYTES)
    plaintext = _HEADER.pack(is_compressed, timestamp) + data
    ciphertext = _ciphers(*_secrets())[0].encrypt(nonce, plaintext, None)
    return ENCRYPTED_PREFIX + b64_encode(nonce + ciphertext).decode()


def decrypt(value: str) -> tuple[bytes, int]:
    """The data and time of encryption in ``value``; else ``BadSignature``."""
    from cryptography.exceptions import InvalidTag

    if not value.startswith(ENCRYPTED_PREFIX):
        raise BadSignature("Session cookie is not encrypted.")
    text = value[len(ENCRYPTED_PREFIX) :]
    try:
        raw = b64_decode(text.encode("ascii"))
    except ValueError as exc:  # binascii.Error, UnicodeEncodeError
        raise BadSignature("Session cookie is not base64.") from exc
    # Refuse any other spelling of the same bytes (stray characters, unused
    # bits): only the exact cookie that was issued is accepted.
    if b64_encode(raw).decode() != text:
        raise BadSignature("Session cookie is not canonical base64.")
    if len(raw) < _NONCE_BYTES + _TAG_BYTES + _HEADER.size:
        raise BadSignature("Session cookie is too short.")
    nonce, ciphertext = raw[:_NONCE_BYTES], raw[_NONCE_BYTES:]
    for cipher in _ciphers(*_secrets()):
        try:
            plaintext = cipher.decrypt(nonce, ciphertext, None)
        except InvalidTag:
            continue
        is_compressed, timestamp = _HEADER.unpack_from(plaintext)
        data = plaintext[_HEADER.size :]
        return (zlib.decompress(data) if is_compressed else data), timestamp
    raise BadSignature("Session cookie does not decrypt.")


def _secrets() -> tuple[Secret, tuple[Secret, ...]]:
    return settings.SECRET_KEY, tuple(settings.SECRET_KEY_FALLBACKS)


@functools.lru_cache(maxsize=8)
def _ciphers(secret: Secret, fallbacks: tuple[Secret, ...]) -> tuple[AESGCM, ...]:
    """AES-256-GCM ciphers, current secret first, keys derived with HKDF."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    def derive(s: Secret) -> bytes:
        hkdf = HKDF(hashes.SHA256(), 32, salt=None, info=_ENCRYPTION_INFO)
        return hkdf.derive(force_bytes(s))

    return tuple(AESGCM(derive(s)) for s in (secret, *fallbacks))

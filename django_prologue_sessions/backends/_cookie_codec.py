"""Turn a session's serialized bytes into a cookie value, and back.

Two formats, both authenticated with ``SECRET_KEY`` or one of
``SECRET_KEY_FALLBACKS``; ``decode()`` reads either, whatever the settings:

- signed: exactly what ``django.core.signing.dumps(data, compress=True,
  salt=SALT)`` makes (``[.]payload:timestamp:signature``), so cookies issued by
  Django's own signed-cookie engine keep working, and the reverse;
- encrypted: ``!`` followed by url-safe base64 of nonce, AES-GCM ciphertext and
  tag, the plaintext holding a compression flag, the timestamp and the data.

Keys are derived once per set of secrets, not once per request.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import os
import struct
import zlib
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.signing import BadSignature
from django.utils.encoding import force_bytes

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

SALT = "django.contrib.sessions.backends.signed_cookies"
ENCRYPTED_PREFIX = "!"
_ENCRYPTION_INFO = b"django_prologue_sessions.signed_cookies.aes-gcm.v1"
_NONCE_BYTES = 12
_TAG_BYTES = 16
# Plaintext header of the encrypted format: compressed flag, signing time.
_HEADER = struct.Struct(">?Q")
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_BASE62_DIGITS = {digit: value for value, digit in enumerate(_BASE62)}
_URLSAFE = bytes.maketrans(b"+/", b"-_")

Secret = str | bytes


def encode(data: bytes, timestamp: int, *, encrypt: bool) -> str:
    """Compress ``data`` when that helps, then sign or encrypt it."""
    compressed = zlib.compress(data)
    # The same rule as django.core.signing, so the signed cookie is the same.
    is_compressed = len(compressed) < len(data) - 1
    if is_compressed:
        data = compressed
    if encrypt:
        return _encrypt(data, is_compressed, timestamp)
    return _sign(data, is_compressed, timestamp)


def decode(value: str) -> tuple[bytes, int]:
    """Return the data and signing time in ``value``; raise ``BadSignature``."""
    if value.startswith(ENCRYPTED_PREFIX):
        data, is_compressed, timestamp = _decrypt(value[1:])
    else:
        data, is_compressed, timestamp = _unsign(value)
    return (zlib.decompress(data) if is_compressed else data), timestamp


def _secrets() -> tuple[Secret, tuple[Secret, ...]]:
    return settings.SECRET_KEY, tuple(settings.SECRET_KEY_FALLBACKS)


# Signed format -------------------------------------------------------------


@functools.lru_cache(maxsize=8)
def _hmac_keys(secret: Secret, fallbacks: tuple[Secret, ...]) -> tuple[bytes, ...]:
    """HMAC-SHA256 keys, current secret first, as ``salted_hmac`` derives them."""
    key_salt = (SALT + "signer").encode()
    return tuple(
        hashlib.sha256(key_salt + force_bytes(s)).digest() for s in (secret, *fallbacks)
    )


def _signature(key: bytes, message: bytes) -> bytes:
    # hmac.digest() is the one-shot C path: no HMAC object per signature.
    return _b64encode(hmac.digest(key, message, "sha256"))


def _sign(data: bytes, is_compressed: bool, timestamp: int) -> str:
    message = b"%s%s:%s" % (
        b"." if is_compressed else b"",
        _b64encode(data),
        _b62encode(timestamp).encode(),
    )
    signature = _signature(_hmac_keys(*_secrets())[0], message)
    return (message + b":" + signature).decode()


def _unsign(value: str) -> tuple[bytes, bool, int]:
    message, _, signature = force_bytes(value).rpartition(b":")
    if not any(
        hmac.compare_digest(signature, _signature(key, message))
        for key in _hmac_keys(*_secrets())
    ):
        raise BadSignature("Session cookie signature does not match.")
    payload, _, timestamp = message.decode().rpartition(":")
    is_compressed = payload.startswith(".")
    data = _b64decode(payload[1:] if is_compressed else payload)
    return data, is_compressed, _b62decode(timestamp)


# Encrypted format ----------------------------------------------------------


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


def _encrypt(data: bytes, is_compressed: bool, timestamp: int) -> str:
    nonce = os.urandom(_NONCE_BYTES)
    plaintext = _HEADER.pack(is_compressed, timestamp) + data
    ciphertext = _ciphers(*_secrets())[0].encrypt(nonce, plaintext, None)
    return ENCRYPTED_PREFIX + _b64encode(nonce + ciphertext).decode()


def _decrypt(value: str) -> tuple[bytes, bool, int]:
    from cryptography.exceptions import InvalidTag

    raw = _b64decode(value)
    # Refuse any other spelling of the same bytes (stray characters, unused
    # bits): only the exact cookie that was issued is accepted.
    if _b64encode(raw).decode() != value:
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
        return plaintext[_HEADER.size :], is_compressed, timestamp
    raise BadSignature("Session cookie does not decrypt.")


# Encodings -----------------------------------------------------------------


def _b64encode(data: bytes) -> bytes:
    # base64.urlsafe_b64encode(data).rstrip(b"="), without its two calls.
    return binascii.b2a_base64(data, newline=False).translate(_URLSAFE).rstrip(b"=")


def _b64decode(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise BadSignature("Session cookie is not base64.") from exc


# The signing time changes once a second: the last few are kept.
@functools.lru_cache(maxsize=4)
def _b62encode(number: int) -> str:
    digits = ""
    while True:
        number, digit = divmod(number, 62)
        digits = _BASE62[digit] + digits
        if not number:
            return digits


def _b62decode(text: str) -> int:
    number = 0
    for digit in text:
        number = number * 62 + _BASE62_DIGITS[digit]
    return number

"""Optional payload encryption: plans, statuses, approvals and failure messages encrypted at rest in Temporal.

Temporal stores every payload (workflow input, activity arguments and results, signal/update/query
payloads, memo, summaries) in its history for the namespace's retention period; with this codec it
stores AES-256-GCM ciphertext instead, and only processes holding the key (worker, starter, the codec
server behind the web UI) can read it. Search attributes (``CutoverPhase``, ``CutoverRecord``) and
names (workflow id, activity types) are never encrypted: Temporal has to index them.

Keys come from the environment, never from a plan:

    CUTOVER_PAYLOAD_KEYS="2026-12=<base64 of 32 bytes>,2026-06=<base64 of 32 bytes>"
    CUTOVER_PAYLOAD_KEYS_FILE=/run/secrets/cutover-payload-keys    # the same text in a file

The first key encrypts; every listed key decrypts (its id is stored with each payload), so a key is
rotated by putting a new one first and dropping the old one once no open run or retained history
needs it. Generate one with ``python -c "import os,base64; print(base64.b64encode(os.urandom(32)).decode())"``.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes, PayloadCodec

ENCODING = b"binary/encrypted"
KEY_ID_METADATA = "encryption-key-id"
KEYS_ENV = "CUTOVER_PAYLOAD_KEYS"
KEYS_FILE_ENV = "CUTOVER_PAYLOAD_KEYS_FILE"
NONCE_BYTES = 12
_KEY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class PayloadKeyError(ValueError):
    """The payload keys are malformed, or a payload was encrypted with a key that is not listed."""


def parse_keys(text: str) -> dict[str, bytes]:
    """``id=base64key,...`` into an ordered mapping (first = current); every problem in one error.

    Never echoes key material: a problem names the entry by its position and id only.
    """
    keys: dict[str, bytes] = {}
    problems: list[str] = []
    entries = [entry.strip() for entry in re.split(r"[,\n]", text) if entry.strip()]
    for position, entry in enumerate(entries, 1):
        key_id, sep, encoded = entry.partition("=")
        key_id = key_id.strip()
        if not sep or not _KEY_ID.fullmatch(key_id):
            problems.append(f"entry {position}: expected <id>=<base64 key> with an id of letters, digits, . _ -")
            continue
        try:
            key = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            problems.append(f"key {key_id!r}: not valid base64")
            continue
        if len(key) != 32:
            problems.append(f"key {key_id!r}: {len(key)} bytes, AES-256 needs 32")
        elif key_id in keys:
            problems.append(f"key {key_id!r}: listed twice")
        else:
            keys[key_id] = key
    if not entries:
        problems.append("no key listed")
    if problems:
        raise PayloadKeyError(f"{KEYS_ENV}: " + "; ".join(problems))
    return keys


def keys_from_env(environ: Mapping[str, str]) -> dict[str, bytes] | None:
    """The payload keys from ``CUTOVER_PAYLOAD_KEYS`` or the file ``CUTOVER_PAYLOAD_KEYS_FILE``; None when unset."""
    text = environ.get(KEYS_ENV)
    path = environ.get(KEYS_FILE_ENV)
    if text and path:
        raise PayloadKeyError(f"set {KEYS_ENV} or {KEYS_FILE_ENV}, not both")
    if path:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise PayloadKeyError(f"{KEYS_FILE_ENV}: cannot read {path}: {exc.strerror}") from None
    return parse_keys(text) if text else None


class EncryptionCodec(PayloadCodec):
    """AES-256-GCM over each serialized payload; the key id travels in the payload's metadata.

    The key id is also the additional authenticated data, so a payload can't be relabelled to another
    key. Payloads that aren't ``binary/encrypted`` pass through on decode: histories written before
    encryption was turned on stay readable.
    """

    def __init__(self, keys: Mapping[str, bytes]) -> None:
        if not keys:
            raise PayloadKeyError("EncryptionCodec needs at least one key")
        self._keys = {key_id: AESGCM(key) for key_id, key in keys.items()}
        self.current_key_id = next(iter(keys))

    def encode_one(self, payload: Payload) -> Payload:
        """Encrypt one payload with the current key."""
        nonce = os.urandom(NONCE_BYTES)
        key_id = self.current_key_id.encode()
        sealed = self._keys[self.current_key_id].encrypt(nonce, payload.SerializeToString(), key_id)
        return Payload(metadata={"encoding": ENCODING, KEY_ID_METADATA: key_id}, data=nonce + sealed)

    def decode_one(self, payload: Payload) -> Payload:
        """Decrypt one payload with the key its metadata names; others pass through."""
        if payload.metadata.get("encoding") != ENCODING:
            return payload
        key_id = payload.metadata.get(KEY_ID_METADATA, b"").decode(errors="replace")
        cipher = self._keys.get(key_id)
        if cipher is None:
            raise PayloadKeyError(
                f"payload encrypted with key {key_id!r}, which is not in {KEYS_ENV} (listed: {', '.join(self._keys)})"
            )
        data = payload.data
        try:
            plain = cipher.decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:], key_id.encode())
        except InvalidTag:
            raise PayloadKeyError(f"payload under key {key_id!r} does not decrypt: wrong key or altered data") from None
        return Payload.FromString(plain)

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Encrypt every payload."""
        return [self.encode_one(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Decrypt every encrypted payload."""
        return [self.decode_one(p) for p in payloads]


def encrypting_converter(codec: EncryptionCodec) -> DataConverter:
    """The pydantic converter with the codec, and failures whose message and stack trace are encoded too.

    Without ``encode_common_attributes`` a failure's message (which may quote a record or a host) would
    stay plaintext in history; with it the message travels as an encrypted payload and reads
    "Encoded failure" to anyone without the key.
    """
    return dataclasses.replace(
        pydantic_data_converter,
        payload_codec=codec,
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )


def data_converter_from_env(environ: Mapping[str, str]) -> DataConverter:
    """The encrypting converter when keys are configured, else the plain pydantic one."""
    keys = keys_from_env(environ)
    return encrypting_converter(EncryptionCodec(keys)) if keys else pydantic_data_converter

"""Secrets Manager: the unsubscribe links' signing keys, and the key of erasure tombstones.

Links live in inboxes for months, so a rotation must not break the ones already sent: deliver signs with the
current version of the secret (``AWSCURRENT``) and unsubscribe accepts the current and the previous one
(``AWSPREVIOUS``). Keys are re-read after ``KEY_TTL_S``, so a rotation reaches warm containers in minutes.
The erasure key is never rotated (a tombstone is found by recomputing its name with it).
"""

from __future__ import annotations

import time

from botocore.exceptions import ClientError

from nextbest.aws import clients as aws

KEY_TTL_S = 300.0
_keys: dict[tuple[str, tuple[str, ...]], tuple[float, list[bytes]]] = {}


def signing_keys(secret_arn: str) -> list[bytes]:
    """The HMAC keys that verify a link, newest first: the current version, then the previous one if any."""
    return _read(secret_arn, ("AWSCURRENT", "AWSPREVIOUS"))


def signing_key(secret_arn: str) -> bytes:
    """The key new links are signed with (the current version): deliver reads only that one."""
    return _read(secret_arn, ("AWSCURRENT",))[0]


def erasure_key(secret_arn: str) -> bytes:
    """The key tombstones are named with (``nextbest.aws.store.table.tombstone``): ingest reads it."""
    return _read(secret_arn, ("AWSCURRENT",))[0]


def _read(secret_arn: str, stages: tuple[str, ...]) -> list[bytes]:
    cached = _keys.get((secret_arn, stages))
    if cached is None or time.monotonic() - cached[0] > KEY_TTL_S:
        cached = (time.monotonic(), [k for k in (_version(secret_arn, stage) for stage in stages) if k])
        _keys[(secret_arn, stages)] = cached
    return cached[1]


def _version(secret_arn: str, stage: str) -> bytes | None:
    try:
        found = aws.client("secretsmanager").get_secret_value(SecretId=secret_arn, VersionStage=stage)
    except ClientError as error:
        if aws.error_code(error) == "ResourceNotFoundException" and stage != "AWSCURRENT":
            return None  # never rotated: there is no previous version
        raise
    return str(found["SecretString"]).encode()

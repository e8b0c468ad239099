"""Secrets Manager: the unsubscribe links' signing key."""

from __future__ import annotations

from functools import cache

from nextbest.aws import clients as aws


@cache
def signing_key(secret_arn: str) -> bytes:
    """The HMAC key, read once per container from Secrets Manager."""
    return str(aws.client("secretsmanager").get_secret_value(SecretId=secret_arn)["SecretString"]).encode()

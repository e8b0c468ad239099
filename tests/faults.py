"""Faults injected into real boto3 clients in front of moto, through botocore's own event hooks, so that the
project's client configuration and botocore's retry logic are what the test exercises, as in AWS."""

import boto3
from botocore.exceptions import ReadTimeoutError
from nextbest.aws import clients


class ResponseLost:
    """Hands the first ``times`` requests of an operation to moto (the write or the send takes effect), then
    raises the read timeout the caller sees instead of moto's answer."""

    def __init__(self, service: str, operation: str, times: int) -> None:
        self.attempts = 0
        self.times = times
        self.event = f"before-send.{service}.{operation}"
        clients.reset()  # clients created from now on carry the hook, whatever their retry configuration
        boto3._get_default_session()._session.register(self.event, self.lose)

    def lose(self, request, event_name, **kwargs):
        from moto.core.models import botocore_stubber

        self.attempts += 1
        if self.attempts > self.times:
            return None  # moto's own handler answers
        botocore_stubber(event_name=event_name, request=request)
        raise ReadTimeoutError(endpoint_url=request.url)

    def remove(self) -> None:
        boto3._get_default_session()._session.unregister(self.event, self.lose)
        clients.reset()

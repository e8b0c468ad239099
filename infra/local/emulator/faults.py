"""Faults AWS really produces, injected into the local emulation at a chosen rate, seeded and reproducible.

**API faults go through botocore's own event system.** :meth:`Faults.install` takes moto's ``before-send``
handler off the session every client is created from and puts :meth:`Faults.before_send` in its place, which
hands each request to moto unless it draws a fault. So the functions' real client configuration
(``nextbest.aws.clients``: standard retries, three attempts, timeouts) and botocore's real retry logic see
exactly what they would see from AWS: an error response (throttling, a cancelled transaction, a 5xx) for a
request that never took effect, or, for a request that did (moto applied it), a read timeout or a 5xx the
caller cannot tell from a failure. Only requests a function makes while it runs draw faults; the emulation's
own plumbing (polling, SES event publishing, schedules firing) stays reliable, as AWS's does.

**SQS faults happen at the event-source mappings** (``event_sources`` asks :class:`Faults` at each step):
a message delivered again after it was processed, a batch handed to a second worker while the first still
runs (its visibility expired), a worker crashing at one of its AWS calls, a message held back and delivered
after later ones, and poison messages put on a queue among the real ones.

**Outages** (:class:`Outage`) fail every request to one operation for a window of the emulated clock: SES
throttling every send for an hour (:func:`ses_throttled`).

Every draw is a hash of the seed, the site and how many draws that site made before (per function and
operation, per mapping), so a run with the same seed injects the same faults at the same places, whatever
moto's random message ids are.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import time
import types
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.awsrequest import AWSResponse
from botocore.exceptions import ReadTimeoutError
from nextbest.core import clock

if TYPE_CHECKING:
    from infra.local.emulator.runtime import LambdaRuntime


class Crash(BaseException):
    """The execution environment died mid-invocation (a timeout, out of memory): a ``BaseException``, so no
    ``except Exception`` in the function catches it, as nothing in a dying process would. The event source
    reports the whole batch as failed, as Lambda does."""


@dataclass(frozen=True)
class ApiFault:
    """One error an AWS API really returns. ``after``: the request reaches AWS (moto applies it) first, then the
    caller gets this; ``timeout``: a read timeout instead of a response."""

    kind: str
    status: int = 0
    code: str = ""
    message: str = ""
    after: bool = False
    timeout: bool = False


DDB_THROTTLE = ApiFault(
    "dynamodb.throttle",
    400,
    "ProvisionedThroughputExceededException",
    "The level of configured provisioned throughput for the table was exceeded.",
)
DDB_THROTTLE_TRANSACTION = ApiFault(
    "dynamodb.throttle", 400, "ThrottlingException", "Rate of requests exceeds the allowed throughput."
)
DDB_TRANSACTION_CONFLICT = ApiFault(
    "dynamodb.transaction_conflict",
    400,
    "TransactionCanceledException",
    "Transaction cancelled, please refer cancellation reasons for specific reasons",
)
DDB_ITEM_CONFLICT = ApiFault(
    "dynamodb.transaction_conflict",
    400,
    "TransactionConflictException",
    "Transaction is ongoing for the item",
)
DDB_INTERNAL = ApiFault("dynamodb.internal_error", 500, "InternalServerError", "Internal server error")
DDB_TIMEOUT = ApiFault("dynamodb.timeout_after_write", after=True, timeout=True)
DDB_READ_TIMEOUT = ApiFault("dynamodb.read_timeout", after=True, timeout=True)


def _sender(service: str, throttle: tuple[int, str], server_error: tuple[int, str]) -> tuple[ApiFault, ...]:
    return (
        ApiFault(f"{service}.throttle", *throttle, "Maximum sending rate exceeded."),
        ApiFault(f"{service}.timeout_after_send", after=True, timeout=True),
        ApiFault(f"{service}.5xx_after_send", *server_error, "Internal failure. Please try your request again.", True),
    )


DDB_WRITE = (DDB_THROTTLE, DDB_ITEM_CONFLICT, DDB_INTERNAL, DDB_TIMEOUT)
CATALOGUE: dict[tuple[str, str], tuple[ApiFault, ...]] = {
    ("dynamodb", "TransactWriteItems"): (DDB_THROTTLE_TRANSACTION, DDB_TRANSACTION_CONFLICT, DDB_INTERNAL, DDB_TIMEOUT),
    ("dynamodb", "PutItem"): DDB_WRITE,
    ("dynamodb", "UpdateItem"): DDB_WRITE,
    ("dynamodb", "DeleteItem"): DDB_WRITE,
    ("dynamodb", "*"): (DDB_THROTTLE, DDB_INTERNAL, DDB_READ_TIMEOUT),
    ("sesv2", "SendEmail"): _sender("ses", (429, "TooManyRequestsException"), (500, "InternalFailure")),
    ("sns", "Publish"): _sender("sns", (429, "Throttled"), (500, "InternalError")),
    ("sns", "*"): (ApiFault("sns.throttle", 429, "Throttled", "Rate exceeded"),),
    ("pinpoint-sms-voice-v2", "SendTextMessage"): _sender(
        "sms", (400, "ThrottlingException"), (500, "InternalServerException")
    ),
    ("pinpoint-sms-voice-v2", "*"): (ApiFault("sms.throttle", 400, "ThrottlingException", "Rate exceeded"),),
    ("scheduler", "*"): (ApiFault("scheduler.throttle", 429, "ThrottlingException", "Rate exceeded"),),
}
"""(botocore service id, operation or ``*``) -> the faults a request to it may draw, one of them uniformly."""

PROTOCOLS = {"dynamodb": "json", "pinpoint-sms-voice-v2": "json", "sesv2": "rest-json", "scheduler": "rest-json"}
"""How each service serialises errors (SNS: the query protocol's XML)."""


@dataclass(frozen=True)
class Outage:
    """Every request a function makes to ``service``'s ``operation`` from ``start`` until ``end`` on the emulated
    clock (``nextbest.core.clock``) gets ``fault``: a provider throttling for an hour, say, whatever the rate."""

    service: str
    operation: str
    fault: ApiFault
    start: datetime
    end: datetime

    def covers(self, service: str, operation: str, at: datetime) -> bool:
        return (service, operation) == (self.service, self.operation) and self.start <= at < self.end


def ses_throttled(start: datetime, end: datetime, daily: bool = False) -> Outage:
    """SES refusing every send for its maximum sending rate (or, ``daily``, its 24-hour quota), as its API does
    ("Errors related to the sending quotas for your Amazon SES account", Amazon SES Developer Guide,
    https://docs.aws.amazon.com/ses/latest/dg/manage-sending-quotas-errors.html)."""
    why = "Daily message quota exceeded." if daily else "Maximum sending rate exceeded."
    return Outage("sesv2", "SendEmail", ApiFault("ses.throttle", 400, "ThrottlingException", why), start, end)


BATCH_FAULTS = ("sqs.crash", "sqs.second_worker")
MESSAGE_FAULTS = ("sqs.duplicate", "sqs.out_of_order")
POISON_SHARE = 0.1
"""Poison messages per poll of a queue with work, as a share of the rate: a few per run, among thousands."""
POISON = (
    "torture-poison-{n}: not JSON {{",
    '{{"torture_poison": {n}}}',
    '{{"torture_poison": {n}, "detail-type": "order.placed", "source": "shop.web", "detail": "not an object"}}',
    '{{"torture_poison": {n}, "detail-type": "coupon.clipped", "source": "shop.web", "detail": {{}}}}',
)
"""Bodies no consumer can use (bad JSON, the wrong shape, an unknown type): each must reach a dead-letter
queue with its reason. Each carries ``torture_poison`` n, to be found there."""
MAX_CALL = 12
"""A crash or a second worker comes at the k-th AWS call of the invocation, k uniform in 1..MAX_CALL (or at its
end, if it makes fewer)."""
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_PROFILE = re.compile(r'(?<=")[ca]:[A-Za-z0-9_-]+(?=")')
"""A customer's or an anonymous session's profile key, quoted in a request or a message body."""


def subjects(text: str, decisions_only: bool = False) -> list[str]:
    """What a request or a message is about, for the trail: the decision ids it names (in DynamoDB, as ``d:`` keys)
    and the profile keys (customers ``c:…``, sessions ``a:…``)."""
    found = re.findall(r"d:(" + _UUID.pattern + ")", text) if decisions_only else _UUID.findall(text)
    return list(dict.fromkeys(found + _PROFILE.findall(text)))


@dataclass
class Plan:
    """What happens to one invocation of a batch: a crash or a second worker at its ``at``-th AWS call."""

    kind: str
    at: int
    function: str
    subjects: list[str]
    """The decision ids the batch's messages name, for the trail."""
    second_worker: Callable[[], None] | None = None
    calls: int = 0
    done: bool = False


@dataclass
class Faults:
    """Seeded fault injection at ``rate``: the probability of a fault at each site (an API request made by a
    function, a batch, a message received, a poll of a queue with work, scaled by ``POISON_SHARE``)."""

    rate: float
    seed: int = 7
    kinds: frozenset[str] | None = None
    """Only these kinds (``dynamodb.throttle``, ``sqs.duplicate``…); None: all of them."""
    outages: list[Outage] = field(default_factory=list)
    """Time windows in which a provider fails every request (:class:`Outage`), besides the drawn faults."""
    injected: Counter[str] = field(default_factory=Counter)
    """What was injected, by kind."""
    trail: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    """Decision id or profile key -> what happened to the requests and messages naming it: ``function:kind:Operation``
    of each fault injected, ``function:sqs.crash@Operation``, ``function:record_failed``…"""
    poison: list[tuple[int, str]] = field(default_factory=list)
    """(n, queue URL) of every poison message put on a queue."""
    retry_sleep_s: float = 0.0
    """What botocore's retries would have slept, which the emulation's compressed time skips."""
    retry_quota_empty: int = 0
    """Error responses a function got without botocore retrying them, because the client's retry quota (standard
    mode's token bucket) was empty."""
    runtime: LambdaRuntime | None = None
    _draws: Counter[tuple[str, ...]] = field(default_factory=Counter)
    _plans: list[Plan | None] = field(default_factory=list)
    _duplicated: set[str] = field(default_factory=set)
    _stubber: Any = None
    _saved_time: Any = None

    # -- installing ------------------------------------------------------------------------------------

    def install(self, session: Any, runtime: LambdaRuntime) -> None:
        """Stand between the clients created from ``session`` (a boto3 session) and moto; call it before any
        client exists (a client copies its session's handlers when it is created)."""
        from moto.core.models import botocore_stubber

        self.runtime, self._stubber = runtime, botocore_stubber
        session.events.unregister("before-send", botocore_stubber)
        session.events.register("before-send", self.before_send)
        session.events.register("after-call", self._after_call)
        self._compress_retry_sleeps()

    def uninstall(self) -> None:
        """Give botocore its sleep back (the session and its clients go with the emulation)."""
        import botocore.endpoint

        if self._saved_time is not None:
            botocore.endpoint.time = self._saved_time  # type: ignore[attr-defined]
            self._saved_time = None

    def _compress_retry_sleeps(self) -> None:
        """botocore sleeps between attempts (jittered, up to seconds); the emulation's time is compressed, as it
        is for SQS visibility timeouts, so the sleep is counted, not slept."""
        import botocore.endpoint

        if self._saved_time is not None:
            return
        self._saved_time = botocore.endpoint.time  # type: ignore[attr-defined]

        def sleep(seconds: float) -> None:
            self.retry_sleep_s += seconds

        botocore.endpoint.time = types.SimpleNamespace(sleep=sleep, time=time.time)  # type: ignore[attr-defined]

    # -- drawing ---------------------------------------------------------------------------------------

    def enabled(self, kind: str) -> bool:
        return self.kinds is None or kind in self.kinds

    def draw(self, *site: str) -> float:
        """The next uniform draw at ``site``: a hash of the seed, the site and the draws it made before."""
        self._draws[site] += 1
        digest = hashlib.sha256(f"{self.seed}|{'|'.join(site)}|{self._draws[site]}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64

    def choose(self, options: tuple[Any, ...], *site: str) -> Any | None:
        """One of ``options`` with probability ``rate`` (uniformly among them), else None."""
        if not options or self.rate <= 0 or self.draw(*site, "hit") >= self.rate:
            return None
        return options[min(int(self.draw(*site, "which") * len(options)), len(options) - 1)]

    # -- API faults ------------------------------------------------------------------------------------

    def before_send(self, event_name: str, request: Any, **kwargs: Any) -> AWSResponse | None:
        """botocore's ``before-send``: moto's answer, unless this request draws a fault."""
        function = self.runtime.current if self.runtime is not None else None
        if function is None:
            return self._stubber(event_name, request, **kwargs)  # type: ignore[no-any-return]
        _, service, operation = event_name.split(".", 2)
        self._interrupt(operation)
        options = CATALOGUE.get((service, operation)) or CATALOGUE.get((service, "*"), ())
        fault = self._outage(service, operation) or self.choose(
            tuple(f for f in options if self.enabled(f.kind)), function.name, service, operation
        )
        if fault is None:
            return self._stubber(event_name, request, **kwargs)  # type: ignore[no-any-return]
        self.injected[fault.kind] += 1
        self._note(request, f"{function.name}:{fault.kind}:{operation}", service)
        if fault.after:
            self._stubber(event_name, request, **kwargs)
            if fault.timeout:
                raise ReadTimeoutError(endpoint_url=request.url)
        return error_response(service, fault, request)

    def _outage(self, service: str, operation: str) -> ApiFault | None:
        now = clock.now()
        return next((o.fault for o in self.outages if o.covers(service, operation, now)), None)

    def _after_call(self, parsed: dict[str, Any], **kwargs: Any) -> None:
        if parsed.get("ResponseMetadata", {}).get("RetryQuotaReached"):
            self.retry_quota_empty += 1

    def _note(self, request: Any, what: str, service: str) -> None:
        body = request.body.decode() if isinstance(request.body, bytes) else str(request.body or "")
        self._follow(subjects(body, decisions_only=service == "dynamodb"), what)

    def _follow(self, about: list[str], what: str) -> None:
        for subject in about:
            self.trail[subject].append(what)

    def failed(self, function: str, bodies: list[str]) -> None:
        """Records a batch's invocation reported failed (SQS delivers them again), for the trail."""
        for body in bodies:
            self._follow(subjects(body), f"{function}:record_failed")

    # -- SQS faults ------------------------------------------------------------------------------------

    def plan(self, mapping: str, bodies: list[str], second_worker: Callable[[], None]) -> Plan | None:
        """Whether this batch's worker crashes, or a second worker gets the batch, and at which AWS call."""
        kind = self.choose(tuple(k for k in BATCH_FAULTS if self.enabled(k)), mapping, "batch")
        if kind is None:
            return None
        self.injected[kind] += 1
        at = 1 + int(self.draw(mapping, "batch", "at") * MAX_CALL)
        about = [s for body in bodies for s in subjects(body)]
        return Plan(kind, at, mapping, about, second_worker if kind == "sqs.second_worker" else None)

    @contextlib.contextmanager
    def invocation(self, plan: Plan | None) -> Iterator[Plan | None]:
        """The invocation ``plan`` is for (None: an invocation left alone, such as a second worker's)."""
        self._plans.append(plan)
        try:
            yield plan
        finally:
            self._plans.pop()

    def finish(self, plan: Plan | None) -> None:
        """What the plan still holds once the function returned: it crashed (or a second worker came) at the end."""
        if plan is not None and not plan.done:
            plan.calls = plan.at - 1
            self._interrupt("return")

    def _interrupt(self, operation: str) -> None:
        """Crash, or let the second worker run, if this is the invocation's planned AWS call (before it is sent)."""
        plan = self._plans[-1] if self._plans else None
        if plan is None or plan.done:
            return
        plan.calls += 1
        if plan.calls < plan.at:
            return
        plan.done = True
        self._follow(plan.subjects, f"{plan.function}:{plan.kind}@{operation}")
        if plan.second_worker is not None:
            plan.second_worker()
        else:
            raise Crash(f"crashed before AWS call {plan.at} ({operation})")

    def message_fault(self, mapping: str, message_id: str, body: str = "") -> str | None:
        """``sqs.duplicate`` (deliver it again once processed), ``sqs.out_of_order`` (hold it back) or None;
        a message is duplicated at most once."""
        kind = self.choose(tuple(k for k in MESSAGE_FAULTS if self.enabled(k)), mapping, "message")
        if kind == "sqs.duplicate":
            if message_id in self._duplicated:
                return None
            self._duplicated.add(message_id)
        if kind is not None:
            self.injected[kind] += 1
            self._follow(subjects(body), f"{mapping}:{kind}")
        return kind  # type: ignore[no-any-return]

    def poison_body(self, mapping: str, queue_url: str) -> str | None:
        """A poison message to put on the queue before this poll, or None."""
        if not self.enabled("sqs.poison") or self.draw(mapping, "poison") >= self.rate * POISON_SHARE:
            return None
        n = len(self.poison) + 1
        self.poison.append((n, queue_url))
        self.injected["sqs.poison"] += 1
        return POISON[int(self.draw(mapping, "poison", "which") * len(POISON)) % len(POISON)].format(n=n)


def poison_number(body: str) -> int | None:
    """The ``n`` of a poison body (:data:`POISON`), or None for a real message."""
    found = re.search(r"torture[-_]poison\W+(\d+)", body)
    return int(found.group(1)) if found else None


def error_response(service: str, fault: ApiFault, request: Any) -> AWSResponse:
    """The HTTP response AWS sends for ``fault``, in the service's protocol, for botocore to parse."""
    from moto.core.botocore_stubber import MockRawResponse

    request_id = str(uuid.uuid4())
    protocol = PROTOCOLS.get(service, "query")
    if protocol == "json":
        body: dict[str, Any] = {"__type": f"com.amazonaws.{service}#{fault.code}", "message": fault.message}
        if fault.code == "TransactionCanceledException":
            body |= _cancellation(request, fault)
        headers = {"Content-Type": "application/x-amz-json-1.0", "x-amzn-RequestId": request_id}
        raw = json.dumps(body)
    elif protocol == "rest-json":
        headers = {"Content-Type": "application/json", "x-amzn-ErrorType": fault.code, "x-amzn-RequestId": request_id}
        raw = json.dumps({"message": fault.message})
    else:
        kind = "Sender" if fault.status < 500 else "Receiver"
        headers = {"Content-Type": "text/xml", "x-amzn-RequestId": request_id}
        raw = (
            f"<ErrorResponse><Error><Type>{kind}</Type><Code>{fault.code}</Code><Message>{fault.message}</Message>"
            f"</Error><RequestId>{request_id}</RequestId></ErrorResponse>"
        )
    return AWSResponse(request.url, fault.status, headers, MockRawResponse(raw))  # type: ignore[arg-type]


def _cancellation(request: Any, fault: ApiFault) -> dict[str, Any]:
    """A transaction cancelled because another one held one of its items: ``TransactionConflict`` on the first
    item, ``None`` on the others, as DynamoDB lists them."""
    items = len(json.loads(request.body).get("TransactItems", [])) or 1
    reasons: list[dict[str, str]] = [{"Code": "TransactionConflict", "Message": fault.message}]
    reasons += [{"Code": "None"}] * (items - 1)
    codes = ", ".join(r["Code"] for r in reasons)
    return {"Message": f"{fault.message} [{codes}]", "CancellationReasons": reasons}

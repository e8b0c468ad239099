"""What every step gets: the runtime layer, the same Lambda defaults and work queues with a dead-letter queue."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct
from nextbest.core.settings import MAX_RECEIVE_COUNT, StageSettings

from infra import assets
from infra.constructs.profile_store import TableAccess

METRICS_NAMESPACE = "nextbest"
"""CloudWatch namespace of every function's EMF metrics; the alarms and dashboard read it (``observability``)."""


class ContextError(ValueError):
    """The app's context is missing or wrong; the message says which key and how to give it (``cdk synth`` prints
    it as one line and exits 2: ``infra.app``)."""


def context_number(scope: Construct, key: str, default: float) -> float:
    """A number given as context (``-c key=value``), or ``default``; anything else is refused naming the key."""
    given = scope.node.try_get_context(key)
    if given is None or given == "":
        return default
    try:
        return float(given)
    except (TypeError, ValueError):
        raise ContextError(f"context {key}={given!r}: give a number") from None


class Shared(Construct):
    """The runtime layer and the Lambda defaults every step's function is built with (its code carries the
    ``nextbest`` modules it imports, see ``assets.function_code``)."""

    def __init__(self, scope: Construct, id: str) -> None:
        super().__init__(scope, id)
        self.layers = [
            lambda_.LayerVersion(
                self,
                "RuntimeLayer",
                code=assets.runtime_layer_code(),
                compatible_runtimes=[assets.RUNTIME],
                compatible_architectures=[lambda_.Architecture.ARM_64],
                description="Powertools, pydantic and jinja2 for arm64",
            ),
        ]

    def function(
        self,
        scope: Construct,
        step: str,
        settings: type[StageSettings],
        *,
        table: dynamodb.Table,
        table_access: TableAccess,
        queues: list[sqs.Queue],
        dead_letters: sqs.Queue | None,
        timeout: cdk.Duration,
        memory: int = 512,
        code: lambda_.Code | None = None,
        extra_layers: tuple[lambda_.ILayerVersion, ...] = (),
        reserved_concurrency: int | None = None,
        **values: object,
    ) -> lambda_.Function:
        """The function of one pipeline step, consuming its queues, with the grants every step needs and the
        table actions it calls (``table_access``).

        Its environment is built from the step's settings model (``nextbest.core.settings``), the same one the
        handler reads back, so a missing or misspelt setting fails the synth rather than a cold start.
        """
        if dead_letters is not None:
            values["dead_letter_queue_url"] = dead_letters.queue_url
        function = lambda_.Function(
            scope,
            "Function",
            description=f"nextbest {step}",
            runtime=assets.RUNTIME,
            architecture=lambda_.Architecture.ARM_64,
            handler="handler.handler",
            code=code or assets.function_code(step),
            layers=[*self.layers, *extra_layers],
            timeout=timeout,
            memory_size=memory,
            reserved_concurrent_executions=reserved_concurrency,
            tracing=lambda_.Tracing.ACTIVE,
            logging_format=lambda_.LoggingFormat.JSON,
            log_group=logs.LogGroup(
                scope, "Logs", retention=logs.RetentionDays.ONE_MONTH, removal_policy=cdk.RemovalPolicy.DESTROY
            ),
            environment=_environment(step, settings.environment(table_name=table.table_name, **values)),
        )
        for queue in queues:
            consume(function, queue)
        table_access.grant(table, function)
        if dead_letters is not None:
            dead_letters.grant_send_messages(function)
        return function


def consume(function: lambda_.Function, queue: sqs.Queue, max_concurrency: int | None = None) -> None:
    """The function's event source mapping on ``queue``: batches of 10, partial batch responses, and at most
    ``max_concurrency`` invocations at once (``ScalingConfig.MaximumConcurrency``; None: Lambda's own scaling)."""
    function.add_event_source(
        sources.SqsEventSource(queue, batch_size=10, report_batch_item_failures=True, max_concurrency=max_concurrency)
    )


def _environment(step: str, settings: dict[str, str]) -> dict[str, str]:
    return {
        "POWERTOOLS_SERVICE_NAME": step,
        "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
        "POWERTOOLS_LOG_LEVEL": "INFO",
        **settings,
    }


def work_queue(scope: Construct, id: str, consumer_timeout: cdk.Duration) -> tuple[sqs.Queue, sqs.Queue]:
    """A queue and its dead-letter queue. Visibility is 6 times the consumer's timeout, as AWS advises for
    Lambda event sources, so a slow batch is never handed to a second consumer while the first runs."""
    dlq = sqs.Queue(
        scope,
        f"{id}DeadLetters",
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        retention_period=cdk.Duration.days(14),
    )
    queue = sqs.Queue(
        scope,
        id,
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        visibility_timeout=cdk.Duration.seconds(consumer_timeout.to_seconds() * 6),
        retention_period=cdk.Duration.days(4),
        dead_letter_queue=sqs.DeadLetterQueue(queue=dlq, max_receive_count=MAX_RECEIVE_COUNT),
    )
    return queue, dlq

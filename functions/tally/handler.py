"""λ tally: the table's stream (decision changes, order credits) → the campaigns' statistics, exactly once."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from nextbest.aws.store import Store
from nextbest.aws.store.stream import change
from nextbest.core import clock
from nextbest.core.settings import TallySettings
from nextbest.tally.service import fold

settings = TallySettings.from_env()
logger = Logger()
metrics = Metrics()
store = Store(settings.table_name)


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """One batch of one shard. The mapping's tumbling window is what names the shard (``shardId``); the window's
    state is not used (the counts are written every batch), but a response without ``state`` would be a failure."""
    records = event.get("Records", [])
    written = fold(store, event["shardId"], [change(r) for r in records], clock.now())
    metrics.add_metric(name="Tally_records", unit=MetricUnit.Count, value=len(records))
    metrics.add_metric(name="Tally_counts", unit=MetricUnit.Count, value=written)
    return {"state": {}, "batchItemFailures": []}

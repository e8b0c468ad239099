"""One construct per capability of the pipeline, named after its step; the stack only wires them together."""

from infra.constructs.decide import Decide
from infra.constructs.deliver import Deliver
from infra.constructs.feedback import Feedback, FeedbackTopics
from infra.constructs.ingest import Ingest
from infra.constructs.profile_store import ProfileStore
from infra.constructs.shared import MAX_RECEIVE_COUNT, METRICS_NAMESPACE, Shared, consume, work_queue
from infra.constructs.tally import Tally
from infra.constructs.unsubscribe import Unsubscribe

__all__ = [
    "MAX_RECEIVE_COUNT",
    "METRICS_NAMESPACE",
    "Decide",
    "Deliver",
    "Feedback",
    "FeedbackTopics",
    "Ingest",
    "ProfileStore",
    "Shared",
    "Tally",
    "Unsubscribe",
    "consume",
    "work_queue",
]

"""confluent-kafka (librdkafka) clients: the idempotent producer, and topic administration.

faust and aiokafka still run the agents and the consumers; what writes to a topic from outside
a worker (``streamer produce``, dead-letter replays) and what creates topics goes through here.
"""

from streamer.kafka.admin import TopicsReport, create_missing_topics
from streamer.kafka.producer import (
    DeliveryError,
    Failure,
    Producer,
    ProducerPolicy,
    Record,
    produce,
)

__all__ = [
    "DeliveryError",
    "Failure",
    "Producer",
    "ProducerPolicy",
    "Record",
    "TopicsReport",
    "create_missing_topics",
    "produce",
]

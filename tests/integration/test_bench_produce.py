"""``streamer bench produce`` runs on the real stack and reports every figure it promises.

A small run: it checks the harness (both clients, JSON, clean-up), not the speed, which the
benchmark measures and prints, never a test.
"""

import json
import os
import subprocess
import sys

import pytest
from confluent_kafka.admin import AdminClient

from streamer.config.settings import Settings, settings_env
from streamer.kafka.client import BrokerErrors, client_config, wait_reachable

pytestmark = pytest.mark.integration


def test_the_produce_bench_reports_both_clients(stack: Settings) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "streamer", "bench", "produce", "--messages", "2000",
         "--rounds", "2", "--json"],
        env={**os.environ, **settings_env(stack)},
        capture_output=True,
        timeout=300,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    figures = json.loads(done.stdout.decode().strip().splitlines()[-1])
    assert figures["messages"] == 2000 and figures["rounds"] == 2
    for client in ("confluent", "aiokafka"):
        assert figures[f"produce_{client}_msgs_per_s"] > 0
        assert figures[f"produce_{client}_start_s"] > 0
    assert figures["produce_confluent_over_aiokafka"] > 0
    assert {c: len(r) for c, r in figures["produce_msgs_per_s_by_round"].items()} == {
        "confluent-kafka": 2,
        "aiokafka": 2,
    }
    assert figures["broker"] == stack.kafka.bootstrap_servers
    errors = BrokerErrors()
    metadata = wait_reachable(
        AdminClient(client_config(stack.kafka, errors)), errors, stack.kafka, timeout_s=10
    )
    assert not [t for t in metadata.topics if t.startswith("bench.produce.")]  # cleaned up

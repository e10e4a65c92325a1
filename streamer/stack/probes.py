"""Whether a server of the stack answers: asked by the stack while it starts them, and by
whoever waits for one."""

from __future__ import annotations

__all__ = ["milvus_answers"]


def milvus_answers(uri: str) -> bool:
    """Whether a Milvus (milvus-lite's server or a real one) at ``uri`` answers a call."""
    from pymilvus import MilvusClient

    from streamer.config.logs import adopt_pymilvus_loggers

    adopt_pymilvus_loggers()

    try:
        client = MilvusClient(uri=uri, timeout=3)
    except Exception:
        return False
    try:
        client.list_collections()
        return True
    except Exception:
        return False
    finally:
        client.close()

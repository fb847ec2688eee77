"""gRPC threads kept busy in this process, as labgrid's client keeps them during a fleet or a HIL session: a
fork() with Python in the child then crashes it (gRPC's atfork handlers), which launches and probes must survive."""
from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from concurrent import futures

import pytest


@contextlib.contextmanager
def busy_grpc_threads(count: int = 3) -> Iterator[None]:
    grpc = pytest.importorskip("grpc", reason="grpc comes with the [lab] extra (labgrid)")
    server = grpc.server(futures.ThreadPoolExecutor(2))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    stop = threading.Event()

    def keep_calling() -> None:
        while not stop.is_set():
            ready = grpc.channel_ready_future(channel)  # what labgrid's client does: wait for the channel, call
            try:
                ready.result(timeout=0.05)
                channel.unary_unary("/formicary.Test/Nothing")(b"", timeout=0.01)
            except (grpc.RpcError, grpc.FutureTimeoutError):
                pass
            finally:
                ready.cancel()

    threads = [threading.Thread(target=keep_calling, daemon=True) for _ in range(count)]
    for t in threads:
        t.start()
    try:
        yield
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=5)
        server.stop(None)  # the channel is left to the GC: closing it races the cancelled futures' poll threads

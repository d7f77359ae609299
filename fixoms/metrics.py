"""Prometheus metrics on a local port ([metrics] port, bound to 127.0.0.1): orders in, rejects by
reason, fills, the ack latency (a NewOrderSingle received -> its first ExecutionReport sent), the engine's
batch latency (a batch taken -> its answers sent), journal commit time, and sessions up."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from oms import commands as c
from oms import events as ev
from oms.engine import BatchStats

_LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)

# The client requests counted by kind (their class names are the label), of them the orders.
_REQUESTS = (c.NewOrder, c.InvalidOrder, c.CancelOrder, c.ReplaceOrder, c.StatusRequest, c.MassCancel, c.MassStatus)
_ORDERS = (c.NewOrder, c.InvalidOrder)


class _Counts(Collector):
    """The counters, kept as plain ints by the engine thread (`Metrics.observe`, once per batch) and read
    when Prometheus scrapes. A prometheus_client Counter takes a lock at every `inc`, and `labels` looks its
    child up every time: about 3% of the engine thread at 500 orders/s, for figures read every few seconds.
    An int read by the scraping thread while the engine thread adds to it is either value: both are true."""

    def __init__(self) -> None:
        self.requests: dict[str, int] = {}
        self.rejects: dict[str, int] = {}
        self.fills = 0

    def collect(self) -> Iterator[CounterMetricFamily]:
        requests = dict(self.requests)
        yield CounterMetricFamily("fixoms_orders", "NewOrderSingle requests received",
                                  value=sum(requests.get(t.__name__, 0) for t in _ORDERS))
        by_kind = CounterMetricFamily("fixoms_requests", "client requests by kind", labels=["kind"])
        for kind, n in sorted(requests.items()):
            by_kind.add_metric([kind], n)
        yield by_kind
        rejects = CounterMetricFamily("fixoms_rejects", "orders rejected, by OrdRejReason", labels=["reason"])
        for reason, n in sorted(dict(self.rejects).items()):
            rejects.add_metric([reason], n)
        yield rejects
        yield CounterMetricFamily("fixoms_fills", "venue fills applied", value=self.fills)


class Metrics:
    def __init__(self, sessions_up: Callable[[], tuple[int, int]]) -> None:
        self.registry = CollectorRegistry()
        self.counts = _Counts()
        self.registry.register(self.counts)
        self.batch = Histogram("fixoms_batch_seconds", "engine batch: taken from the queue -> answers sent",
                               buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.commit = Histogram("fixoms_journal_commit_seconds", "journal group commit",
                                buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.ack = Histogram("fixoms_ack_seconds", "NewOrderSingle received -> its first ExecutionReport sent "
                             "(New or Rejected), queue wait and journal commit included",
                             buckets=_LATENCY_BUCKETS, registry=self.registry)
        up = Gauge("fixoms_sessions_up", "FIX sessions logged on", ["role"], registry=self.registry)
        up.labels("client").set_function(lambda: sessions_up()[0])
        up.labels("venue").set_function(lambda: sessions_up()[1])
        self.port = 0

    def observe(self, stats: BatchStats) -> None:
        """A committed batch (the engine thread's `observer`)."""
        counts = self.counts
        requests = counts.requests
        for cmd in stats.commands:
            if isinstance(cmd, _REQUESTS):
                kind = type(cmd).__name__
                requests[kind] = requests.get(kind, 0) + 1
        for e in stats.events:
            if isinstance(e, ev.ChildFilled):
                counts.fills += 1
            elif isinstance(e, ev.OrderRejected):
                self._reject(str(int(e.reason)))
            elif isinstance(e, ev.RequestRefused) and e.msg_type == "D":
                self._reject("duplicate_or_invalid")
        self.batch.observe(stats.batch_seconds)
        self.commit.observe(stats.commit_seconds)

    def _reject(self, reason: str) -> None:
        rejects = self.counts.rejects
        rejects[reason] = rejects.get(reason, 0) + 1

    def serve(self, port: int) -> Any:
        """Start the HTTP endpoint on 127.0.0.1 (port 0: any free port; the chosen one is in .port)."""
        server, _thread = start_http_server(port, addr="127.0.0.1", registry=self.registry)
        self.port = int(server.server_address[1])
        return server

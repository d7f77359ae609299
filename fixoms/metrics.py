"""Prometheus metrics on a local port ([metrics] port, bound to 127.0.0.1): orders in, rejects by
reason, fills, the ack latency (a NewOrderSingle received -> its first ExecutionReport sent), the engine's
batch latency (a batch taken -> its answers sent), journal commit time, and sessions up."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from oms import commands as c
from oms import events as ev
from oms.engine import BatchStats

_LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class Metrics:
    def __init__(self, sessions_up: Callable[[], tuple[int, int]]) -> None:
        self.registry = CollectorRegistry()
        self.orders = Counter("fixoms_orders", "NewOrderSingle requests received", registry=self.registry)
        self.requests = Counter("fixoms_requests", "client requests by kind", ["kind"], registry=self.registry)
        self.rejects = Counter("fixoms_rejects", "orders rejected, by OrdRejReason", ["reason"],
                               registry=self.registry)
        self.fills = Counter("fixoms_fills", "venue fills applied", registry=self.registry)
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
        for cmd in stats.commands:
            if isinstance(cmd, c.NewOrder | c.InvalidOrder):
                self.orders.inc()
            if isinstance(cmd, c.NewOrder | c.InvalidOrder | c.CancelOrder | c.ReplaceOrder | c.StatusRequest
                          | c.MassCancel | c.MassStatus):
                self.requests.labels(type(cmd).__name__).inc()
        for e in stats.events:
            if isinstance(e, ev.OrderRejected):
                self.rejects.labels(str(int(e.reason))).inc()
            elif isinstance(e, ev.RequestRefused) and e.msg_type == "D":
                self.rejects.labels("duplicate_or_invalid").inc()
            elif isinstance(e, ev.ChildFilled):
                self.fills.inc()
        self.batch.observe(stats.batch_seconds)
        self.commit.observe(stats.commit_seconds)

    def serve(self, port: int) -> Any:
        """Start the HTTP endpoint on 127.0.0.1 (port 0: any free port; the chosen one is in .port)."""
        server, _thread = start_http_server(port, addr="127.0.0.1", registry=self.registry)
        self.port = int(server.server_address[1])
        return server

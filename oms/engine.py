"""The engine loop (the runner): the one thread that owns order state.

QuickFIX threads and the admin socket only `submit` immutable commands. The loop drains everything
queued, lets the decider (oms.decider) decide the batch, appends it to the journal once (group commit),
and only then sends what the batch produced (durable before visible). Recovery, retries after a failed
append and the ticker live here too.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import queue
import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from oms import commands as c
from oms import events as ev
from oms.decider import Decider, Decision, EngineConfig, _refusal
from oms.enums import (
    OrdRejReason,
)
from oms.fastinit import fast_init
from oms.lazymap import LoadingDict
from oms.model import Order
from oms.ports import ClientGateway, FixEdge, JournalPort, Router, VenueConnector, send_to_venue
from oms.reports import (
    CancelReject,
    ExecutionReport,
    MassCancelReport,
    Outbound,
)

log = logging.getLogger(__name__)

MAX_BATCH = 2000
# A batch that sends nothing (a venue's acknowledgement of a child, say) need not be durable before anything:
# its records ride on the next append, or are appended on their own after this long (Engine._deferred).
DEFER_S = 0.02
_STOP = object()


@fast_init  # one a batch: see oms.fastinit
@dataclass(frozen=True, slots=True)
class BatchStats:
    """What one committed batch did, for metrics: its commands, its events, the journal commit time and
    the time from taking the batch to having sent everything it produced."""

    commands: list[Any]
    events: list[ev.Event]
    commit_seconds: float
    batch_seconds: float



class Engine(Decider):
    def __init__(
        self,
        journal: JournalPort,
        router: Router,
        gateway: ClientGateway,
        venues: dict[str, VenueConnector],
        config: EngineConfig,
    ) -> None:
        super().__init__(router, config)
        self.journal = journal
        self.gateway = gateway
        self.venues = venues
        self.inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        # The FIX edges whose inboxes the engine thread reads itself and whose outboxes it hands its sends
        # to (set before start); with any, `submit` from another thread wakes it through a socket pair,
        # since it waits in select, not on the queue.
        self.edges: list[FixEdge] = []
        self._wake: tuple[socket.socket, socket.socket] | None = None
        self._owner = 0  # the engine thread's ident
        self._resend: list[Outbound] = []
        # Batches decided that sent nothing and are not journaled yet: their commands and decisions, and
        # when the first was decided (the runner appends them with the next batch, or after DEFER_S).
        self._deferred: list[tuple[list[Any], Decision]] = []
        self._deferred_at = 0.0
        self._ticker_stop = threading.Event()
        # True after a failed commit until the journal could be read again: memory then holds the
        # failed batch's changes, so nothing may be decided on it (see _commit_failed).
        self._stale = False
        self._thread: threading.Thread | None = None
        # Set once recover() finished (see start(wait=False)); the error if it failed.
        self._recovered = threading.Event()
        self._recovery_error: BaseException | None = None
        self.batches = 0
        # Called after each committed batch (tests and the admin socket use it to observe progress).
        self.on_batch: Callable[[int], None] | None = None
        self.observer: Callable[[BatchStats], None] | None = None
        # The CPUs the engine thread runs on (empty: wherever the OS puts it). Set before start.
        self.cpus: frozenset[int] = frozenset()
        # Called on the engine thread after each batch (False) and when it is about to wait for work (True):
        # where the process's garbage collection runs (fixoms.collector), not in the middle of a batch.
        self.housekeeping: Callable[[bool], None] | None = None

    # --- lifecycle ---------------------------------------------------------------------------
    def recover(self) -> None:
        """Rebuild in-memory state from the journal's projections.

        Only working orders are loaded (a restart's time grows with them, not with the journal). A
        finished order stays in the journal until something names it - a client's ClOrdID or OrderID, a
        venue's ClOrdID of one of its children - and the lookup maps read it then, on this thread, with
        its children and executions (`_load_order`): so a cancel of a filled order is still "too late",
        a reused ClOrdID still a duplicate, a venue's repeated ExecID still ignored and a bust still
        reopens the order. Scans over `self.orders` see the working orders (and those read back), which
        is all they look for."""
        state = self.journal.load_open()
        self.orders = LoadingDict(self._load_order)
        self.orders.update(state.orders)
        # Every ClOrdID is in memory (each new order checks its own for a duplicate: a miss is the rule,
        # and must not cost a journal read); finished orders are read back by the order id it maps to.
        self.by_cl_ord_id = state.cl_ord_ids
        self.by_child = LoadingDict(self._load_child)
        self.venue_exec_ids = state.venue_exec_ids
        # Committed but perhaps never sent before the last stop: send again, marked PossResend.
        self._resend = [dataclasses.replace(m, poss_resend=True) for m in state.unsent]
        self.fills = state.fills
        self._seq = state.max_seq
        self.held = {}
        self._gtd = []
        self._tca_done = set()
        for order in self.orders.values():
            if order.held and not order.is_terminal:
                self.held.setdefault(order.symbol, set()).add(order.order_id)
            self._watch_expiry(order)
            self._file(order)
        if self.risk is not None:
            for change in state.risk_changes:
                try:
                    if isinstance(change, ev.TradingStateChanged):
                        self.risk.set_state(change.scope, change.after, change.who, change.reason)
                    elif isinstance(change, ev.RiskLimitChanged):
                        self.risk.set_limit(change.account, change.name, change.after)
                except ValueError as exc:
                    log.error("journaled risk change %r no longer applies: %s", change, exc)
            self.risk.rebuild(self.orders.values(), state.finished_fills)
        for order_id in state.in_doubt_orders:
            # Finished, but a child's fate is still its venue's to tell (reconciliation asks on logon).
            self.orders.get(order_id)
        log.info("recovered %d working orders", len(self.orders))

    # --- finished orders, read back from the journal when named (see recover) ----------------------
    def _load_order(self, order_id: str) -> Order | None:
        loaded = self.journal.load_order(order_id)
        if loaded is None:
            return None
        order = loaded.order
        self.orders[order_id] = order
        self._file(order)
        self.venue_exec_ids.update(loaded.venue_exec_ids)
        for key, fill in loaded.fills.items():
            self.fills.setdefault(key, fill)
        if order.is_terminal:
            # As at a restart that loaded it: finished before, so no second TCA if it changes again.
            self._tca_done.add(order_id)
            if self.risk is not None:
                self.risk.restore(order)
        log.info("read finished order %s back from the journal", order_id)
        return order

    def _load_child(self, venue_cl_ord_id: str) -> tuple[str, str] | None:
        order_id = self.journal.order_id_of_child(venue_cl_ord_id)
        if order_id is None or self.orders.get(order_id) is None:
            return None
        # what _load_order filed, without asking the journal again (a LoadingDict is a dict)
        return dict.get(cast(dict[str, tuple[str, str]], self.by_child), venue_cl_ord_id)

    def start(self, wait: bool = True) -> None:
        """Recover, then run the engine thread.

        wait=False: return at once and recover on the engine thread itself, before it takes anything
        from the queue. Commands submitted meanwhile (a session's logon and messages, venue reports)
        wait there and are handled after recovery and after the resend of the last batch, in the order
        they came, so nothing is decided on half-recovered state. `wait_recovered` waits for it and
        raises if recovery failed (the thread then has stopped without handling anything)."""
        self._recovered.clear()
        self._recovery_error = None
        if self.edges and self._wake is None:
            reader, writer = socket.socketpair()
            reader.setblocking(False)
            writer.setblocking(False)
            self._wake = (reader, writer)
        if wait:
            self.recover()
            self._recovered.set()
        self._thread = threading.Thread(target=self._thread_main, args=(not wait,), name="oms-engine", daemon=True)
        self._thread.start()
        if self.config.tick_s > 0:
            self._ticker_stop.clear()
            threading.Thread(target=self._tick_loop, name="oms-ticker", daemon=True).start()

    def _thread_main(self, recover: bool) -> None:
        """The engine thread: on `cpus` only, if set (between two orders other work runs on a core and
        replaces what the engine thread had in its caches: routing one order took 19 us with its data in
        cache and 153 us after 8 MB of other data had been read - docs/performance.md, thirteenth session;
        a core of its own keeps them), then recovery if start() left it to this thread, then the loop."""
        if self.cpus:
            os.sched_setaffinity(0, self.cpus)  # 0: the calling thread (Linux affinity is per thread)
        if recover:
            self._recover_then_run()
        else:
            self._run()

    @property
    def native_id(self) -> int | None:
        """The engine thread's id in the OS (None when it is not running)."""
        thread = self._thread
        return thread.native_id if thread is not None else None

    def _recover_then_run(self) -> None:
        try:
            self.recover()
        except BaseException as exc:
            log.exception("recovery from the journal failed: the engine takes no message")
            self._recovery_error = exc
            self._recovered.set()
            return
        self._recovered.set()
        self._run()

    def wait_recovered(self, timeout: float | None = None) -> None:
        """After start(wait=False): block until recovery is done; raise if it failed or took too long."""
        if not self._recovered.wait(timeout):
            raise TimeoutError(f"engine recovery not done after {timeout}s")
        if self._recovery_error is not None:
            raise RuntimeError(f"engine recovery failed: {self._recovery_error}") from self._recovery_error

    def _tick_loop(self) -> None:
        while not self._ticker_stop.wait(self.config.tick_s):
            self.submit(c.Tick(time.monotonic()))

    def stop(self, timeout: float = 10.0) -> None:
        self._ticker_stop.set()
        if self._thread is None:
            return
        self.inbox.put(_STOP)
        self._wakeup()
        self._thread.join(timeout)
        stopped = not self._thread.is_alive()
        self._thread = None
        if stopped and self._wake is not None:
            for sock in self._wake:
                sock.close()
            self._wake = None
        # Every batch appended was sent (the thread has returned): no resend at the next start.
        self.journal.close(sent=stopped)

    def submit(self, command: c.Command) -> None:
        """Thread-safe: the only way in."""
        self.inbox.put(command)
        self._wakeup()

    def _wakeup(self) -> None:
        wake = self._wake
        if wake is None or threading.get_ident() == self._owner:
            return
        # full: the engine thread has wake-ups pending already; closed: it has stopped
        with contextlib.suppress(OSError):
            wake[1].send(b"\0")

    def _take(self, batch: list[Any]) -> tuple[list[Any], bool]:
        """The next batch, waiting for one unless `batch` (a retry) is one already: what the edges have
        (handed to `submit`, so it queues in order with the rest), then the queue. And whether it holds
        everything queued (not cut at MAX_BATCH): once it is journaled, so is everything the edges
        pumped before it (FixEdge.journaled)."""
        if batch:
            for edge in self.edges:
                edge.pump()
        elif self._wake is None:
            try:
                batch = [self.inbox.get(timeout=self._defer_left())]
            except queue.Empty:
                return [], True  # the deferred batches' time is up
        else:
            wake = self._wake[0]
            waiting: list[Any] = [wake, *self.edges]
            # First what came while the last batch ran, without waiting; then wait for more. Only what
            # select finds readable is read: reading an empty socket raises (BlockingIOError), and the
            # queue's get_nowait raises when it is empty - a few exceptions at every wake-up, each a
            # microsecond or two, at 500 orders/s two or three wake-ups an order.
            timeout: float | None = 0.0
            while True:
                # The GIL is released while waiting: QuickFIX's threads never need it on the hot path.
                for source in select.select(waiting, [], [], timeout)[0]:
                    if source is wake:
                        with contextlib.suppress(OSError):  # BlockingIOError: all read
                            while len(wake.recv(4096)) == 4096:
                                pass
                    else:
                        source.pump()
                if not self.inbox.empty():  # only this thread takes from it
                    batch = [self.inbox.get_nowait()]
                    break
                timeout = self._defer_left()
                if timeout == 0.0:
                    return [], True
                if self.housekeeping is not None:
                    self.housekeeping(True)
        while len(batch) < MAX_BATCH:
            try:
                batch.append(self.inbox.get_nowait())
            except queue.Empty:
                return batch, True
        return batch, False

    def _defer_left(self) -> float | None:
        """How long the runner may wait for work: None without deferred batches, else what is left of
        their DEFER_S (0.0: append them now)."""
        if not self._deferred:
            return None
        return max(0.0, self._deferred_at + DEFER_S - time.monotonic())

    def _run(self) -> None:
        self._owner = threading.get_ident()
        if self._resend:
            log.info("resending %d client messages of the last batch before the restart", len(self._resend))
            self._send(self._resend)
            self._resend = []
        retry: list[Any] = []
        while True:
            batch, drained = self._take(retry)
            retry = []
            stopping = any(item is _STOP for item in batch)
            work = [item for item in batch if item is not _STOP]
            if work or (self._deferred and (stopping or self._defer_left() == 0.0)):
                # once the deferred batches' time is up (or at the stop) everything is appended
                retry = self.process(work, defer=not stopping and self._defer_left() != 0.0)
                if self.housekeeping is not None:
                    self.housekeeping(False)
                if retry:
                    time.sleep(self.config.retry_delay)
                elif drained and not self._deferred:
                    for edge in self.edges:
                        edge.journaled()
            if stopping and not retry:
                for edge in self.edges:  # all sent: the journal may say so (stop)
                    edge.wait_sent()
                return

    # --- one batch ---------------------------------------------------------------------------
    def process(self, commands: list[Any], defer: bool = False) -> list[Any]:
        """Handle a batch; returns the commands to retry if the journal could not commit it.

        `defer` (the runner's loop): a batch that sends nothing and answers no operator is not appended
        on its own; its records go with the next append, at most DEFER_S later. Such a batch's effects
        are not visible to anyone, so nothing is sent before its cause is durable; what a crash loses
        of it (a venue's acknowledgement of a child, say) the restart gets back by reconciling the open
        children with their venues. At 500 orders/s this is about half the appends (a resting order's
        venue acks)."""
        started = time.perf_counter()
        if self._stale and not self._reload():
            return self._hold(commands)
        b = self.decide(commands)
        if (not b.events and not b.outbound and not b.replies and all(isinstance(x, c.Tick) for x in commands)
                and (defer or not self._deferred)):
            return []  # the clock ticked and nothing was due: not a batch
        if defer and not b.outbound and not b.replies:
            if not self._deferred:
                self._deferred_at = time.monotonic()
            self._deferred.append((commands, b))
            return []
        if self._deferred:
            deferred, self._deferred = self._deferred, []
            commands = [cmd for cmds, _ in deferred for cmd in cmds] + commands
            merged = Decision(outbound=b.outbound, replies=b.replies)
            for _, d in [*deferred, ([], b)]:
                merged.events += d.events
                merged.dirty.update(d.dirty)
            b = merged
        try:
            client_messages = [o for o in b.outbound if type(o) in _CLIENT_SENDS]
            # The batch's business messages in and out are audited in the same transaction.
            # The last batch's messages are sent before this one is journaled: a crash leaves at most
            # one batch unsent (the restart's resend).
            for edge in self.edges:
                edge.wait_sent()
            commit_start = time.perf_counter()
            self.journal.append(b.events, b.dirty.values(), client_messages, inbound=commands,
                                outbound=b.outbound)
            commit_seconds = time.perf_counter() - commit_start
        except Exception as exc:
            if self.risk is not None:
                self.risk.forget({e.order_id for e in b.events if isinstance(e, ev.OrderAccepted)})
            return self._commit_failed(commands, exc)
        self.batches += 1
        self._send(b.outbound)
        if self.observer is not None:
            try:
                self.observer(BatchStats(commands, b.events, commit_seconds, time.perf_counter() - started))
            except Exception:
                log.exception("batch observer failed")
        for reply in b.replies:
            try:
                reply()
            except Exception:
                log.exception("operator reply failed")
        if self.on_batch is not None:
            self.on_batch(self.batches)
        return []

    def _commit_failed(self, commands: list[Any], exc: Exception) -> list[Any]:
        """Fail closed: the batch's changes are in memory but not in the journal, so memory is stale
        until it has been reloaded from the journal (which may be what is gone). Until then new orders
        are refused and everything else waits, to be decided again on the reloaded state."""
        log.error("journal commit failed, batch not applied: %s", exc)
        self._stale = True
        if not self._reload() or not self.journal.refuses_content(exc):
            return self._hold(commands)
        # The journal is there but refuses what this batch wrote, and would refuse it on every retry:
        # commit the commands one by one so only the one it refuses is lost to its sender.
        if len(commands) > 1:
            return [held for cmd in commands for held in self.process([cmd])]
        (cmd,) = commands
        log.error("the journal refuses %r: not applied (%s)", cmd, exc)
        if isinstance(cmd, c.NewOrder):
            self._send([_refusal(cmd.session, cmd.cl_ord_id, cmd.symbol, cmd.side.value, cmd.order_qty,
                                 OrdRejReason.BROKER_OPTION, "order could not be journaled: not accepted")])
        return []

    def _reload(self) -> bool:
        try:
            self.recover()
        except Exception as exc:
            log.error("journal unavailable for reload: %s", exc)
            return False
        self._stale = False
        self._resend = []  # the last committed batch was sent: only a restart resends it
        log.info("journal reachable again: state reloaded")
        return True

    def _hold(self, commands: list[Any]) -> list[Any]:
        """While the journal is away: refuse new orders, keep the rest for the retry (market data only
        its latest book per venue and symbol, and no clock ticks: both are superseded anyway)."""
        retry: list[Any] = []
        books: dict[tuple[str, str], c.MarketData] = {}
        refusals: list[Outbound] = []
        for cmd in commands:
            if isinstance(cmd, c.NewOrder):
                refusals.append(
                    _refusal(cmd.session, cmd.cl_ord_id, cmd.symbol, cmd.side.value, cmd.order_qty,
                             OrdRejReason.BROKER_OPTION, "journal unavailable: order not accepted")
                )
            elif isinstance(cmd, c.MarketData):
                books[(cmd.venue, cmd.symbol)] = cmd
            elif not isinstance(cmd, c.Tick):
                retry.append(cmd)
        self._send(refusals)
        return retry + list(books.values())

    def _send(self, outbound: list[Outbound]) -> None:
        for out in outbound:
            try:
                to_client = _CLIENT_SENDS.get(type(out))
                if to_client is not None:
                    to_client(self.gateway, out)
                else:
                    send_to_venue(self.venues, out)  # type: ignore[arg-type]  # the rest are venue messages
            except Exception:
                log.exception("send failed for %r", out)
        for edge in self.edges:
            edge.flush()


# What goes to a client, by type, and how (everything else the decider sends goes to a venue).
_CLIENT_SENDS: dict[type, Callable[[ClientGateway, Any], None]] = {
    ExecutionReport: lambda gateway, m: gateway.send_report(m),
    CancelReject: lambda gateway, m: gateway.send_cancel_reject(m),
    MassCancelReport: lambda gateway, m: gateway.send_mass_cancel_report(m),
}

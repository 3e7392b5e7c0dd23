"""What the watched orders' judgements add up to, kept between incremental passes so that a pass costs what changed
since the last one, not what it watches.

A pass judges (reconcile.judge) only the orders some source said something new of (`AuditState.touched`) and those
whose grace ran out since (a timer per order); every other order keeps its last judgement. So a discrepancy that
outlasts its grace is reported from here, and its row and outcome are read again only when a new record comes for
it, when the row checksum disagrees, or every `recheck_ms`, at most `budget` orders a pass (`rereads`). Orders still
in flight (within the sink's or the outcome's allowed lag) are read every pass, as before. No I/O here.
"""

import heapq
from dataclasses import dataclass, field

from consistency_audit.reconcile import AuditState, Grace, Judgement, Kind, Reread, judge


@dataclass
class Findings:
    grace: Grace | None = None  # what the judgements were made with; another grace (or window) judges all again
    history_from_ms: int = 0
    kinds: dict[str, tuple[Kind, ...]] = field(default_factory=dict)  # orders with any discrepancy
    by_kind: dict[Kind, set[str]] = field(default_factory=lambda: {kind: set() for kind in Kind})
    refused: set[str] = field(default_factory=set)
    every_pass: set[str] = field(default_factory=set)
    # order id -> when its row and outcome were last read (epoch ms); oldest first (each read moves it last)
    slow: dict[str, int] = field(default_factory=dict)
    wake_at: dict[str, int] = field(default_factory=dict)
    _wakes: list[tuple[int, str]] = field(default_factory=list)
    _sorted: dict[Kind, list[str]] = field(default_factory=dict)  # by kind, sorted; dropped when the kind changes
    _refused_sorted: list[str] | None = None

    def review(self, ledger: AuditState, now_ms: int, grace: Grace) -> int:
        """Judge the touched orders and those whose timer ran out; fold the ones that settle. How many settled."""
        if grace != self.grace or ledger.history_from_ms != self.history_from_ms:
            self._clear(grace, ledger.history_from_ms)
            ledger.touched.update(ledger.orders)  # every order judged again below
        due = ledger.touched
        ledger.touched = set()
        while self._wakes and self._wakes[0][0] <= now_ms:
            at, order_id = heapq.heappop(self._wakes)
            if self.wake_at.get(order_id) == at:
                del self.wake_at[order_id]
                due.add(order_id)
        settled = 0
        for order_id in due:
            order = ledger.orders.get(order_id)
            if order is None:
                self._forget(order_id)
                continue
            judgement = judge(order, now_ms, grace, ledger.history_from_ms)
            if judgement.settles:
                ledger.fold(order_id)
                self._forget(order_id)
                settled += 1
            else:
                self._note(order_id, judgement, now_ms)
        return settled

    def rereads(self, now_ms: int, recheck_ms: float, budget: int) -> list[str]:
        """The orders whose row and outcome the next pass reads again: every one in flight, and of those past their
        grace the `budget` read longest ago, if that is `recheck_ms` ago or more (they move to the back)."""
        chosen = list(self.every_pass)
        again: list[str] = []
        for order_id, read_ms in self.slow.items():
            if len(again) >= budget or now_ms - read_ms < recheck_ms:
                break
            again.append(order_id)
        for order_id in again:
            del self.slow[order_id]
            self.slow[order_id] = now_ms
        return chosen + again

    def discrepancies(self) -> dict[Kind, list[str]]:
        """Order ids per kind, sorted (sorted again only for a kind that changed)."""
        for kind in Kind:
            if kind not in self._sorted:
                self._sorted[kind] = sorted(self.by_kind[kind])
        return dict(self._sorted)

    def dead_lettered(self) -> list[str]:
        if self._refused_sorted is None:
            self._refused_sorted = sorted(self.refused)
        return self._refused_sorted

    def _note(self, order_id: str, judgement: Judgement, now_ms: int) -> None:
        was = self.kinds.get(order_id, ())
        if was != judgement.kinds:
            for kind in set(was) ^ set(judgement.kinds):
                self._sorted.pop(kind, None)
            for kind in was:
                self.by_kind[kind].discard(order_id)
            for kind in judgement.kinds:
                self.by_kind[kind].add(order_id)
            if judgement.kinds:
                self.kinds[order_id] = judgement.kinds
            else:
                del self.kinds[order_id]
        if judgement.refused != (order_id in self.refused):
            (self.refused.add if judgement.refused else self.refused.discard)(order_id)
            self._refused_sorted = None
        if judgement.reread == Reread.EVERY_PASS:
            self.every_pass.add(order_id)
            self.slow.pop(order_id, None)
        elif judgement.reread == Reread.SLOW:
            self.every_pass.discard(order_id)
            self.slow.setdefault(order_id, now_ms)  # it was read this pass, or is new: due a recheck from now
        else:
            self.every_pass.discard(order_id)
            self.slow.pop(order_id, None)
        if judgement.wake_ms is None:
            self.wake_at.pop(order_id, None)
        elif self.wake_at.get(order_id) != judgement.wake_ms:
            self.wake_at[order_id] = judgement.wake_ms
            heapq.heappush(self._wakes, (judgement.wake_ms, order_id))

    def _clear(self, grace: Grace, history_from_ms: int) -> None:
        fresh = Findings(grace, history_from_ms)
        self.__dict__.update(fresh.__dict__)

    def _forget(self, order_id: str) -> None:
        self._note(order_id, Judgement(), 0)

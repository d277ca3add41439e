"""The weekly review (seed 004): CSV files for a date range, from the database.

    desk report --from 2026-11-16 --to 2026-11-22 --out review/

writes
- ``agents.csv``: per agent and per day: chats handled, first response
  p50, handle time p50, FCR proxy, ratings (very satisfied / satisfied /
  dissatisfied), satisfaction;
- ``days.csv``: per day, the centre's figures (same definitions as the
  supervisors' board, see stats.py);
- ``dissatisfied.csv``: every dissatisfied chat, grouped by wrap-up code, with
  the customer's comment and the path of its transcript;
- ``transcripts/<conv>.txt``: those transcripts (card numbers were masked
  before they were ever stored; ID and phone numbers are masked here too).
"""

from __future__ import annotations

import csv
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from .masking import mask_for_display
from .stats import median, pct
from .store import SQLiteStore


def _day(ts: float) -> str:
    return time.strftime("%Y-%m-%d", time.localtime(ts))


@dataclass
class Cell:
    handled: int = 0
    frt: list[float] = field(default_factory=list)
    handle: list[float] = field(default_factory=list)
    closed_by_agent: int = 0
    fcr: int = 0
    ratings: Counter[str] = field(default_factory=Counter)

    def row(self) -> dict[str, Any]:
        rated = sum(self.ratings.values())
        good = self.ratings["very_satisfied"] + self.ratings["satisfied"]
        return {
            "handled": self.handled,
            "first_response_p50_s": median(self.frt),
            "handle_p50_s": median(self.handle),
            "fcr_rate": round(self.fcr / self.closed_by_agent, 3) if self.closed_by_agent else "",
            "very_satisfied": self.ratings["very_satisfied"],
            "satisfied": self.ratings["satisfied"],
            "dissatisfied": self.ratings["dissatisfied"],
            "satisfaction": round(good / rated, 3) if rated else "",
        }


@dataclass
class DayCell:
    started: int = 0
    asked: int = 0
    answered: int = 0
    abandoned: int = 0
    bot_contained: int = 0
    frt: list[float] = field(default_factory=list)
    handle: list[float] = field(default_factory=list)
    closed_by_agent: int = 0
    fcr: int = 0
    ratings: Counter[str] = field(default_factory=Counter)

    def row(self) -> dict[str, Any]:
        return {
            "started": self.started,
            "asked_for_person": self.asked,
            "answered": self.answered,
            "answer_rate": round(self.answered / self.asked, 3) if self.asked else "",
            "abandoned": self.abandoned,
            "first_response_p50_s": pct(self.frt, 0.5) or "",
            "first_response_p90_s": pct(self.frt, 0.9) or "",
            "handle_p50_s": pct(self.handle, 0.5) or "",
            "fcr_rate": round(self.fcr / self.closed_by_agent, 3) if self.closed_by_agent else "",
            "bot_contained": self.bot_contained,
            "bot_containment": round(self.bot_contained / self.started, 3) if self.started else "",
            "very_satisfied": self.ratings["very_satisfied"],
            "satisfied": self.ratings["satisfied"],
            "dissatisfied": self.ratings["dissatisfied"],
        }


async def write_report(db: Path, start: date, end: date, out: Path) -> dict[str, int]:
    """Write the review for [start, end] (whole local days); returns row counts."""
    since = time.mktime(datetime(start.year, start.month, start.day).timetuple())
    until = time.mktime(datetime(end.year, end.month, end.day).timetuple()) + 86400
    store = SQLiteStore(db)
    await store.open()
    try:
        rows = [r for r in await store.conversations_since(since)]
        names = {u.id: u.name for u in await store.list_users()}
        agents: dict[tuple[str, str], Cell] = defaultdict(Cell)
        days: dict[str, DayCell] = defaultdict(DayCell)
        unhappy: list[dict[str, Any]] = []
        for r in rows:
            if since <= r["created_at"] < until:
                d = days[_day(r["created_at"])]
                d.started += 1
                d.asked += bool(r["asked_at"])
                d.answered += bool(r["assigned_at"])
            if r["first_response_at"] and since <= r["first_response_at"] < until and r["assigned_at"]:
                secs = r["first_response_at"] - r["assigned_at"]
                days[_day(r["first_response_at"])].frt.append(secs)
                if r["last_agent"]:
                    agents[(r["last_agent"], _day(r["first_response_at"]))].frt.append(secs)
            closed = r["state"] == "closed" and r["closed_at"] and since <= r["closed_at"] < until
            if closed:
                d = days[_day(r["closed_at"])]
                if r["close_reason"] == "abandoned":
                    d.abandoned += 1
                elif not r["asked_at"]:
                    d.bot_contained += 1
                if r["assigned_at"] and r["close_reason"] != "abandoned" and r["last_agent"]:
                    handle = r["closed_at"] - r["assigned_at"]
                    d.handle.append(handle)
                    cell = agents[(r["last_agent"], _day(r["closed_at"]))]
                    cell.handled += 1
                    cell.handle.append(handle)
                    if r["closed_by"] == r["last_agent"]:
                        d.closed_by_agent += 1
                        cell.closed_by_agent += 1
                        if r["transfers"] == 0:
                            d.fcr += 1
                            cell.fcr += 1
            if r["rating"] and r["rated_at"] and since <= r["rated_at"] < until:
                days[_day(r["rated_at"])].ratings[r["rating"]] += 1
                if r["last_agent"]:
                    agents[(r["last_agent"], _day(r["rated_at"]))].ratings[r["rating"]] += 1
                if r["rating"] == "dissatisfied":
                    unhappy.append(r)
        _write(out / "agents.csv", ["agent", "name", "day"], [
            {"agent": a, "name": names.get(a, a), "day": day, **cell.row()}
            for (a, day), cell in sorted(agents.items())
        ])  # fmt: skip
        _write(out / "days.csv", ["day"], [{"day": day, **cell.row()} for day, cell in sorted(days.items())])
        transcripts = out / "transcripts"
        listed = []
        for r in sorted(unhappy, key=lambda r: (r["wrapup_code"] or "~", r["rated_at"])):
            conv = await store.get_conversation(r["id"])
            path = transcripts / f"{r['id']}.txt"
            msgs = await store.messages_after(r["id"], 0, include_staff=True)
            _save(path, _transcript(conv, msgs, names))
            listed.append({
                "wrapup_code": r["wrapup_code"] or "(none)", "conversation": r["id"], "day": _day(r["rated_at"]),
                "agent": r["last_agent"], "agent_name": names.get(r["last_agent"], r["last_agent"]),
                "customer": conv.customer_name if conv else "", "comment": conv.rating_comment if conv else "",
                "transcript": str(path.relative_to(out)),
            })  # fmt: skip
        _write(out / "dissatisfied.csv", ["wrapup_code", "conversation", "day", "agent", "agent_name",
                                          "customer", "comment", "transcript"], listed)  # fmt: skip
        return {"agent_days": len(agents), "days": len(days), "dissatisfied": len(listed)}
    finally:
        await store.close()


def _save(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _write(path: Path, first: list[str], rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fields = list(first)
    for row in rows:
        fields += [k for k in row if k not in fields]
    # UTF-8 with BOM: centres open these in Excel, which needs it for Chinese.
    with path.open("w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def _transcript(conv: Any, msgs: list[Any], names: dict[str, str]) -> str:
    head = [
        f"conversation {conv.id}" if conv else "",
        f"customer {conv.customer_name} {' '.join(conv.flags)} · {conv.channel}" if conv else "",
        f"wrap-up {conv.wrapup_code} {conv.wrapup_note}".rstrip() if conv else "",
        f"rating {conv.rating} {conv.rating_comment}".rstrip() if conv else "",
        "",
    ]
    lines = []
    for m in msgs:
        stamp = datetime.fromtimestamp(m.ts).strftime("%Y-%m-%d %H:%M:%S")
        who = {"customer": "customer", "bot": "bot", "system": "system"}.get(
            m.sender, names.get(m.sender_id, m.sender_name or m.sender_id)
        )
        tag = " [note]" if m.kind == "note" else ""
        lines.append(f"{stamp} #{m.seq} {who}{tag}: {mask_for_display(m.text)}")
    return "\n".join(head + lines) + "\n"


def parse_day(text: str) -> date:
    return datetime.strptime(text, "%Y-%m-%d").date()


def last_week(today: date | None = None) -> tuple[date, date]:
    today = today or date.today()
    end = today - timedelta(days=today.weekday() + 1)
    return end - timedelta(days=6), end

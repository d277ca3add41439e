"""What the agent desk knows, without any widgets: five stable slots, each
chat's transcript, drafts, unread counts and waits, and the wrong-chat guard.

The Textual app renders this model and feeds it hub frames; tests drive it
directly. A chat keeps its slot number from assignment until it closes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from server import protocol as p

SLOTS = (1, 2, 3, 4, 5)
_DIGITS = re.compile(r"\d{4,}")
_MASKED = re.compile(r"\*{4,}(\d{4})")


@dataclass(slots=True)
class Line:
    seq: int  # 0 while our own message waits for its ack
    kind: str  # text | bot | system | note
    sender: str  # customer | agent | bot | system | supervisor
    text: str
    ts: float
    sender_name: str = ""
    msg_id: str = ""
    mine: bool = False
    refused: str = ""  # the hub's final refusal (error code): never stored, never sent again

    @property
    def pending(self) -> bool:
        return self.seq == 0 and not self.refused


@dataclass
class Chat:
    conv: str
    slot: int
    customer: p.CustomerInfo
    handoff: p.HandoffInfo
    lines: list[Line] = field(default_factory=list)
    seqs: set[int] = field(default_factory=set)
    synced: bool = False
    unread: int = 0
    unanswered_since: float | None = None
    customer_typing: bool = False
    draft: str = ""
    revealed: bool = False
    assigned_at: float = 0.0
    warned_wait: bool = False
    queue_wait_s: float = 0.0  # how long the customer queued (for {queue_wait})

    @property
    def name(self) -> str:
        return self.customer.name

    @property
    def online(self) -> bool:
        """The customer's link is up (the hub's ``presence`` frames keep it current)."""
        return self.customer.online

    @property
    def flags(self) -> list[str]:
        marks = list(self.customer.flags)
        if self.handoff.priority == "urgent":
            marks.insert(0, "urgent")
        return marks

    def waiting_s(self, now: float) -> float:
        return 0.0 if self.unanswered_since is None else max(0.0, now - self.unanswered_since)

    def drop_stored(self) -> None:
        """A resync: forget every stored line; keep our unacked ones (they go again,
        and their ack or the replay puts them in place) and refused ones (their
        text is the agent's)."""
        self.lines = [ln for ln in self.lines if not ln.seq]
        self.seqs.clear()
        self.synced = False

    def add(self, line: Line) -> bool:
        """Insert in seq order (a replay may interleave with live lines); False if known."""
        if line.seq and line.seq in self.seqs:
            return False
        if line.seq:
            self.seqs.add(line.seq)
            if line.mine and line.msg_id:  # our pending copy becomes the stored one
                for i, old in enumerate(self.lines):
                    if old.pending and old.msg_id == line.msg_id:
                        del self.lines[i]
                        break
        pos = len(self.lines)
        if line.seq:
            while pos > 0 and (self.lines[pos - 1].pending or self.lines[pos - 1].seq > line.seq):
                pos -= 1
        self.lines.insert(pos, line)
        return True

    def fragments(self) -> set[str]:
        """Digit groups (4+) this chat's customer mentioned: card tails, phones, accounts."""
        found: set[str] = set()
        for line in self.lines:
            if line.sender != "customer":
                continue
            for m in _MASKED.finditer(line.text):
                found.add(m.group(1))
            for m in _DIGITS.finditer(line.text):
                found.add(m.group(0))
                found.add(m.group(0)[-4:])
        return found


class DeskModel:
    def __init__(self, agent_id: str = "", agent_name: str = "") -> None:
        self.agent_id = agent_id
        self.agent_name = agent_name
        self.slots: dict[int, Chat | None] = dict.fromkeys(SLOTS)
        self.by_conv: dict[str, Chat] = {}
        self.active: int | None = None

    # -- assignment ---------------------------------------------------------------

    def assign(self, frame: p.Assigned, now: float) -> tuple[Chat, bool]:
        """Place a chat in the lowest free slot (a resumed chat keeps its own).
        Returns (chat, is_new)."""
        chat = self.by_conv.get(frame.conv)
        if chat is not None:
            chat.customer, chat.handoff, chat.synced = frame.customer, frame.handoff, False
            return chat, False
        slot = next((n for n in SLOTS if self.slots[n] is None), None)
        if slot is None:  # the hub never gives more than five; be safe anyway
            slot = max(SLOTS) + len(self.by_conv)
        chat = Chat(frame.conv, slot, frame.customer, frame.handoff, assigned_at=now)
        self.slots[slot] = chat
        self.by_conv[frame.conv] = chat
        if self.active is None:
            self.active = slot
        return chat, True

    def release(self, conv: str) -> Chat | None:
        """The chat left this desk: its slot frees at once."""
        chat = self.by_conv.pop(conv, None)
        if chat is None:
            return None
        if self.slots.get(chat.slot) is chat:
            self.slots[chat.slot] = None
        if self.active == chat.slot:
            self.active = self.next_open(chat.slot)
        return chat

    def next_open(self, after: int | None = None) -> int | None:
        order = [n for n in SLOTS if self.slots[n] is not None]
        if not order:
            return None
        if after is None:
            return order[0]
        later = [n for n in order if n > after]
        return later[0] if later else order[0]

    # -- frames ---------------------------------------------------------------------

    def on_msg(self, frame: p.Msg, now: float) -> Chat | None:
        chat = self.by_conv.get(frame.conv)
        if chat is None:
            return None
        line = Line(frame.seq, frame.kind, frame.sender, frame.text, frame.ts, frame.sender_name,
                    frame.msg_id, mine=frame.sender_id == self.agent_id and frame.sender == "agent")  # fmt: skip
        if not chat.add(line):
            return None
        if frame.sender == "customer":
            chat.customer_typing = False
            if chat.unanswered_since is None:
                chat.unanswered_since = frame.ts if chat.synced else min(frame.ts, now)
            if self.active != chat.slot and chat.synced:
                chat.unread += 1
        elif frame.sender == "agent" and frame.kind == "text":
            chat.unanswered_since = None
            chat.warned_wait = False
        return chat

    def sent(self, conv: str, msg_id: str, text: str, now: float, note: bool = False) -> Line | None:
        """Our own line, shown at once and marked pending until acked."""
        chat = self.by_conv.get(conv)
        if chat is None:
            return None
        line = Line(0, "note" if note else "text", "agent", text, now, self.agent_name, msg_id, mine=True)
        chat.lines.append(line)
        if not note:
            chat.unanswered_since = None
            chat.warned_wait = False
        return line

    def refuse(self, msg_id: str, code: str) -> tuple[Chat, Line] | None:
        """The hub refused our line for good: it stays on screen, marked not sent."""
        for chat in self.by_conv.values():
            for line in chat.lines:
                if line.pending and line.msg_id == msg_id:
                    line.refused = code
                    return chat, line
        return None

    def on_ack(self, frame: p.Ack) -> Chat | None:
        chat = self.by_conv.get(frame.conv)
        if chat is None:
            return None
        for i, line in enumerate(chat.lines):
            if line.pending and line.msg_id == frame.msg_id:
                del chat.lines[i]
                line.seq = frame.seq
                chat.add(line)
                return chat
        return None

    # -- what the agent looks at -------------------------------------------------------

    def open_chats(self) -> list[Chat]:
        return [c for c in (self.slots[n] for n in SLOTS) if c is not None]

    def longest_waiting(self, now: float) -> int | None:
        waiting = [(c.waiting_s(now), c.slot) for c in self.open_chats() if c.unanswered_since is not None]
        return max(waiting)[1] if waiting else None

    def activate(self, slot: int) -> Chat | None:
        chat = self.slots.get(slot)
        if chat is not None:
            self.active = slot
            chat.unread = 0
        return chat

    @property
    def current(self) -> Chat | None:
        return self.slots.get(self.active) if self.active is not None else None

    def wrong_chat_warnings(self, conv: str, text: str) -> list[str]:
        """Reasons to think `text` was meant for another open chat: another
        customer's name, or a card/phone/account fragment only another chat has."""
        chat = self.by_conv.get(conv)
        if chat is None:
            return []
        mine = chat.fragments()
        reasons: list[str] = []
        draft_digits = {m.group(0) for m in _DIGITS.finditer(text)}
        draft_digits |= {d[-4:] for d in draft_digits}
        for other in self.open_chats():
            if other.conv == conv:
                continue
            name = other.name.strip()
            if len(name) >= 2 and name in text and name != chat.name:
                reasons.append(f"name:{other.slot}:{name}")
            for frag in sorted((draft_digits & other.fragments()) - mine):
                reasons.append(f"number:{other.slot}:{frag}")
        return reasons

"""The seam between the hub and whatever bot answers a new chat first.

The hub owns sockets, storage and queues; a bot only decides what to say and
whether to hand the customer to a person. Keeping the decision pure (no I/O,
no clock) lets a bank plug in another bot and lets tests drive it directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

# Priorities a handoff may ask for; the hub maps them onto queue classes
# (urgent above elderly/VIP above normal). Elderly/VIP comes from the
# customer's flags, not from the bot.
URGENT = "urgent"
NORMAL = "normal"


@dataclass(slots=True)
class BotContext:
    """What the bot may know about the chat it is answering."""

    conv_id: str
    customer_name: str
    flags: frozenset[str] = frozenset()
    lang: str = "zh"  # "zh" or "en": the customer's language
    # "bot" while the bot leads the chat; "queued" while the customer already
    # waits for a person (the bot may still answer without costing the place).
    state: str = "bot"
    queue_position: int | None = None
    queue_eta_s: int | None = None
    # The bot's own scratch space for this chat (consecutive misses, topics it
    # offered...). The hub stores it with the conversation so it survives a
    # hub restart; it must stay JSON-serialisable.
    memory: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Handoff:
    """The bot asks for a person."""

    reason: str  # "customer_asked" | "misses" | "urgent" | "upset" | "no_bot" | ...
    group: str  # skill group that owns the topic, e.g. "cards"
    priority: str = NORMAL  # URGENT or NORMAL
    intents: list[str] = field(default_factory=list)  # entry ids detected so far


@dataclass(slots=True)
class BotTurn:
    """The bot's answer to one event."""

    replies: list[str] = field(default_factory=list)  # said in order, as the bot
    handoff: Handoff | None = None
    # The customer's question went unanswered: the hub records it (with a
    # count) so supervisors can see what the knowledge base lacks.
    missed: bool = False
    intents: list[str] = field(default_factory=list)  # entry ids matched this turn
    confidence: float | None = None


class BotStage(Protocol):
    """A bot the hub can put in front of every new chat."""

    def greet(self, ctx: BotContext) -> BotTurn:
        """The first turn of a new chat."""
        ...

    def answer(self, ctx: BotContext, text: str) -> BotTurn:
        """The customer said `text`; reply and maybe hand off."""
        ...


class NoBot:
    """No bot: every new chat goes straight to the general queue.

    Documented behaviour for deployments that run without a bot (and the hub's
    behaviour before the knowledge-base bot existed); it never fakes an answer.
    """

    def __init__(self, group: str = "general") -> None:
        self.group = group

    def greet(self, ctx: BotContext) -> BotTurn:
        return BotTurn(handoff=Handoff(reason="no_bot", group=self.group))

    def answer(self, ctx: BotContext, text: str) -> BotTurn:
        # Only reached if a customer writes while queued: nothing to add.
        return BotTurn()

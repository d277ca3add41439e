"""KnowledgeBot: the BotStage that answers from the knowledge base and knows when to stop.

Pure decisions: every call reads the context and the text and returns a
BotTurn; the only state is what it writes into `ctx.memory`, which the hub
stores with the conversation (so it must stay JSON-serialisable):

  misses   int        consecutive turns the bot could not help (reset on a hit;
                      kept after a handoff, so the hub can record it)
  offered  list[str]  entry ids offered as "1/2/3" on the previous turn
  intents  list[str]  entry ids detected so far in this chat, first seen first
  last     str        what the bot did last: answer | offer | miss | close |
                      prompt | queue | upset | handoff

Entry ids in memory may outlive a KB reload; ids that vanished are skipped.
"""

from __future__ import annotations

import re
from typing import Any

from server.botstage import NORMAL, URGENT, BotContext, BotTurn, Handoff

from .kb import Entry, KnowledgeBase
from .matcher import ANSWER_THRESHOLD, OFFER_THRESHOLD, Match, Matcher
from .text import detect_lang
from .triggers import (
    asks_wait,
    is_closing,
    is_unsolved,
    is_upset,
    pick_choice,
    wants_person,
    without_person_request,
)

MISSES_BEFORE_HANDOFF = 2
_ANNOUNCES_HANDOFF = re.compile(
    r"为您(?:优先)?转接|connecting you to|transferring you to", re.IGNORECASE
)
MAX_OFFERED = 3

# Everything the bot says besides KB answers, per language.
_LINES: dict[str, dict[str, str]] = {
    "zh": {
        "greet": "您好，我是{bank}智能客服助手，可以为您解答银行卡、转账、手机银行等常见问题。"
        "如需人工服务，请随时回复「人工」。",
        "follow_up": "以上是否解决了您的问题？如需人工服务，请回复「人工」。",
        "follow_up_queued": "以上供您参考，人工客服接入后会继续为您服务。",
        "offer": "您是想咨询以下哪个问题？请回复序号：",
        "offer_tail": "都不是的话，可以换个说法描述，或回复「人工」。",
        "miss": "抱歉，这个问题我暂时无法回答。您可以换个说法再问一次，或回复「人工」转人工客服。",
        "miss_queued": "抱歉，这个问题我暂时无法回答，人工客服接入后会为您处理。",
        "unsolved": "抱歉没能帮到您。您可以换个说法描述问题，或回复「人工」转人工客服。",
        "prompt": "您好，请问有什么可以帮您？",
        "close": "不客气，很高兴为您服务！如还有其他问题，随时告诉我。",
        "to_person": "好的，正在为您转接人工客服，请稍候。",
        "misses": "抱歉，我没能理解您的问题，正在为您转接人工客服，请稍候。",
        "urgent": "该问题较为紧急，正在为您优先转接人工客服，请稍候。",
        "upset": "非常抱歉给您带来不好的体验，正在为您转接人工客服，请稍候。",
        "upset_queued": "非常抱歉给您带来不好的体验，人工客服接入后会优先处理您的问题。",
        "queued": "您已在排队等待人工客服，请稍候。",
        "queued_pos": "您已在排队等待人工客服，当前排在第 {pos} 位，请稍候。",
        "queued_pos_eta": "您已在排队等待人工客服，当前排在第 {pos} 位，预计约 {mins} 分钟接入，请稍候。",
        "bank": "本行",
    },
    "en": {
        "greet": "Hello, I'm the virtual assistant of {bank}. I can help with cards, transfers, "
        'mobile banking and more. Type "agent" any time to talk to a person.',
        "follow_up": 'Did that answer your question? Type "agent" to talk to a person.',
        "follow_up_queued": "I hope this helps; an agent will continue with you shortly.",
        "offer": "Which of these do you mean? Reply with the number:",
        "offer_tail": 'If none fits, try rephrasing, or type "agent" to talk to a person.',
        "miss": 'Sorry, I can\'t answer that yet. Please try rephrasing, or type "agent" to talk to a person.',
        "miss_queued": "Sorry, I can't answer that; the agent who takes your chat will help.",
        "unsolved": 'Sorry that didn\'t help. Try describing it another way, or type "agent" for a person.',
        "prompt": "Hello, how can I help you?",
        "close": "You're welcome! If anything else comes up, just ask.",
        "to_person": "Sure, I'm connecting you to an agent. Please hold on.",
        "misses": "Sorry, I couldn't understand. I'm connecting you to an agent. Please hold on.",
        "urgent": "This is urgent, so I'm connecting you to an agent first. Please hold on.",
        "upset": "I'm sorry for the trouble. I'm connecting you to an agent. Please hold on.",
        "upset_queued": "I'm sorry for the trouble. The agent who takes your chat will deal with it first.",
        "queued": "You're in the queue for an agent. Please hold on.",
        "queued_pos": "You're number {pos} in the queue for an agent. Please hold on.",
        "queued_pos_eta": "You're number {pos} in the queue for an agent, about {mins} min to wait.",
        "bank": "the bank",
    },
}


class KnowledgeBot:
    """Answers from a KnowledgeBase; hands off to a person when it should.

    `threshold` is the confidence needed to answer outright; between
    `offer_threshold` and it the bot lists the closest topics instead.
    """

    def __init__(
        self,
        kb: KnowledgeBase,
        matcher: Matcher | None = None,
        threshold: float = ANSWER_THRESHOLD,
        offer_threshold: float = OFFER_THRESHOLD,
    ) -> None:
        if not 0.0 <= offer_threshold <= threshold <= 1.0:
            raise ValueError("need 0 <= offer_threshold <= threshold <= 1")
        self.kb = kb
        self.matcher = matcher or Matcher(kb, floor=offer_threshold)
        self.threshold = threshold
        self.offer_threshold = offer_threshold

    # -- BotStage -------------------------------------------------------------

    def greet(self, ctx: BotContext) -> BotTurn:
        lang = _lang(ctx.lang)
        bank = self.kb.bank or _LINES[lang]["bank"]
        return BotTurn(replies=[_LINES[lang]["greet"].format(bank=bank)])

    def answer(self, ctx: BotContext, text: str) -> BotTurn:
        mem = ctx.memory
        lang = detect_lang(text, default=_lang(ctx.lang))
        lines = _LINES[lang]
        queued = ctx.state == "queued"
        # Offers are good for one turn: a new question replaces them.
        offered: list[str] = list(mem.pop("offered", None) or [])
        last = mem.get("last")

        if queued and asks_wait(text):
            return self._say(mem, "queue", [self._queue_line(ctx, lang)])

        choice = pick_choice(text) if offered else None
        if choice is not None and choice <= len(offered):
            entry = self.kb.get(offered[choice - 1])
            if entry is not None:  # None only if a reload dropped the topic
                return self._answered(ctx, entry, lang, 1.0)  # the customer chose it

        asked = wants_person(text)
        upset = is_upset(text)
        if not (asked or upset):
            if is_closing(text):
                return self._say(mem, "close", [lines["close"]])
            if last in ("answer", "offer") and is_unsolved(text):
                return self._missed(ctx, lang, lines["unsolved"], question=False)

        query = without_person_request(text) if asked else text
        matches = self.matcher.match(query, lang, limit=MAX_OFFERED, min_score=self.offer_threshold)
        top = matches[0] if matches else None
        hit = self.kb.get(top.entry_id) if top and top.score >= self.threshold else None
        confidence = top.score if top else None

        if hit is not None and hit.urgent:
            # The safe first step (freeze, report) goes out before the queue wait.
            return self._answered(ctx, hit, top.lang if top else lang, confidence)
        if upset:
            return self._upset(ctx, lang, hit, confidence if hit else None)
        if asked:
            # A question asked alongside ("转账限额多少？转人工") routes the
            # handoff; otherwise whatever "人工" happens to match is no topic.
            intents = [hit.id] if hit is not None else []
            if hit is not None:
                _remember(mem, hit.id)
            if queued:
                replies = [hit.answer.get(lang)] if hit is not None else []
                replies.append(self._queue_line(ctx, lang))
                return self._say(
                    mem, "queue", replies, intents=intents, confidence=confidence if hit else None
                )
            return self._handoff(
                ctx,
                "customer_asked",
                [lines["to_person"]],
                intents=intents,
                confidence=confidence if hit else None,
            )
        if hit is not None and top is not None:
            return self._answered(ctx, hit, top.lang, confidence)
        if matches:
            return self._offer(ctx, lang, matches, confidence)
        if not self.matcher.has_content(text, lang):
            # Only greetings or noise ("你好", "在吗", an emoji): nothing was asked.
            return self._say(mem, "prompt", [lines["prompt"]])
        return self._missed(ctx, lang, lines["miss"], question=True, confidence=confidence)

    # -- outcomes -----------------------------------------------------------------

    def _answered(
        self, ctx: BotContext, entry: Entry, lang: str, confidence: float | None
    ) -> BotTurn:
        mem = ctx.memory
        lines = _LINES[lang]
        mem["misses"] = 0
        _remember(mem, entry.id)
        replies = [entry.answer.get(lang)]
        queued = ctx.state == "queued"
        if entry.urgent and not queued:
            # Urgent answers in the KB often end by announcing the transfer
            # already; saying it twice reads like a glitch.
            if not _ANNOUNCES_HANDOFF.search(replies[0]):
                replies.append(lines["urgent"])
            return self._handoff(
                ctx,
                "urgent",
                replies,
                group=entry.group,
                priority=URGENT,
                intents=[entry.id],
                confidence=confidence,
            )
        replies.append(lines["follow_up_queued" if queued else "follow_up"])
        mem["last"] = "answer"
        return BotTurn(replies=replies, intents=[entry.id], confidence=confidence)

    def _offer(
        self, ctx: BotContext, lang: str, matches: list[Match], confidence: float | None
    ) -> BotTurn:
        lines = _LINES[lang]
        entries = [e for m in matches if (e := self.kb.get(m.entry_id)) is not None]
        ctx.memory["offered"] = [e.id for e in entries]
        ctx.memory["last"] = "offer"
        listing = "\n".join(f"{i}. {e.title.get(lang)}" for i, e in enumerate(entries, 1))
        return BotTurn(
            replies=[f"{lines['offer']}\n{listing}\n{lines['offer_tail']}"], confidence=confidence
        )

    def _missed(
        self,
        ctx: BotContext,
        lang: str,
        line: str,
        *,
        question: bool,
        confidence: float | None = None,
    ) -> BotTurn:
        """A turn the bot could not help with; the second in a row goes to a person.

        `question` says whether the text was a question the KB lacks (reported
        to supervisors as missed) or a "no, that did not help".
        """
        mem = ctx.memory
        lines = _LINES[lang]
        misses = int(mem.get("misses", 0)) + 1
        mem["misses"] = misses
        if ctx.state == "queued":
            mem["last"] = "miss"
            return BotTurn(replies=[lines["miss_queued"]], missed=question, confidence=confidence)
        if misses >= MISSES_BEFORE_HANDOFF:
            turn = self._handoff(ctx, "misses", [lines["misses"]], confidence=confidence)
            turn.missed = question
            return turn
        mem["last"] = "miss"
        return BotTurn(replies=[line], missed=question, confidence=confidence)

    def _upset(
        self, ctx: BotContext, lang: str, hit: Entry | None, confidence: float | None
    ) -> BotTurn:
        lines = _LINES[lang]
        if hit is not None:
            _remember(ctx.memory, hit.id)
        if ctx.state == "queued":
            # No second handoff, but an answer if we have one is still worth giving.
            replies = [lines["upset_queued"]]
            if hit is not None:
                replies.insert(0, hit.answer.get(lang))
            return self._say(
                ctx.memory, "upset", replies, intents=[hit.id] if hit else [], confidence=confidence
            )
        group = hit.group if hit is not None else "complaints"
        return self._handoff(
            ctx,
            "upset",
            [lines["upset"]],
            group=group,
            intents=[hit.id] if hit else [],
            confidence=confidence,
        )

    def _handoff(
        self,
        ctx: BotContext,
        reason: str,
        replies: list[str],
        *,
        group: str | None = None,
        priority: str = NORMAL,
        intents: list[str] | None = None,
        confidence: float | None = None,
    ) -> BotTurn:
        mem = ctx.memory
        known: list[str] = list(mem.get("intents", []))
        if group is None:
            # The latest topic the customer raised decides who can help.
            entry = next((e for i in reversed(known) if (e := self.kb.get(i)) is not None), None)
            group = entry.group if entry is not None else "general"
        # "misses" is left as is: the hub reads it into the handoff record.
        mem["last"] = "handoff"
        return BotTurn(
            replies=replies,
            handoff=Handoff(reason=reason, group=group, priority=priority, intents=known),
            intents=intents or [],
            confidence=confidence,
        )

    def _say(
        self,
        mem: dict[str, Any],
        last: str,
        replies: list[str],
        *,
        intents: list[str] | None = None,
        confidence: float | None = None,
    ) -> BotTurn:
        mem["last"] = last
        return BotTurn(replies=replies, intents=intents or [], confidence=confidence)

    def _queue_line(self, ctx: BotContext, lang: str) -> str:
        lines = _LINES[lang]
        if ctx.queue_position is None:
            return lines["queued"]
        # Quote the hub's number as is ("第 3 位") rather than guess whether it
        # counts the customer.
        pos = ctx.queue_position
        if ctx.queue_eta_s is None:
            return lines["queued_pos"].format(pos=pos)
        mins = max(1, round(ctx.queue_eta_s / 60))
        return lines["queued_pos_eta"].format(pos=pos, mins=mins)


def _remember(mem: dict[str, Any], entry_id: str) -> None:
    intents: list[str] = list(mem.get("intents", []))
    if entry_id not in intents:
        intents.append(entry_id)
    mem["intents"] = intents


def _lang(lang: str | None) -> str:
    return lang if lang in _LINES else "zh"

"""KnowledgeBot as the hub drives it: greet, answer, hand off, remember, in both states."""

from __future__ import annotations

import json

import pytest

from server.bot import KnowledgeBase, KnowledgeBot
from server.bot.kb import parse_kb
from server.bot.triggers import asks_wait, is_upset, wants_person
from server.botstage import NORMAL, URGENT, BotContext, BotStage


def entry(
    id: str,
    group: str,
    title: str,
    zh: list[str],
    en: list[str],
    kw: list[str],
    urgent: bool = False,
) -> dict:
    return {
        "id": id,
        "title": {"zh": title, "en": id.replace("-", " ").title()},
        "group": group,
        "flags": ["urgent"] if urgent else [],
        "keywords": {"zh": kw},
        "questions": {"zh": zh, "en": en},
        "answer": {"zh": f"【{id}】中文答案", "en": f"[{id}] English answer"},
    }


KB = parse_kb(
    {
        "version": 1,
        "bank": "示例银行",
        "entries": [
            entry(
                "card-lost",
                "cards",
                "借记卡挂失",
                ["银行卡丢了怎么办", "借记卡丢失怎么挂失", "我的卡找不到了", "卡掉了要挂失"],
                ["I lost my debit card", "how do I report a lost card"],
                ["挂失", "丢卡"],
                urgent=True,
            ),
            entry(
                "card-unlock-report",
                "cards",
                "解除挂失",
                ["卡找到了怎么解挂", "怎么解除挂失", "挂失后找回卡还能用吗"],
                ["I found my card, how do I cancel the loss report"],
                ["解挂", "解除挂失"],
            ),
            entry(
                "transfer-limits",
                "payments",
                "转账限额",
                ["转账限额是多少", "一天最多能转多少钱", "单笔转账上限是多少"],
                ["what is the transfer limit", "how much can I transfer per day"],
                ["转账限额"],
            ),
            entry(
                "transfer-arrival-time",
                "payments",
                "转账到账时间",
                ["跨行转账多久到账", "转账什么时候能到", "转账要等几天到账"],
                ["how long does a transfer take to arrive"],
                ["到账时间"],
            ),
            entry(
                "hotline-hours",
                "general",
                "客服电话和人工服务时间",
                ["客服电话是多少", "人工客服几点上班", "热线电话多少"],
                ["what is the customer service number", "when are agents available"],
                ["客服电话"],
            ),
            entry(
                "points",
                "credit_card",
                "积分查询与兑换",
                ["信用卡积分怎么查", "积分可以换什么", "积分什么时候过期"],
                ["how do I check my reward points", "do my points expire"],
                ["积分"],
            ),
            entry(
                "points-transfer",
                "credit_card",
                "积分转赠",
                ["积分能转给家人吗", "积分怎么转让给别人"],
                ["can I give my points to family"],
                ["积分转赠"],
            ),
        ],
    }
)


@pytest.fixture
def kb() -> KnowledgeBase:
    return KB


@pytest.fixture
def bot(kb: KnowledgeBase) -> KnowledgeBot:
    return KnowledgeBot(kb)


def chat(lang: str = "zh", **kw) -> BotContext:  # type: ignore[no-untyped-def]
    return BotContext(conv_id="c1", customer_name="张三", lang=lang, **kw)


def answer_of(kb: KnowledgeBase, entry_id: str, lang: str = "zh") -> str:
    return kb[entry_id].answer.get(lang)


# --- greeting and plain answers --------------------------------------------------------


def test_bot_is_a_botstage(bot: KnowledgeBot) -> None:
    """KnowledgeBot fits the hub's BotStage seam."""
    stage: BotStage = bot
    assert stage.greet(chat()).replies


@pytest.mark.parametrize(
    ("lang", "words"), [("zh", ["示例银行", "人工"]), ("en", ["示例银行", "agent"])]
)
def test_greeting_names_the_bank_and_the_way_to_a_person(
    bot: KnowledgeBot, lang: str, words: list[str]
) -> None:
    """The greeting is in the chat's language, says who it is and how to reach a person."""
    turn = bot.greet(chat(lang))
    assert len(turn.replies) == 1 and turn.handoff is None
    assert all(w in turn.replies[0] for w in words)


def test_confident_match_answers_then_asks_if_solved(bot: KnowledgeBot, kb: KnowledgeBase) -> None:
    """A clear question gets the entry's answer and one follow-up line offering a person."""
    ctx = chat()
    turn = bot.answer(ctx, "请问转账限额是多少？")
    assert turn.replies == [
        answer_of(kb, "transfer-limits"),
        "以上是否解决了您的问题？如需人工服务，请回复「人工」。",
    ]
    assert turn.handoff is None and not turn.missed
    assert (
        turn.intents == ["transfer-limits"]
        and turn.confidence is not None
        and turn.confidence >= bot.threshold
    )
    assert ctx.memory["intents"] == ["transfer-limits"]


def test_english_customer_gets_the_english_answer(bot: KnowledgeBot, kb: KnowledgeBase) -> None:
    """An English question is answered from the entry's English text."""
    turn = bot.answer(chat("en"), "How do I check my reward points?")
    assert turn.replies[0] == answer_of(kb, "points", "en") and "agent" in turn.replies[1]


def test_reply_follows_the_language_the_customer_writes(
    bot: KnowledgeBot, kb: KnowledgeBase
) -> None:
    """An English chat that writes Chinese is answered in Chinese, framing lines included."""
    turn = bot.answer(chat("en"), "信用卡积分怎么查")
    assert turn.replies == [
        answer_of(kb, "points"),
        "以上是否解决了您的问题？如需人工服务，请回复「人工」。",
    ]


def test_unknown_question_is_a_plain_miss(bot: KnowledgeBot) -> None:
    """Below the thresholds the bot says it does not know and marks the turn missed."""
    turn = bot.answer(chat(), "今天天气怎么样")
    assert turn.missed and turn.handoff is None and turn.intents == []
    assert "无法回答" in turn.replies[0] and "人工" in turn.replies[0]


def test_thanks_closes_without_counting_a_miss(bot: KnowledgeBot) -> None:
    """谢谢 / 好的 get a short closing line and leave the miss count alone."""
    ctx = chat()
    bot.answer(ctx, "今天天气怎么样")
    for text in ("好的，谢谢！", "thanks"):
        turn = bot.answer(ctx, text)
        assert not turn.missed and turn.handoff is None and len(turn.replies) == 1
    assert ctx.memory["misses"] == 1


def test_greeting_alone_prompts_for_the_question(bot: KnowledgeBot) -> None:
    """A bare 你好 is not a question, so it is not a miss either."""
    turn = bot.answer(chat(), "你好")
    assert not turn.missed and turn.replies == ["您好，请问有什么可以帮您？"]


# --- handoff triggers ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "人工",
        "转人工！",
        "我要人工客服",
        "找人",
        "真人",
        "客服在吗",
        "agent",
        "I want to talk to a real person",
    ],
)
def test_asking_for_a_person_hands_off(bot: KnowledgeBot, text: str) -> None:
    """Asking for a person hands off at once to the general group."""
    turn = bot.answer(chat(), text)
    assert turn.handoff is not None and turn.handoff.reason == "customer_asked"
    assert turn.handoff.group == "general" and turn.handoff.priority == NORMAL


def test_asking_for_a_person_goes_to_the_group_of_the_topic(bot: KnowledgeBot) -> None:
    """After a topic was discussed, the handoff goes to its group and carries its id."""
    ctx = chat()
    bot.answer(ctx, "信用卡积分怎么查")
    turn = bot.answer(ctx, "转人工")
    assert turn.handoff is not None and turn.handoff.group == "credit_card"
    assert turn.handoff.intents == ["points"]


def test_question_asked_with_the_request_routes_the_handoff(bot: KnowledgeBot) -> None:
    """ "转账限额是多少？转人工" hands off to payments; a bare "转人工" records no topic."""
    turn = bot.answer(chat(), "转账限额是多少？转人工")
    assert turn.handoff is not None and turn.handoff.reason == "customer_asked"
    assert turn.handoff.group == "payments" and turn.handoff.intents == ["transfer-limits"]
    bare = bot.answer(chat(), "转人工")  # 人工 also appears in a hotline question
    assert bare.intents == [] and bare.confidence is None


@pytest.mark.parametrize(
    "text", ["客服电话是多少", "人工客服几点上班", "what is the customer service number"]
)
def test_asking_about_the_hotline_is_a_question_not_a_handoff(
    bot: KnowledgeBot, kb: KnowledgeBase, text: str
) -> None:
    """客服电话是多少 names 客服 but asks for the hotline topic: answered, no handoff."""
    turn = bot.answer(chat(), text)
    assert turn.handoff is None and turn.intents == ["hotline-hours"]


def test_two_misses_in_a_row_hand_off(bot: KnowledgeBot) -> None:
    """The second consecutive miss hands off, still reporting the question as missed."""
    ctx = chat()
    first = bot.answer(ctx, "今天天气怎么样")
    second = bot.answer(ctx, "帮我订一张去北京的机票")
    assert first.handoff is None and first.missed
    assert second.missed and second.handoff is not None and second.handoff.reason == "misses"
    assert second.handoff.group == "general"


def test_a_hit_resets_the_miss_count(bot: KnowledgeBot) -> None:
    """miss, hit, miss: never two in a row, so no handoff."""
    ctx = chat()
    bot.answer(ctx, "今天天气怎么样")
    assert bot.answer(ctx, "转账限额是多少").intents == ["transfer-limits"]
    assert ctx.memory["misses"] == 0
    assert bot.answer(ctx, "帮我订一张去北京的机票").handoff is None


def test_no_after_an_answer_counts_as_a_miss(bot: KnowledgeBot) -> None:
    """ "没解决" after an answer counts toward the two misses, without a missed question."""
    ctx = chat()
    bot.answer(ctx, "转账限额是多少")
    turn = bot.answer(ctx, "没解决")
    assert turn.handoff is None and not turn.missed and ctx.memory["misses"] == 1
    assert bot.answer(ctx, "今天天气怎么样").handoff is not None


def test_urgent_topic_answers_then_hands_off_urgently(bot: KnowledgeBot, kb: KnowledgeBase) -> None:
    """A lost card gets the safe first step, then an URGENT handoff to the cards group."""
    turn = bot.answer(chat(), "我的银行卡丢了怎么办")
    assert turn.replies[0] == answer_of(kb, "card-lost")
    assert turn.handoff is not None
    assert (turn.handoff.reason, turn.handoff.priority, turn.handoff.group) == (
        "urgent",
        URGENT,
        "cards",
    )
    assert turn.handoff.intents == ["card-lost"] and turn.intents == ["card-lost"]


def test_urgent_answer_that_announces_the_transfer_is_not_repeated() -> None:
    """When the KB answer already says it is transferring, the bot adds no second line."""
    data = entry(
        "card-lost",
        "cards",
        "借记卡挂失",
        ["银行卡丢了怎么办", "卡丢了怎么挂失"],
        ["lost card"],
        ["挂失"],
        True,
    )
    data["answer"]["zh"] = "请立即挂失。正在为您转接人工客服，请稍候。"
    other = entry("points", "credit_card", "积分", ["积分怎么查"], ["points"], ["积分"])
    bot = KnowledgeBot(parse_kb({"version": 1, "entries": [data, other]}))
    turn = bot.answer(chat(), "银行卡丢了怎么办")
    assert (
        turn.replies == ["请立即挂失。正在为您转接人工客服，请稍候。"] and turn.handoff is not None
    )


def test_urgent_handoff_carries_earlier_intents(bot: KnowledgeBot) -> None:
    """Handoff.intents lists every topic detected in the chat, in order."""
    ctx = chat()
    bot.answer(ctx, "转账限额是多少")
    turn = bot.answer(ctx, "我的银行卡丢了怎么办")
    assert turn.handoff is not None and turn.handoff.intents == ["transfer-limits", "card-lost"]


@pytest.mark.parametrize(
    "text", ["你们服务太差了！", "我要投诉", "卡呢？？？", "THIS IS RIDICULOUS", "什么垃圾服务"]
)
def test_upset_customer_goes_to_complaints(bot: KnowledgeBot, text: str) -> None:
    """Anger hands off with reason upset to the complaints group when no topic matched."""
    turn = bot.answer(chat(), text)
    assert turn.handoff is not None and (turn.handoff.reason, turn.handoff.group) == (
        "upset",
        "complaints",
    )


def test_upset_about_a_topic_goes_to_its_group(bot: KnowledgeBot) -> None:
    """Anger about a known topic hands off to that topic's group instead."""
    turn = bot.answer(chat(), "转账限额是多少？？？太差了")
    assert turn.handoff is not None and (turn.handoff.reason, turn.handoff.group) == (
        "upset",
        "payments",
    )


def test_spam_and_scammers_are_topics_not_anger() -> None:
    """垃圾短信 and a scammer posing as the bank are not anger at the bank."""
    assert not is_upset("收到垃圾短信") and not is_upset("有骗子冒充你们客服给我打电话")
    assert is_upset("你们就是骗子")
    assert not wants_person("有人冒充客服给我发短信")


@pytest.mark.parametrize(
    ("text", "wanted"),
    [
        ("客服你好，我的卡丢了", False),
        ("人工客服几点上班", False),
        ("客服在吗", True),
        ("I need to report that someone took money", False),
        ("Can I speak to someone?", True),
    ],
)
def test_addressing_the_chat_is_not_asking_for_a_person(text: str, wanted: bool) -> None:
    """客服你好 opens a question; only a request for a person counts as one."""
    assert wants_person(text) is wanted


# --- offering topics ----------------------------------------------------------------------


def test_unsure_offers_topics_and_a_number_picks_one(kb: KnowledgeBase) -> None:
    """In the unsure band the bot lists the closest topics; "2" answers the second."""
    bot = KnowledgeBot(kb, threshold=0.99, offer_threshold=0.05)  # force the unsure band
    ctx = chat()
    offer = bot.answer(ctx, "积分")
    offered = ctx.memory["offered"]
    assert len(offered) >= 2 and not offer.missed and offer.handoff is None
    assert offer.replies[0].count("\n1. ") == 1 and "\n2. " in offer.replies[0]
    assert kb[offered[1]].title.zh in offer.replies[0]
    turn = bot.answer(ctx, "2")
    assert turn.replies[0] == answer_of(kb, offered[1]) and turn.intents == [offered[1]]
    assert "offered" not in ctx.memory


def test_chinese_ordinal_picks_and_offers_expire(kb: KnowledgeBase) -> None:
    """第一个 picks the first offer; after another question, a number picks nothing."""
    bot = KnowledgeBot(kb, threshold=0.99, offer_threshold=0.05)
    ctx = chat()
    bot.answer(ctx, "积分")
    first = ctx.memory["offered"][0]
    assert bot.answer(ctx, "第一个").intents == [first]
    bot.answer(ctx, "好的")
    assert bot.answer(ctx, "1").intents == []


# --- while queued ---------------------------------------------------------------------------


def queued(**kw) -> BotContext:  # type: ignore[no-untyped-def]
    return chat(state="queued", **kw)


def test_queued_customer_gets_answers_but_no_second_handoff(
    bot: KnowledgeBot, kb: KnowledgeBase
) -> None:
    """While queued the bot still answers, and neither questions nor 人工 hand off again."""
    ctx = queued(queue_position=3, queue_eta_s=240)
    turn = bot.answer(ctx, "转账限额是多少")
    assert turn.replies[0] == answer_of(kb, "transfer-limits") and turn.handoff is None
    assert bot.answer(ctx, "转人工").handoff is None
    assert bot.answer(ctx, "银行卡丢了怎么办").handoff is None  # urgent, but already waiting
    assert bot.answer(ctx, "你们太差了！！！").handoff is None
    for text in ("今天天气怎么样", "帮我订机票", "讲个笑话"):
        assert bot.answer(ctx, text).handoff is None


def test_queued_customer_asking_for_a_person_with_a_question_gets_both(
    bot: KnowledgeBot, kb: KnowledgeBase
) -> None:
    """While queued, "人工" with a question gets the answer and the queue status, no handoff."""
    turn = bot.answer(queued(queue_position=2), "转账限额是多少？我要人工")
    assert turn.handoff is None
    assert turn.replies == [
        answer_of(kb, "transfer-limits"),
        "您已在排队等待人工客服，当前排在第 2 位，请稍候。",
    ]


@pytest.mark.parametrize(
    "text", ["还要等多久", "排到几号了", "前面还有几个人？", "how long do I have to wait?"]
)
def test_queued_customer_asking_how_long_hears_position_and_eta(
    bot: KnowledgeBot, text: str
) -> None:
    """A wait question while queued quotes the position and the estimate."""
    turn = bot.answer(queued(queue_position=3, queue_eta_s=240), text)
    assert turn.handoff is None and not turn.missed
    assert "3" in turn.replies[0] and "4" in turn.replies[0]


def test_wait_question_without_a_position_still_reassures(bot: KnowledgeBot) -> None:
    """Without a known position the customer is told they are in the queue."""
    turn = bot.answer(queued(), "还要等多久")
    assert turn.replies == ["您已在排队等待人工客服，请稍候。"]


def test_transfer_timing_is_not_a_wait_question(bot: KnowledgeBot) -> None:
    """ "转账多久到账" while queued is the transfer topic, not the queue."""
    assert not asks_wait("跨行转账多久到账")
    turn = bot.answer(queued(queue_position=2), "跨行转账多久到账")
    assert turn.intents == ["transfer-arrival-time"]


# --- memory -----------------------------------------------------------------------------------


def test_memory_stays_json_serialisable(bot: KnowledgeBot, kb: KnowledgeBase) -> None:
    """The hub stores ctx.memory as JSON: a whole conversation round-trips."""
    ctx = chat()
    for text in ("积分怎么查", "今天天气怎么样", "好的谢谢", "转人工"):
        bot.answer(ctx, text)
    restored = chat(memory=json.loads(json.dumps(ctx.memory)))
    assert restored.memory == ctx.memory and restored.memory["intents"] == ["points"]
    assert KnowledgeBot(kb).answer(restored, "转账限额是多少").intents == ["transfer-limits"]

"""Recognise the messages the bot must not treat as a knowledge-base question.

Each detector is a pure predicate on the customer's text: asking for a person,
anger, a closing "thanks", "that did not help", a pick from offered topics, a
question about the wait. They are rules, not a model: every one of them must be
explainable to a supervisor reading a transcript.
"""

from __future__ import annotations

import re

from .text import fold

# --- asking for a person -----------------------------------------------------

_ZH_PERSON = (
    r"(?:人工客服|人工服务|人工坐席|人工|真人|活人|客服人员|客服|坐席|工作人员|接线员|柜员|专员)"
)
# A verb that asks for one: 转人工, 找客服, 要真人, 来个人...
_ZH_ASK_RE = re.compile(
    rf"(?:转|转接|接|找|要|叫|换|请|需要|联系|呼叫|申请|让|来)(?:一个|一位|个|位|下|一下)?{_ZH_PERSON}"
    r"|找(?:个|一个)?人|来(?:个|一个)人|(?:跟|和|与)(?:真)?人(?:说|聊|沟通|对话)"
    r"|(?:不要|不想|别|不用|不跟|不和)(?:跟|和|与)?(?:你|机器人|机器|智能客服|ai|robot)"
)
# What is left once the person word and polite filler go: if nothing, the
# whole message was "人工" / "客服在吗" / "转人工！".
_ZH_FILLER_RE = re.compile(
    rf"{_ZH_PERSON}|我要|我想|我需要|给我|帮我|麻烦|请|快点|快|马上|赶紧|立刻|直接|你们的|你们|的|服务|"
    r"转接|转|接|找|要|在吗|在不在|有吗|呢|吗|啊|吧|呀|哦|了|一下|你好|您好"
)
# A message that is *about* the service line (its number, its hours) or about
# someone posing as it, rather than a request for a person.
_ZH_ABOUT_RE = re.compile(
    r"电话|热线|号码|几点|时间|几号|上班|下班|营业|拨打|打通|打不通|多少|工作日|周末|节假日"
    r"|冒充|假冒|自称|假的|说我|说的|告诉我|让我|叫我|说要|回复我"
)

# Strong words name a person whatever the verb; weak ones ("someone") only
# with a verb of talking, since "I need to report that someone took money"
# is a question.
_EN_STRONG = (
    r"(?:agent|human|real person|live person|operator|representative|rep|staff|customer service|"
    r"live chat|advisor|adviser|manager)"
)
_EN_WEAK = r"(?:person|someone|somebody|people)"
_EN_ASK_RE = re.compile(
    rf"\b(?:talk|speak|chat|connect|transfer|put|get|give|want|need|see|reach|call)\b.*\b{_EN_STRONG}\b"
    rf"|\b(?:talk|speak|chat|connect|transfer|put)\b.*\b{_EN_WEAK}\b"
    r"|\b(?:no|not a|stop the|dont want (?:a |the )?)(?:bot|robot|machine)\b"
)
_EN_FILLER_RE = re.compile(
    rf"\b(?:{_EN_STRONG}|{_EN_WEAK}|i|want|need|an|a|the|please|pls|to|talk|speak|with|now|me|give|"
    r"get|connect|real|live|can|could|you|hello|hi|hey|just|let|a)\b"
)
_EN_ABOUT_RE = re.compile(
    r"\b(?:number|phone|hotline|hours|open|opening|what time|fake|pretend|pretending|claim|claimed|"
    r"claiming|impersonat\w*|said|told|says)\b"
)


def wants_person(text: str) -> bool:
    """The customer asks for a human, rather than asking about the service line.

    Either the whole message is a person word and filler ("人工", "客服在吗",
    "agent please"), or some clause asks for one with a verb ("转人工",
    "talk to an agent"). A clause about the line itself ("客服电话是多少")
    never counts, so "转账限额是多少？转人工" is a request and "客服你好，
    我的卡丢了" (addressing the chat) is not.
    """
    t = fold(text)
    clauses = [c for c in _CLAUSE_SPLIT_RE.split(t) if c.strip()]
    if any(_about_the_line(c) for c in clauses) and len(clauses) == 1:
        return False
    compact = re.sub(r"[^\w]+", "", t)
    if re.search(_ZH_PERSON, compact) and not _ZH_FILLER_RE.sub("", compact):
        return True
    words = _words(t)
    if (
        re.search(rf"\b(?:{_EN_STRONG}|{_EN_WEAK})\b", words)
        and not _EN_FILLER_RE.sub(" ", words).strip()
    ):
        return True
    return any(
        not _about_the_line(c)
        and (_ZH_ASK_RE.search(re.sub(r"\s+", "", c)) or _EN_ASK_RE.search(_words(c)))
        for c in clauses
    )


_CLAUSE_SPLIT_RE = re.compile(r"[,.!?;，。！？；、\n]+")


def _words(text: str) -> str:
    return re.sub(r"[^a-z ]+", " ", text.replace("'", ""))


def _about_the_line(clause: str) -> bool:
    return bool(
        _ZH_ABOUT_RE.search(re.sub(r"\s+", "", clause)) or _EN_ABOUT_RE.search(_words(clause))
    )


_EN_ASK_VERBS_RE = re.compile(
    r"\b(?:(?:can|could) i |i (?:want|need|would like) to |let me )?"
    r"(?:(?:talk|speak|chat)(?: to| with)?|(?:connect|transfer|put) me(?: to| through)?)\b"
)


def without_person_request(text: str) -> str:
    """`text` with the request for a person cut out, leaving any question.

    "转账限额多少？转人工" still asks about transfer limits; "转人工" alone
    must not match the hotline topic just because it says 人工.
    """
    t = _ZH_ASK_RE.sub(" ", fold(text))
    t = re.sub(_ZH_PERSON, " ", t)
    t = re.sub(rf"\b(?:a |an |the |real |live )?(?:{_EN_STRONG}|{_EN_WEAK})\b", " ", t)
    return _EN_ASK_VERBS_RE.sub(" ", t)


# --- anger --------------------------------------------------------------------

_ZH_UPSET_RE = re.compile(
    r"投诉|生气|气死|太差|很差|真差|差劲|骗子|骗人|坑人|坑爹|什么破|破银行|破app|破系统|无语|恶心|"
    r"滚(?!动)|妈的|tmd|他妈|尼玛|混蛋|有病|脑残|弱智|受够|忍无可忍|曝光|12378|银保监|金融监管|监管局|"
    r"太烂|烂透|我服了|真服了|服了你|搞什么|什么玩意|欺负|态度差|差评|愤怒|火大|离谱|垃圾"
)
# Words that sound angry but name the problem: spam texts, a scammer who
# impersonated the bank. Those go to the matcher (phishing, fraud), not to
# a complaints queue.
_ZH_NOT_UPSET_RE = re.compile(
    r"垃圾(?:短信|邮件|电话|信息|广告)|(?:信号|网络|网速|网)太差"
    r"|(?:被|遇到|遇上|碰到|疑似|可能是|好像是)骗子|骗子(?:冒充|假冒|打|发|给我|让我|骗|的?电话|的?短信)"
    r"|(?:冒充|假冒)\S*骗子"
)
_EN_UPSET_RE = re.compile(
    r"\b(?:complain\w*|angry|furious|pissed|terrible|horrible|awful|useless|ridiculous|pathetic|worst|"
    r"rubbish|garbage|trash|disgust\w*|unacceptable|fed up|sick of|wtf|fuck\w*|shit\w*|damn|stupid|idiot\w*|"
    r"incompetent|(?:this is|what) a joke)\b"
    r"|\byou(?:r| guys| people)? (?:are |r )?(?:scammers|thieves|crooks|frauds|liars|cheats)\b"
)
_SHOUT_RE = re.compile(r"[?？!！]{3,}")
# Capitals that are names, not shouting.
_ACRONYMS = frozenset(
    "ATM PIN SWIFT SMS OTP USD CNY RMB APP VIP ID UK US FX CD IBAN QR SIM OK AM PM HK EU".split()
)


def is_upset(text: str) -> bool:
    """Clear anger: a complaint, an insult, ？？？/!!!, or English in capitals."""
    t = fold(text)
    compact = re.sub(r"\s+", "", t)
    if _SHOUT_RE.search(compact):
        return True
    zh = _ZH_NOT_UPSET_RE.sub("", compact)
    if _ZH_UPSET_RE.search(zh) or _EN_UPSET_RE.search(t):
        return True
    return _shouting(text)


def _shouting(text: str) -> bool:
    words = [w for w in re.findall(r"[A-Za-z]{3,}", text) if w not in _ACRONYMS]
    letters = sum(len(w) for w in words)
    return len(words) >= 2 and letters >= 8 and all(w.isupper() for w in words)


# --- closing, unsolved, picks, waiting -------------------------------------------

_CLOSING_RE = re.compile(
    r"(?:谢谢|谢了|多谢|感谢|好的|好滴|好嘞|好|行|嗯|哦|噢|知道了|知道|明白了|明白|懂了|了解了|了解|收到|"
    r"解决了|已解决|可以了|没问题了|没问题|没事了|没有了|没了|不用了|拜拜|再见|"
    r"ok|okay|thanks|thankyou|thanku|thx|ty|great|gotit|solved|thathelps|thathelped|ithelped|helpful|"
    r"perfect|cool|bye|goodbye|allgood|fine|yes|yep|yeah|"
    r"谢谢你|谢谢您|谢啦|啦|了|哈|呀|啊|的|非常|太|很|somuch|alot|verymuch|much|it|that|is|was|you|u)+"
)


def is_closing(text: str) -> bool:
    """Only thanks / ok / solved, nothing more to answer."""
    t = fold(text)
    for emoji in "👍🙏👌🤝":
        t = t.replace(emoji, "ok")
    t = re.sub(r"[\W_]+", "", t)
    return bool(t) and _CLOSING_RE.fullmatch(t) is not None


_UNSOLVED_RE = re.compile(
    r"(?:没|没有|未|还没)(?:有)?解决|没用|没有用|不行|还是不行|不对|不是(?:这个|我要的|我问的|这样)?|没有|否|"
    r"答非所问|都不是|没帮助|不管用|看不懂|"
    r"no|nope|not really|not solved|not helpful|none|none of (?:them|these|those)|neither|"
    r"(?:it |that )?(?:didnt|doesnt|did not|does not) help|wrong answer|not (?:it|quite|what i asked)"
)


def is_unsolved(text: str) -> bool:
    """A "no" to "did that solve it?" (or to a list of offered topics)."""
    t = re.sub(r"[^\w ]+", "", fold(text).replace("'", "")).strip()
    t = re.sub(r"\s+", " ", t)
    zh = t.replace(" ", "")
    return bool(_UNSOLVED_RE.fullmatch(zh) or _UNSOLVED_RE.fullmatch(t))


_ORDINALS = {
    "1": 1,
    "2": 2,
    "3": 3,
    "一": 1,
    "二": 2,
    "两": 2,
    "三": 3,
    "one": 1,
    "two": 2,
    "three": 3,
    "first": 1,
    "second": 2,
    "third": 3,
}
_PICK_ZH_RE = re.compile(
    r"(?:我选|选择|选|要|就|是)?第?([123一二两三])(?:个|项|条|号|种)?(?:吧|呢|啊)?"
)
_PICK_EN_RE = re.compile(
    r"(?:the |option |number |no |choice )?#?(1|2|3|one|two|three|first|second|third)(?: one| option)?"
)


def pick_choice(text: str) -> int | None:
    """1-based choice among offered topics ("2", "第二个", "the second one"), else None."""
    t = fold(text).strip()
    t = re.sub(r"[.。!！?？,，、)）]+$", "", t).strip()
    m = _PICK_ZH_RE.fullmatch(t.replace(" ", "")) or _PICK_EN_RE.fullmatch(re.sub(r"\s+", " ", t))
    return _ORDINALS[m.group(1)] if m else None


# Clearly about the queue: waiting, turn, how many ahead.
_WAIT_RE = re.compile(
    r"等多久|等多长时间|还要等|还得等|排到|排第几|第几位|第几个|第几号|前面还有|前面有|几个人|多少人|"
    r"轮到|排队|等了"
    r"|how long (?:do|will|must|should|would|shall|have) i\b|how long (?:is|will be) (?:the |my )?(?:wait|queue)"
    r"|how much longer|(?:my|what'?s my) (?:position|place|turn)|how many (?:people )?(?:are )?(?:ahead|before|in front)"
    r"|when (?:is|will it be|will be) my turn|still waiting|wait time|waiting time"
)
# "还要多久" / "how long" on their own, which only mean the queue while queued.
_WAIT_SHORT_RE = re.compile(r"(?:还要|还需要|要)?多久|多长时间|how long|how much longer")


def asks_wait(text: str) -> bool:
    """The customer asks how long until a person takes the chat."""
    t = fold(text)
    if _WAIT_RE.search(t.replace(" ", "")) or _WAIT_RE.search(t):
        return True
    short = re.sub(r"[^\w ]+", "", t).strip()
    return bool(_WAIT_SHORT_RE.fullmatch(short.replace(" ", "")) or _WAIT_SHORT_RE.fullmatch(short))

"""The knowledge base loader and the matcher, on a small KB written per test."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from server.bot import KBError, KnowledgeBase, Matcher, load_kb
from server.bot.matcher import ANSWER_THRESHOLD
from server.bot.text import detect_lang, en_tokens, stem, zh_segments

ROOT = Path(__file__).resolve().parents[1]
KB_PATH = ROOT / "server" / "bot" / "data" / "kb.yaml"
EVAL_PATH = ROOT / "bench" / "data" / "bot_eval.yaml"


def entry(
    id: str,
    group: str,
    title: tuple[str, str],
    zh: list[str],
    en: list[str],
    kw_zh: list[str] = (),
    kw_en: list[str] = (),
    flags: list[str] = (),  # type: ignore[assignment]
) -> dict:
    return {
        "id": id,
        "title": {"zh": title[0], "en": title[1]},
        "group": group,
        "flags": list(flags),
        "keywords": {"zh": list(kw_zh), "en": list(kw_en)},
        "questions": {"zh": zh, "en": en},
        "answer": {"zh": f"{title[0]}的答案。", "en": f"Answer about {title[1].lower()}."},
    }


FIXTURE = {
    "version": 1,
    "bank": "示例银行",
    "entries": [
        entry(
            "card-lost",
            "cards",
            ("借记卡挂失", "Report a lost debit card"),
            ["银行卡丢了怎么办", "借记卡丢失怎么挂失", "我的卡找不到了", "卡掉了要挂失"],
            ["I lost my debit card", "how do I report a lost card"],
            ["挂失", "丢卡", "卡丢了"],
            ["lost card"],
            ["urgent"],
        ),
        entry(
            "card-unlock-report",
            "cards",
            ("解除挂失", "Cancel a loss report"),
            ["卡找到了怎么解挂", "怎么解除挂失", "挂失后找回卡能用吗"],
            ["I found my card, how do I cancel the loss report"],
            ["解挂", "解除挂失"],
        ),
        entry(
            "transfer-failed",
            "payments",
            ("转账失败", "Transfer failed"),
            ["手机银行转账失败", "转账一直不成功", "网银转不了账"],
            ["my transfer failed", "online transfer not going through"],
            ["转账失败"],
        ),
        entry(
            "transfer-limits",
            "payments",
            ("转账限额", "Transfer limits"),
            ["转账限额是多少", "一天最多能转多少钱", "单笔转账上限"],
            ["what is the transfer limit", "how much can I transfer per day"],
            ["限额"],
        ),
        entry(
            "mobile-password-reset",
            "digital",
            ("重置手机银行登录密码", "Reset mobile banking password"),
            ["手机银行登录密码忘了", "登录密码怎么重置", "忘记手机银行密码"],
            ["I forgot my mobile banking password", "reset my app login password"],
            ["忘记密码"],
        ),
        entry(
            "hotline-hours",
            "general",
            ("客服电话和人工服务时间", "Hotline and service hours"),
            ["客服电话是多少", "人工客服几点上班", "热线电话多少"],
            ["what is the customer service number", "when are agents available"],
            ["客服电话"],
        ),
        entry(
            "branch-hours",
            "general",
            ("网点营业时间", "Branch opening hours"),
            ["网点几点开门", "周末网点营业吗", "营业时间是几点到几点"],
            ["when does the branch open", "are branches open on weekends"],
            ["营业时间"],
        ),
        entry(
            "complaint",
            "complaints",
            ("我要投诉", "Make a complaint"),
            ["怎么投诉", "我要投诉你们", "投诉渠道有哪些"],
            ["how do I make a complaint"],
            ["投诉"],
        ),
        entry(
            "points",
            "credit_card",
            ("积分查询与兑换", "Reward points"),
            ["信用卡积分怎么查", "积分可以换什么", "积分什么时候过期"],
            ["how do I check my reward points", "do my points expire"],
            ["积分"],
        ),
    ],
}


@pytest.fixture
def kb_file(tmp_path: Path) -> Path:
    path = tmp_path / "kb.yaml"
    path.write_text(yaml.safe_dump(FIXTURE, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture
def kb(kb_file: Path) -> KnowledgeBase:
    return load_kb(kb_file)


@pytest.fixture
def matcher(kb: KnowledgeBase) -> Matcher:
    return Matcher(kb)


def write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text(
        yaml.safe_dump(data, allow_unicode=True) if not isinstance(data, str) else data, "utf-8"
    )
    return path


def broken(mutate) -> dict:  # type: ignore[no-untyped-def]
    data = yaml.safe_load(yaml.safe_dump(FIXTURE, allow_unicode=True))
    mutate(data)
    return data


def top(matcher: Matcher, text: str, lang: str | None = None) -> str | None:
    found = matcher.match(text, lang, min_score=ANSWER_THRESHOLD)
    return found[0].entry_id if found else None


# --- loader ----------------------------------------------------------------------


def test_load_builds_typed_entries(kb: KnowledgeBase) -> None:
    """A good file loads into entries with lookup by id and bilingual text."""
    assert len(kb) == len(FIXTURE["entries"]) and kb.bank == "示例银行"
    lost = kb["card-lost"]
    assert lost.urgent and lost.group == "cards"
    assert lost.answer.get("en").startswith("Answer about") and lost.answer.get("zh").endswith(
        "答案。"
    )
    assert "挂失" in lost.keywords.zh


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (
            lambda d: d["entries"][1].update(id="card-lost"),
            "'card-lost' (#2): id: duplicate of entry #1",
        ),
        (
            lambda d: d["entries"][2]["answer"].pop("zh"),
            "'transfer-failed' (#3): answer.zh: missing",
        ),
        (
            lambda d: d["entries"][0].update(flags=["urgnet"]),
            "'card-lost' (#1): flags: unknown flag 'urgnet'",
        ),
        (
            lambda d: d["entries"][3].update(group="payment"),
            "'transfer-limits' (#4): group: unknown skill group",
        ),
        (
            lambda d: d["entries"][0].update(keyword=["x"]),
            "'card-lost' (#1): unknown field 'keyword'",
        ),
        (lambda d: d["entries"][4]["questions"].update(zh=[]), "questions.zh: missing"),
        (
            lambda d: d["entries"][4]["questions"]["en"].append(False),
            "questions.en[2]: expected a non-empty string",
        ),
        (
            lambda d: d["entries"][0].update(id="Card Lost"),
            "entry #1: id: expected a lowercase slug",
        ),
        (lambda d: d.update(version=2), "version: expected one of [1]"),
    ],
)
def test_bad_kb_names_entry_and_field(tmp_path: Path, mutate, needle: str) -> None:  # type: ignore[no-untyped-def]
    """Each kind of mistake raises KBError naming the entry and the field."""
    with pytest.raises(KBError) as err:
        load_kb(write(tmp_path, broken(mutate)))
    assert needle in str(err.value)


def test_shared_question_is_a_warning(tmp_path: Path) -> None:
    """The same phrasing under two topics loads, with a warning naming both."""
    kb = load_kb(
        write(
            tmp_path,
            broken(lambda d: d["entries"][5]["questions"]["zh"].append("转账限额是多少？")),
        )
    )
    assert len(kb.warnings) == 1
    assert (
        "'hotline-hours' (#6): questions.zh: '转账限额是多少？' is also a question of 'transfer-limits'"
        in kb.warnings[0]
    )


def test_unreadable_or_invalid_yaml_is_a_kb_error(tmp_path: Path) -> None:
    """A missing file and broken YAML both raise KBError, so the hub catches one type."""
    with pytest.raises(KBError, match="cannot read"):
        load_kb(tmp_path / "nope.yaml")
    with pytest.raises(KBError, match="not valid YAML"):
        load_kb(write(tmp_path, "entries: [unclosed"))


def test_failed_reload_leaves_the_loaded_kb_working(kb_file: Path, tmp_path: Path) -> None:
    """Reloading a bad file raises, and the KB loaded before keeps matching."""
    kb = load_kb(kb_file)
    matcher = Matcher(kb)
    kb_file.write_text("version: 1\nentries: []\n", encoding="utf-8")
    with pytest.raises(KBError):
        load_kb(kb_file)
    assert top(matcher, "银行卡丢了怎么办") == "card-lost"
    assert load_kb(write(tmp_path, FIXTURE)).entries == kb.entries  # a pure function of the file


# --- normalisation -----------------------------------------------------------------


def test_noise_and_punctuation_are_stripped() -> None:
    """Greetings, particles, punctuation and emoji never reach the scorer."""
    assert zh_segments("你好，请问我的卡丢了怎么办呀😭谢谢！") == [list("我的卡丢了怎么办")]
    assert en_tokens("Hi, I've LOST my cards!!! Thanks") == ["lost", "card"]
    assert stem("transferred") == stem("transfers") == stem("transfer")


def test_language_is_read_from_the_text() -> None:
    """Any Chinese character means Chinese; a lone English word keeps the chat's language."""
    assert detect_lang("ATM吞卡了", "en") == "zh"
    assert detect_lang("lost my card", "zh") == "en"
    assert detect_lang("ATM", "zh") == "zh"


# --- matching ----------------------------------------------------------------------


def test_chinese_matches_without_segmentation(matcher: Matcher) -> None:
    """Unseen Chinese phrasings match through shared characters and bigrams."""
    assert top(matcher, "我借记卡丢了") == "card-lost"
    assert top(matcher, "转账老是失败怎么回事") == "transfer-failed"
    assert top(matcher, "每天转账最多多少钱") == "transfer-limits"


def test_english_matches_with_stemming(matcher: Matcher) -> None:
    """English matches on stemmed words regardless of case and inflection."""
    found = matcher.match("I've LOST my Debit Cards")
    assert found[0].entry_id == "card-lost" and found[0].lang == "en"
    assert top(matcher, "Transfers keep failing") == "transfer-failed"


def test_typos_still_match(matcher: Matcher) -> None:
    """A homophone typo (挂矢) and an English misspelling (pasword) still find the topic."""
    assert top(matcher, "借记卡怎么挂矢") == "card-lost"
    assert top(matcher, "forgot my mobile banking pasword") == "mobile-password-reset"


def test_noise_does_not_change_the_match(matcher: Matcher) -> None:
    """Courtesy words around a question leave its score where it was."""
    plain = matcher.match("积分怎么查")[0]
    noisy = matcher.match("您好！！请问一下，积分怎么查呀？谢谢🙏")[0]
    assert noisy.entry_id == plain.entry_id == "points"
    assert noisy.score == pytest.approx(plain.score)


def test_out_of_scope_gets_no_match(matcher: Matcher) -> None:
    """Questions the KB does not cover come back empty rather than guessed."""
    for text in (
        "今天天气怎么样",
        "帮我订一张去北京的机票",
        "what's the weather like tomorrow",
        "讲个笑话",
    ):
        assert top(matcher, text) is None, text


def test_results_are_ranked_scored_and_limited(matcher: Matcher) -> None:
    """Matches come best first with 0..1 scores, at most `limit` of them."""
    found = matcher.match("卡挂失", limit=2, min_score=0.0)
    assert len(found) == 2 and found[0].score >= found[1].score
    assert all(0.0 <= m.score <= 1.0 for m in found)
    assert matcher.match("") == [] and matcher.match("你好！") == []


# --- the real data -----------------------------------------------------------------


def test_real_eval_set_floor() -> None:
    """On the held-out eval set the matcher stays well above a safety floor."""
    if not (KB_PATH.exists() and EVAL_PATH.exists()):
        pytest.skip(f"needs {KB_PATH.relative_to(ROOT)} and {EVAL_PATH.relative_to(ROOT)}")
    from bench.bot_eval import evaluate, load_cases
    from server.bot import KnowledgeBot

    kb = load_kb(KB_PATH)
    report = evaluate(KnowledgeBot(kb), load_cases(EVAL_PATH))
    assert report["in_scope"]["top1_accuracy"] >= 0.70
    assert report["out_of_scope"]["false_answer_rate"] <= 0.25

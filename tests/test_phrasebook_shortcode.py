"""Shortcode expansion in the reply box."""

from __future__ import annotations

import pytest

from phrasebook import Phrase, PhraseIndex, can_send, expand_shortcode, fill_slot, make_context

NOW = 1736125200.0


@pytest.fixture(scope="module")
def index() -> PhraseIndex:
    phrases = [
        Phrase(id="t:hi:zh", code="hi", title="问候", text="{customer}您好，我是{agent}。", category="问候"),
        Phrase(id="t:hi:en", code="hi", title="Hi", text="Hello {customer}, this is {agent}.", category="问候", lang="en"),
        Phrase(id="t:cf:zh", code="cf", title="拆分", text="您转账[[金额]]元，可拆分为[[笔数]]笔。", category="转账"),
        Phrase(id="t:sd:zh", code="sd", title="稍等", text="请您稍等。", category="稍等"),
    ]  # fmt: skip
    return PhraseIndex(phrases, agent_id="a1")


CTX = make_context(customer="王女士", agent="小李", now=NOW)


def test_slash_code_at_cursor_inserts_the_phrase(index):
    """`/hi` before the cursor becomes the greeting, cursor after it."""
    draft = "/hi"
    exp = expand_shortcode(draft, len(draft), index, "zh", CTX)
    assert exp is not None
    assert exp.text == "王女士您好，我是小李。"
    assert (exp.start, exp.end) == (0, len(exp.text))
    assert exp.cursor == len(exp.text) and exp.selection is None and exp.slots == ()
    assert exp.phrase.id == "t:hi:zh"


def test_semicolon_trigger_mid_draft_keeps_surrounding_text(index):
    """`;sd` after Chinese text expands in place; text after the cursor is kept."""
    draft = "好的;sd 谢谢"
    cursor = draft.index(" ")
    exp = expand_shortcode(draft, cursor, index, "zh", CTX)
    assert exp is not None
    assert exp.text == "好的请您稍等。 谢谢"
    assert exp.start == 2 and exp.cursor == exp.end == 2 + len("请您稍等。")


def test_expansion_selects_the_first_slot(index):
    """Slots are reported in the new text and the first one is selected."""
    draft = "您好，/cf"
    exp = expand_shortcode(draft, len(draft), index, "zh", CTX)
    assert exp is not None
    assert exp.text == "您好，您转账[[金额]]元，可拆分为[[笔数]]笔。"
    assert [s.label for s in exp.slots] == ["金额", "笔数"]
    assert exp.selection == (exp.slots[0].start, exp.slots[0].end)
    assert exp.text[exp.selection[0] : exp.selection[1]] == "[[金额]]"
    assert exp.cursor == exp.selection[0]
    assert not can_send(exp.text)
    text = fill_slot(exp.text, exp.slots[1], "2")  # fill from the end so spans stay valid
    text = fill_slot(text, exp.slots[0], "80,000")
    assert text == "您好，您转账80,000元，可拆分为2笔。" and can_send(text)


def test_chat_language_picks_the_english_twin_and_falls_back_to_zh(index):
    """In an English chat /hi is English; a code without English falls back to zh."""
    en_ctx = make_context(customer="Mr Smith", agent="Li", now=NOW, lang="en")
    exp = expand_shortcode("/hi", 3, index, "en", en_ctx)
    assert exp is not None and exp.text == "Hello Mr Smith, this is Li."
    exp = expand_shortcode("/sd", 3, index, "en", en_ctx)
    assert exp is not None and exp.phrase.lang == "zh"


@pytest.mark.parametrize(
    ("draft", "cursor"),
    [
        ("/nope", 5),  # unknown code
        ("hi", 2),  # no trigger
        ("http://x.cn/hi", 14),  # a URL, not a trigger
        ("abc;hi", 6),  # trigger glued to an English word
        ("/hi", 2),  # cursor inside the code
        ("/hix", 3),  # code continues after the cursor
        ("/", 1),  # trigger alone
        ("", 0),
    ],
)
def test_no_expansion_when_there_is_no_shortcode_at_the_cursor(index, draft, cursor):
    """Ordinary text, URLs and unknown codes are left alone."""
    assert expand_shortcode(draft, cursor, index, "zh", CTX) is None


def test_missing_context_is_reported_not_printed(index):
    """Without a customer name the placeholder stays visible and is reported."""
    exp = expand_shortcode("/hi", 3, index, "zh", {"agent": "小李"})
    assert exp is not None and exp.missing == ("customer",)
    assert exp.text.startswith("{customer}") and not can_send(exp.text)

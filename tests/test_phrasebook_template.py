"""Placeholders, slots, sending rules and combining phrases."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from phrasebook import (
    can_send,
    combine,
    fill_slot,
    make_context,
    next_slot,
    render,
    send_blockers,
    unfilled_slots,
)
from phrasebook.template import template_problems

NOW = dt.datetime(2025, 1, 6, 9, 30, tzinfo=dt.timezone(dt.timedelta(hours=8)))


def test_render_fills_known_placeholders_from_context():
    """{customer}, {agent}, {bank}, {hotline}, {date}, {time}, {queue_wait} are filled."""
    ctx = make_context(customer="王女士", agent="小李", now=NOW, queue_wait_s=185)
    r = render(
        "{customer}您好，我是{bank}客服{agent}，{date} {time}，已等待{queue_wait}，热线{hotline}",
        ctx,
    )
    assert (
        r.text
        == "王女士您好，我是示例银行客服小李，2025年1月6日 09:30，已等待约3分钟，热线400-820-9588"
    )
    assert r.unknown == () and r.missing == () and r.slots == ()


def test_english_context_formats_for_an_english_chat():
    """The English context names the bank in English and words the wait in English."""
    ctx = make_context(customer="Mr Smith", agent="Li", now=NOW, queue_wait_s=20, lang="en")
    r = render("Hello {customer}, {bank}, {date}, {queue_wait}", ctx)
    assert r.text == "Hello Mr Smith, Example Bank, 06 Jan 2025, less than a minute"


def test_unknown_and_missing_placeholders_stay_visible_and_are_reported():
    """An unknown {x} and a known placeholder without a value are left as written."""
    r = render("{customer}您好 {order_no}", {"agent": "小李"})
    assert r.text == "{customer}您好 {order_no}"
    assert r.unknown == ("order_no",)
    assert r.missing == ("customer",)


def test_double_braces_are_literal_braces():
    """{{ and }} render as { and }, and {{customer}} is not a placeholder."""
    r = render("格式：{{customer}} 与 {{ }}", {"customer": "王女士"})
    assert r.text == "格式：{customer} 与 { }"
    assert r.unknown == () and r.missing == ()


def test_values_are_inserted_literally_not_reparsed():
    """A customer called "{agent}[[x]]" cannot inject a placeholder or shift slot spans."""
    r = render("{customer}您好，金额[[金额]]", {"customer": "{agent}"})
    assert r.text == "{agent}您好，金额[[金额]]"
    (slot,) = r.slots
    assert r.text[slot.start : slot.end] == "[[金额]]"


def test_render_reports_slot_spans_in_the_rendered_text():
    """Slot offsets index the rendered text, after placeholders changed its length."""
    r = render("{customer}：您转账[[金额]]元至[[网点名称:如 人民路支行]]。", {"customer": "王女士"})
    assert [(s.label, s.hint) for s in r.slots] == [("金额", None), ("网点名称", "如 人民路支行")]
    for s in r.slots:
        assert r.text[s.start : s.end] == s.markup
    assert not r.can_send


def test_full_width_colon_separates_label_and_hint():
    """[[网点名称：如 人民路支行]] (typed with a Chinese IME) has a hint too."""
    (slot,) = unfilled_slots("去[[网点名称：如 人民路支行]]办理")
    assert (slot.label, slot.hint) == ("网点名称", "如 人民路支行")


def test_slots_block_sending_until_filled():
    """can_send stays False while any [[...]] remains, and turns True once all are filled."""
    text = render("您本次转账[[金额]]元，预计[[到账时间]]到账。").text
    assert not can_send(text)
    first = next_slot(text, 0)
    assert first is not None and first.label == "金额"
    text = fill_slot(text, first, "5,000")
    assert not can_send(text)
    second = next_slot(text, 0)
    assert second is not None and second.label == "到账时间"
    text = fill_slot(text, second, "今天18:00前")
    assert text == "您本次转账5,000元，预计今天18:00前到账。"
    assert can_send(text)


def test_leftover_known_placeholder_and_blank_reply_block_sending():
    """A raw {customer} (desk lacked the name) and an empty reply cannot be sent."""
    assert not can_send("{customer}您好")
    assert any("{customer}" in r for r in send_blockers("{customer}您好"))
    assert not can_send("   ")
    assert can_send("价格为 {x} 元")  # an unknown {x} may be legitimate text


def test_fill_slot_refuses_a_stale_span():
    """If the agent edited the text, an old slot span is rejected instead of corrupting it."""
    text = "金额[[金额]]"
    (slot,) = unfilled_slots(text)
    try:
        fill_slot("改过了" + text, slot, "100")
    except ValueError:
        pass
    else:
        raise AssertionError("expected ValueError")


def test_next_slot_wraps_and_goes_backwards():
    """Tab past the last slot wraps to the first; Shift+Tab goes back."""
    text = "[[a]] x [[b]] y [[c]]"
    a, b, c = unfilled_slots(text)
    assert next_slot(text, c.end) == a
    assert next_slot(text, b.start, backwards=True) == a
    assert next_slot(text, 0, backwards=True) == c


def test_combine_joins_phrases_and_keeps_slots():
    """A greeting ending in a comma runs on; other phrases go on new lines; repeats drop."""
    out = combine(
        [
            "{customer}您好，",
            "请您稍等，正在为您查询。",
            "请您稍等，正在为您查询。",
            "",
            "您转账[[金额]]元。",
        ]
    )
    assert out == "{customer}您好，请您稍等，正在为您查询。\n您转账[[金额]]元。"
    assert [s.label for s in unfilled_slots(out)] == ["金额"]
    assert (
        combine(["Hello Tom,", "one moment please."], lang="en") == "Hello Tom, one moment please."
    )
    assert combine([]) == ""


def test_template_problems_catch_authoring_mistakes():
    """Typos in placeholders, lone braces and unlabelled slots are authoring errors."""
    assert template_problems("{customer}您好 [[金额:如 100元]] {{ok}}") == []
    assert any("custmer" in p for p in template_problems("{custmer}您好"))
    assert template_problems("价格 {100") != []
    assert template_problems("[[:提示]]") != []


@given(
    st.text(max_size=60),
    st.dictionaries(st.sampled_from(["customer", "agent", "bank"]), st.text(max_size=10)),
)
def test_render_never_crashes_and_slot_spans_always_point_at_slots(text, ctx):
    """Whatever the text and context, every reported slot span holds its slot markup."""
    r = render(text, ctx)
    for s in r.slots:
        assert r.text[s.start : s.end].startswith("[[")
        assert r.text[s.start : s.end].endswith("]]")

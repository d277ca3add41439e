"""The shipped team library, phrasebook/data/team.yaml."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from phrasebook import (
    KNOWN_PLACEHOLDERS,
    Phrase,
    library_problems,
    load_team_library,
    missing_twins,
    render,
    team_library_path,
    unfilled_slots,
)

# The knowledge base's topic ids (the brief's /tmp/kb_topics.md, copied here
# so the test does not depend on a file outside the repository).
KB_TOPICS = """
card-lost card-stolen card-swallowed-atm card-replace card-unlock-report card-pin-forgot
card-pin-locked card-activate card-abroad-use card-abroad-lost card-social-security
account-open account-close account-statement account-balance account-deposit-proof
account-id-expired account-restricted account-freeze-self phone-number-change account-dormant
account-small-fee sms-alert-service transfer-failed transfer-not-arrived transfer-wrong-account
transfer-large-holiday transfer-limits transfer-limit-raise transfer-fees transfer-arrival-time
transfer-returned transfer-international quick-pay-limit mobile-login-fail mobile-password-reset
mobile-register mobile-new-device sms-code-missing face-verify-fail ukey-token elderly-mode
elderly-transfer-steps digital-rmb cc-repay cc-autopay cc-installment cc-installment-early
cc-limit-raise cc-overdue cc-annual-fee cc-apply cc-bill cc-cash-advance cc-lost points
wealth-redeem wealth-risk-test wealth-loss deposit-rates deposit-early-withdraw fund-buy-sell
fx-exchange loan-prepay loan-debit-fail loan-consumer branch-hours branch-find
branch-appointment fees-overview hotline-hours fraud-suspected unknown-charge phishing-message
complaint complaint-progress
""".split()


@pytest.fixture(scope="module")
def team() -> list[Phrase]:
    return load_team_library()


def test_team_library_loads_with_90_plus_chinese_phrases_each_with_an_english_twin(team):
    """At least 90 zh phrases, every one with an en version under the same code."""
    zh = [p for p in team if p.lang == "zh"]
    en = {p.code for p in team if p.lang == "en"}
    assert len(zh) >= 90
    assert missing_twins(team) == []
    assert {p.code for p in zh} == en
    assert library_problems(team) == []
    assert all(p.scope == "team" and p.owner is None for p in team)
    assert team_library_path().name == "team.yaml"


def test_every_knowledge_base_topic_has_phrases(team):
    """Each KB topic id has a zh and an en phrase; no unknown topic ids."""
    topics = {p.topic for p in team if p.topic}
    assert set(KB_TOPICS) <= topics
    assert topics <= set(KB_TOPICS)


def test_required_categories_are_present(team):
    """Greetings, verification, holding, apologies, transfers, closings, elderly steps."""
    cats = Counter(p.category for p in team if p.lang == "zh")
    for cat in ("问候", "核实身份", "稍等", "致歉", "转接", "结束语", "长辈"):
        assert cats[cat] >= 3, cat
    assert any(p.title == "稍等，正在为您查询" for p in team)
    assert any("满意度" in p.tags for p in team)


def test_elderly_variants_spell_out_one_tap_per_line(team):
    """长辈 phrases have tag 长辈 and, for menu paths, one numbered step per line."""
    elderly = [p for p in team if p.lang == "zh" and "长辈" in p.tags]
    assert len(elderly) >= 5
    steps = [p for p in elderly if "第1步" in p.text]
    assert len(steps) >= 5
    for p in steps:
        lines = [ln for ln in p.text.splitlines() if ln.startswith("第")]
        assert len(lines) >= 4
        assert all(ln.count("「") <= 1 for ln in lines), p.code  # one tap per line


def test_identity_prompts_never_ask_for_secrets(team):
    """Verification prompts ask for last four digits only, never PIN/CVV/full number."""
    for p in team:
        if p.category != "核实身份":
            continue
        for sentence in re.split(r"[。！？.!?\n]", p.text):
            asks = re.search(r"请提供|请告诉|please tell|please provide", sentence, re.I)
            secret = re.search(r"密码|验证码|CVV|完整卡号|password|pin\b|full card", sentence, re.I)
            assert not (asks and secret), (p.code, sentence)


def test_shortcodes_are_short_and_unique_per_language(team):
    """Codes are short pinyin-initials style and unique within a language."""
    for lang in ("zh", "en"):
        codes = [p.code for p in team if p.lang == lang]
        assert len(codes) == len(set(codes))
    assert all(len(p.code) <= 6 for p in team)
    assert {"gs", "tk", "zzsb", "sd", "hi"} <= {p.code for p in team}


def test_templates_use_only_known_placeholders_and_labelled_slots(team):
    """Every {x} is a desk placeholder; slots have labels; both twins agree on slot count."""
    by_code: dict[str, dict[str, Phrase]] = {}
    for p in team:
        by_code.setdefault(p.code, {})[p.lang] = p
        r = render(p.text, {})
        assert set(r.unknown) == set()
        assert set(r.missing) <= KNOWN_PLACEHOLDERS
        assert all(s.label for s in r.slots)
    for code, pair in by_code.items():
        assert len(unfilled_slots(pair["zh"].text)) == len(unfilled_slots(pair["en"].text)), code
    assert sum(1 for p in team if unfilled_slots(p.text)) >= 20

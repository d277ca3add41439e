"""PhraseIndex: what it finds, how it ranks, who sees what, live updates."""

from __future__ import annotations

import random

import msgspec
import pytest

from phrasebook import Phrase, PhraseIndex, UsageStats, load_team_library

NOW = 1736125200.0


def ph(pid: str, code: str, title: str, text: str = "正文。", **kw) -> Phrase:
    kw.setdefault("category", "测试")
    return Phrase(id=pid, code=code, title=title, text=text, **kw)


@pytest.fixture(scope="module")
def team() -> list[Phrase]:
    return load_team_library()


@pytest.fixture(scope="module")
def index(team) -> PhraseIndex:
    return PhraseIndex(team, agent_id="a007")


def codes(hits, lang=None) -> list[str]:
    return [h.phrase.code for h in hits if lang is None or h.phrase.lang == lang]


def test_pinyin_initials_find_chinese_titles(index):
    """`gs` finds 挂失 phrases, `sd` finds 稍等, `xyk` finds 信用卡 (by initials)."""
    hits = index.search("xyk", lang="zh")
    assert hits and all("信用卡" in h.phrase.title for h in hits[:5])
    assert hits[0].how == "initials" and hits[0].field == "title"
    assert codes(index.search("tk", lang="zh"))[:2] == ["tk", "tkwd"]


def test_full_pinyin_finds_chinese_titles(index):
    """`guashi` finds 挂失 and `shaodeng` finds 稍等, including while still typing."""
    top = index.search("shaodeng", lang="zh")[0]
    assert top.phrase.code == "sd" and top.how == "pinyin"
    assert "挂失" in index.search("guashi", lang="zh")[0].phrase.title
    assert "挂失" in index.search("guas", lang="zh")[0].phrase.title  # half-typed syllable


def test_full_pinyin_only_matches_from_a_syllable_start(index):
    """`ankuan` must not match the middle of "huankuan" (还款)."""
    assert all("还款" not in h.phrase.title for h in index.search("ankuan", lang="zh"))


def test_heteronyms_accept_either_reading():
    """还款 is found by both "huankuan" and pypinyin's "haikuan"; 重置 by "chongzhi"."""
    idx = PhraseIndex([ph("1", "a", "信用卡还款"), ph("2", "b", "重置密码")])
    assert codes(idx.search("huankuan")) == ["a"]
    assert codes(idx.search("haikuan")) == ["a"]
    assert codes(idx.search("chongzhi")) == ["b"]
    assert codes(idx.search("czmm")) == ["b"]


def test_chinese_substring_in_title_text_and_tags(index):
    """Chinese substrings match titles, body text and tags, titles ranking first."""
    hits = index.search("吞卡", lang="zh")
    assert {"tk", "tkwd"} <= set(codes(hits))
    assert hits[0].field == "title"
    text_hit = index.search("所属网点领卡", lang="zh")
    assert text_hit and text_hit[0].field == "text" and text_hit[0].phrase.code == "tk"
    span = text_hit[0].span
    assert span and text_hit[0].phrase.text[span[0] : span[1]] == "所属网点领卡"
    tag_hits = {h.phrase.code: h.field for h in index.search("丢卡", lang="zh")}
    assert tag_hits["jwds"] == "title" and tag_hits["gs"] == "tags"


def test_english_fuzzy_tolerates_typos(index):
    """Typos ("tranfser failed", "pasword", "lost crad") still find the phrase."""
    assert index.search("tranfser failed", lang="en")[0].phrase.code == "zzsb"
    assert "password" in index.search("pasword", lang="en")[0].phrase.title.lower()
    top = index.search("lost crad", lang="en")[:3]
    assert "gs" in codes(top) or "jwds" in codes(top)
    assert index.search("card lost", lang="en")[0].phrase.title == "Card lost abroad"


def test_shortcode_exact_outranks_everything(index):
    """An exact shortcode is the strongest match, then code prefixes."""
    hits = index.search("gs", lang="zh")
    assert hits[0].phrase.code == "gs" and hits[0].field == "code" and hits[0].how == "exact"
    assert hits[1].phrase.code == "gsbl" and hits[1].how == "prefix"
    assert index.search("/zzsb", lang="zh")[0].phrase.code == "zzsb"  # trigger typed in search


def test_lang_maps_hits_to_the_chat_language(index):
    """In an English chat, a Chinese or pinyin query returns the English twins."""
    hits = index.search("挂失", lang="en")
    assert hits and all(h.phrase.lang == "en" for h in hits)
    assert hits[0].phrase.code == "gs"
    assert len({h.phrase.id for h in hits}) == len(hits)


def test_usage_lifts_an_agents_favourite_among_equal_matches():
    """Two equally good matches: the one this agent used ranks first."""
    a = ph("a", "x1", "挂失说明甲")
    b = ph("b", "x2", "挂失说明乙")
    idx = PhraseIndex([a, b], agent_id="a007")
    assert codes(idx.search("挂失说明")) == ["x1", "x2"]
    usage = UsageStats()
    usage.record("a007", "b", NOW - 3600)
    hits = idx.search("挂失说明", usage=usage, now=NOW)
    assert codes(hits) == ["x2", "x1"]
    assert hits[0].score > hits[1].score
    # Another agent's habits do not move this agent's ranking.
    other = UsageStats()
    other.record("b999", "b", NOW)
    assert codes(idx.search("挂失说明", usage=other, now=NOW)) == ["x1", "x2"]


def test_usage_never_beats_a_better_match():
    """A heavily used body-text match stays below a shortcode match."""
    exact = ph("e", "gs", "借记卡挂失")
    used = ph("u", "zz", "转账", text="这里提到gs")
    idx = PhraseIndex([exact, used], agent_id="a007")
    usage = UsageStats()
    for i in range(50):
        usage.record("a007", "u", NOW - i)
    assert codes(idx.search("gs", usage=usage, now=NOW)) == ["gs", "zz"]


def test_favourite_is_found_even_when_candidates_are_capped():
    """With thousands of equal matches, the agent's favourite is still on top."""
    phrases = [ph(f"p{i}", f"c{i}", f"转账说明{i}") for i in range(3000)]
    idx = PhraseIndex(phrases, agent_id="a007")
    usage = UsageStats()
    usage.record("a007", "p2999", NOW)
    assert idx.search("转账", usage=usage, now=NOW)[0].phrase.id == "p2999"


def test_empty_query_lists_most_used_then_team_defaults(index, team):
    """Before typing: the agent's favourites, then the team library in order."""
    usage = UsageStats()
    for _ in range(3):
        usage.record("a007", "team:zj:zh", NOW)
    usage.record("a007", "team:sd:zh", NOW)
    hits = index.search("", limit=5, usage=usage, now=NOW)
    assert [h.phrase.id for h in hits[:2]] == ["team:zj:zh", "team:sd:zh"]
    assert [h.field for h in hits] == ["usage", "usage", "default", "default", "default"]
    assert hits[2].phrase == team[0]


def test_personal_phrase_of_agent_a_is_not_in_agent_b_index(team):
    """Built as the hub would (everything fed in), B's index holds no A phrase."""
    mine = ph("a001:wdhh:zh", "wdhh", "我的专属回复", scope="personal", owner="a001")
    everyone = [*team, mine]
    a_index = PhraseIndex(everyone, agent_id="a001")
    b_index = PhraseIndex(everyone, agent_id="b002")
    assert "a001:wdhh:zh" in a_index and a_index.search("wdhh")[0].phrase == mine
    assert "a001:wdhh:zh" not in b_index
    assert all(h.phrase.owner != "a001" for h in b_index.search("wdhh"))
    assert all(h.phrase.owner != "a001" for h in b_index.search("我的专属"))
    assert b_index.add(mine) is False and "a001:wdhh:zh" not in b_index
    assert len(b_index) == len(team)


def test_personal_phrase_shadows_team_code():
    """An agent's own `gs` is what their shortcode expands to."""
    team_gs = ph("team:gs:zh", "gs", "团队版")
    my_gs = ph("a1:gs:zh", "gs", "我的版本", scope="personal", owner="a1")
    idx = PhraseIndex([team_gs, my_gs], agent_id="a1")
    assert idx.lookup_code("gs") == my_gs
    assert idx.lookup_code("gs", "en") == my_gs  # no English version: fall back to zh


def test_incremental_add_replace_remove_without_rebuild():
    """Live edits are searchable at once; removed phrases vanish; order is kept."""
    idx = PhraseIndex([ph("1", "aa", "第一条"), ph("2", "bb", "第二条")], agent_id="a1")
    assert idx.add(ph("3", "cc", "新加的挂失提醒"))
    assert codes(idx.search("guashi")) == ["cc"]
    idx.replace(ph("3", "cc", "改成吞卡提醒"))
    assert idx.search("guashi") == []
    assert codes(idx.search("tunka")) == ["cc"]
    idx.replace(ph("1", "aa", "第一条改"))
    assert [p.id for p in idx.phrases()] == ["1", "2", "3"]
    assert idx.remove("3") and not idx.remove("3")
    assert idx.search("tunka") == [] and idx.search("cc") == []
    assert len(idx) == 2


def test_incremental_updates_match_a_fresh_build(team):
    """After random edits, search results equal those of an index built from scratch."""
    rng = random.Random(7)
    live = PhraseIndex(team[:100], agent_id="a1")
    current = {p.id: p for p in team[:100]}
    for p in team[100:]:
        live.add(p)
        current[p.id] = p
    for p in rng.sample(team, 40):
        edited = msgspec.structs.replace(p, title=p.title + "（新）")
        live.replace(edited)
        current[p.id] = edited
    for p in rng.sample(team, 30):
        live.remove(p.id)
        current.pop(p.id)
    order = {p.id: i for i, p in enumerate(team)}
    fresh = PhraseIndex(sorted(current.values(), key=lambda p: order[p.id]), agent_id="a1")
    # Queries whose matches fit under the candidate cap (see search.py on ties).
    for q in [
        "gs",
        "guashi",
        "挂失",
        "转账",
        "transfer",
        "tranfser",
        "xyk",
        "新卡",
        "card lost",
        "",
    ]:
        assert [h.phrase.id for h in live.search(q, now=NOW)] == [
            h.phrase.id for h in fresh.search(q, now=NOW)
        ], q


def test_for_topic_returns_the_phrases_for_a_bot_handoff(index):
    """The bot hands over with a topic id; the desk can offer its phrases."""
    got = index.for_topic("card-swallowed-atm", lang="zh")
    assert {p.code for p in got} == {"tk", "tkwd"}


def test_limit_and_hit_fields(index):
    """limit is honoured and every hit says which field matched."""
    hits = index.search("转账", limit=3)
    assert len(hits) == 3
    assert all(h.field in {"code", "title", "tags", "text"} for h in hits)
    assert index.search("转账", limit=0) == []
    assert index.search("完全不存在的内容xyzzy") == []


def test_english_matches_start_at_word_boundaries():
    """`ud` does not hit "fraud", but `atm` after Chinese text (和ATM) does count."""
    idx = PhraseIndex(
        [
            ph("1", "x1", "Suspected fraud", lang="en"),
            ph("2", "x2", "查找附近网点和ATM"),
            ph("3", "x3", "Report fraud", lang="en"),
        ]
    )
    assert idx.search("ud") == []
    assert codes(idx.search("atm")) == ["x2"]
    assert set(codes(idx.search("fraud"))) == {"x1", "x3"}

"""The Phrase record: validation, normalisation, (de)serialisation."""

from __future__ import annotations

import subprocess
import sys

import msgspec
import pytest

from phrasebook import Phrase, PhraseError, derive_id, library_problems, missing_twins, visible_to


def make(**kw) -> Phrase:
    base = dict(
        id="team:gs:zh", code="gs", title="借记卡挂失", text="请立即挂失。", category="挂失"
    )
    base.update(kw)
    return Phrase(**base)


def test_phrase_normalises_tags_whitespace_and_line_endings():
    """Lists become tuples, CRLF from Excel becomes LF, outer whitespace goes."""
    p = make(tags=["挂失", " 丢卡 "], text="  第一行\r\n第二行  ", updated_at=5)
    assert p.tags == ("挂失", "丢卡")
    assert p.text == "第一行\n第二行"
    assert p.updated_at == 5.0
    assert hash(p) == hash(make(tags=("挂失", "丢卡"), text="第一行\n第二行", updated_at=5.0))


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"code": "G S"}, "code"),
        ({"code": "挂失"}, "code"),
        ({"code": ""}, "code"),
        ({"lang": "fr"}, "lang"),
        ({"scope": "global"}, "scope"),
        ({"scope": "personal"}, "owner"),
        ({"owner": "a007"}, "owner"),
        ({"title": ""}, "title"),
        ({"text": "{custmer}您好"}, "text"),
        ({"text": "金额[[]]"}, "text"),
        ({"tags": ["a|b"]}, "tags"),
        ({"tags": ["x", "x"]}, "tags"),
        ({"updated_at": -1.0}, "updated_at"),
        ({"updated_at": float("nan")}, "updated_at"),
        ({"topic": "Card Lost"}, "topic"),
        ({"id": "has space"}, "id"),
    ],
)
def test_invalid_phrases_name_the_offending_field(kw, field):
    """Each validation error says which field is wrong."""
    with pytest.raises(PhraseError) as err:
        make(**kw)
    assert err.value.field == field


def test_personal_phrase_needs_owner_and_team_phrase_has_none():
    """scope and owner go together."""
    p = make(id="a007:gs:zh", scope="personal", owner="a007")
    assert p.owner == "a007"


def test_dict_round_trip_for_the_hub_database():
    """to_dict/from_dict and msgspec JSON give back an equal phrase."""
    p = make(tags=("挂失",), topic="card-lost", updated_at=1736125200.5)
    assert Phrase.from_dict(p.to_dict()) == p
    assert msgspec.json.decode(msgspec.json.encode(p), type=Phrase) == p
    with pytest.raises(PhraseError) as err:
        Phrase.from_dict({**p.to_dict(), "code": "BAD CODE"})
    assert err.value.field == "code"


def test_derive_id_is_stable_and_scoped():
    """Team and personal ids differ; ':' never appears in a code so ids cannot collide."""
    assert derive_id("team", None, "gs", "zh") == "team:gs:zh"
    assert derive_id("personal", "a007", "gs", "en") == "a007:gs:en"


def test_library_problems_find_duplicate_ids_and_codes():
    """Two zh phrases with the same team code, or the same id, are reported."""
    a = make()
    b = make(id="other", title="另一条")
    c = make(id="team:gs:zh", code="gs2")
    problems = library_problems([a, b, c])
    assert any("code 'gs'" in p for p in problems)
    assert any("id 'team:gs:zh'" in p for p in problems)
    # The same code in another language, or in a personal library, is fine.
    en = make(id="team:gs:en", lang="en", title="Lost card", text="Block it.")
    mine = make(id="a007:gs:zh", scope="personal", owner="a007")
    assert library_problems([a, en, mine]) == []
    assert missing_twins([a, en, mine]) == []
    assert missing_twins([a]) == [a]


def test_visible_to_is_team_plus_own_personal():
    """Agent B never sees agent A's personal phrases."""
    team = make()
    mine = make(id="a:x:zh", code="x", scope="personal", owner="a")
    theirs = make(id="b:x:zh", code="x", scope="personal", owner="b")
    assert visible_to([team, mine, theirs], "a") == [team, mine]
    assert visible_to([team, mine, theirs], None) == [team]


def test_phrasebook_never_imports_textual_or_io_stacks():
    """The domain package stays headless: no textual, no sockets, no database."""
    code = (
        "import sys, phrasebook, phrasebook.io, phrasebook.search, phrasebook.shortcode;"
        "bad = [m for m in ('textual', 'sqlite3', 'aiosqlite', 'websockets', 'socket') if m in sys.modules];"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""

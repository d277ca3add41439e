"""YAML and CSV import/export: exact round trips and line-numbered errors."""

from __future__ import annotations

import csv
import io

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from phrasebook import (
    Phrase,
    PhraseImportError,
    dump_csv,
    dump_yaml,
    dumps_csv,
    dumps_yaml,
    load_csv,
    load_team_library,
    load_yaml,
    loads_csv,
    loads_yaml,
)


@pytest.fixture(scope="module")
def team() -> list[Phrase]:
    return load_team_library()


def awkward() -> list[Phrase]:
    """Phrases that stress the formats: formulas, quotes, newlines, YAML-ish words."""
    return [
        Phrase(id="team:no:zh", code="no", title="no", text="=1+1 不是公式", category="测试", updated_at=1.5),
        Phrase(id="x-1", code="110", title="-负号开头", text='他说："好的"，\n第二行 #不是注释', category="测试",
               tags=("a b", "标签"), updated_at=1736125200.123456),
        Phrase(id="a7:on:en", code="on", title="'quoted'", text="@mention, 100% {{literal}} [[slot:hint: x]]",
               category="测试", lang="en", scope="personal", owner="a7", topic="card-lost", updated_at=0.0),
        Phrase(id="team:yes:zh", code="yes", title="true", text="null", category="~", updated_at=2.0),
    ]  # fmt: skip


def test_yaml_round_trip_is_exact(tmp_path, team):
    """import -> export -> import gives equal phrases; export is stable text."""
    for phrases in (team, awkward()):
        path = tmp_path / "lib.yaml"
        dump_yaml(phrases, path)
        again = load_yaml(path)
        assert again == phrases
        assert dumps_yaml(again) == path.read_text(encoding="utf-8")


def test_csv_round_trip_is_exact_with_and_without_bom(tmp_path, team):
    """CSV (Excel UTF-8 with BOM, or plain UTF-8) round-trips exactly."""
    for phrases in (team, awkward()):
        for bom in (True, False):
            path = tmp_path / f"lib-{bom}.csv"
            dump_csv(phrases, path, bom=bom)
            assert path.read_bytes().startswith(b"\xef\xbb\xbf") == bom
            assert load_csv(path) == phrases


def test_csv_escapes_formulas_for_excel():
    """Cells Excel would evaluate get a leading apostrophe, removed again on import."""
    text = dumps_csv(awkward())
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[1][3] == "'=1+1 不是公式"
    assert rows[2][2] == "'-负号开头"
    assert loads_csv(text) == awkward()


def test_csv_from_chinese_excel_gb18030_and_chinese_headers(tmp_path):
    """A sheet saved by Excel on Chinese Windows (GB18030, Chinese headers) loads."""
    content = (
        "短语码,语言,标题,内容,分类,标签,备注\r\nsd,zh,稍等,请您稍等。,稍等,稍等、查询,内部说明\r\n"
    )
    path = tmp_path / "excel.csv"
    path.write_bytes(content.encode("gb18030"))
    (p,) = load_csv(path, default_updated_at=100.0)
    assert (p.code, p.title, p.text, p.tags, p.id, p.updated_at) == (
        "sd", "稍等", "请您稍等。", ("稍等", "查询"), "team:sd:zh", 100.0,
    )  # fmt: skip


def test_bad_csv_rows_give_line_numbered_errors():
    """Every bad row is reported with its line number (multi-line cells counted)."""
    text = (
        "code,lang,title,text,category\n"  # line 1
        'hi,zh,问候,"第一行\n第二行",问候\n'  # lines 2-3
        "G S,zh,坏代码,内容,测试\n"  # line 4: bad code
        "ok,zh,,内容,测试\n"  # line 5: empty title
        "hi,zh,重复,内容,测试\n"  # line 6: duplicate code
        "x,fr,语言,内容,测试\n"  # line 7: bad lang
        "y,zh,模板,{custmer}您好,测试\n"  # line 8: placeholder typo
    )
    with pytest.raises(PhraseImportError) as err:
        loads_csv(text, source="team.csv", default_updated_at=0.0)
    lines = [(p.line, p.field) for p in err.value.problems]
    assert lines == [(4, "code"), (5, "title"), (6, "code"), (7, "lang"), (8, "text")]
    message = str(err.value)
    assert message.startswith("team.csv: 5 problem(s)")
    assert "line 4, code:" in message and "'G S'" in message
    assert "line 6, code: 'hi' (zh) already used on line 2" in message


def test_csv_header_problems_are_reported():
    """Unknown and missing columns are errors on line 1."""
    with pytest.raises(PhraseImportError) as err:
        loads_csv("code,tittle,text\nhi,问候,内容\n")
    problems = {(p.line, p.field) for p in err.value.problems}
    assert (1, "tittle") in problems and (1, "title") in problems and (1, "category") in problems


def test_yaml_errors_point_at_the_line_of_the_field():
    """A bad value is reported at the line where that key is written."""
    text = (
        "version: 1\n"
        "updated_at: 0\n"
        "phrases:\n"
        "  - code: ok\n"
        "    category: 测试\n"
        "    zh:\n"
        "      title: 好\n"
        "      text: 内容\n"
        "    en:\n"
        "      title: Fine\n"
        "      text: '{custmer} hi'\n"  # line 11
        "  - code: BAD\n"  # line 12
        "    lang: zh\n"
        "    title: 坏\n"
        "    text: 内容\n"
        "    category: 测试\n"
        "    colour: red\n"  # line 17
    )
    with pytest.raises(PhraseImportError) as err:
        loads_yaml(text, source="team.yaml")
    assert [(p.line, p.field) for p in err.value.problems] == [
        (11, "text"),
        (12, "code"),
        (17, "colour"),
    ]


def test_yaml_syntax_error_has_a_line():
    """Broken YAML is one problem with the line PyYAML found it on."""
    with pytest.raises(PhraseImportError) as err:
        loads_yaml("phrases:\n  - code: a\n    title: [unclosed\n")
    assert err.value.problems[0].line >= 3


def test_yaml_scalars_are_strings_not_yaml_1_1_surprises():
    """`code: no` stays "no" and `code: 110` stays "110"."""
    text = "- {code: no, lang: zh, title: 否, text: 内容, category: 测试}\n- {code: 110, lang: zh, title: 报警, text: 内容, category: 测试}\n"
    got = loads_yaml(text, default_updated_at=0.0)
    assert [p.code for p in got] == ["no", "110"]


_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="{}[]"),
    min_size=1,
    max_size=40,
).filter(lambda s: s.strip() != "")


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(st.tuples(_text, _text, st.floats(min_value=0, max_value=2e9)), min_size=1, max_size=5)
)
def test_round_trip_property(rows):
    """Any printable titles/texts survive YAML and CSV exactly."""
    phrases = [
        Phrase(id=f"i{i}", code=f"c{i}", title=t.replace("\n", " ").strip()[:80] or "x", text=x,
               category="测试", updated_at=ts)
        for i, (t, x, ts) in enumerate(rows)
    ]  # fmt: skip
    assert loads_yaml(dumps_yaml(phrases)) == phrases
    assert loads_csv(dumps_csv(phrases)) == phrases

"""desk.cjkwrap.wrap: lines fit their cells, nothing is lost, and Chinese
punctuation follows the line-breaking rules (禁则): no closing mark starts a
line, no opening mark ends one."""

from __future__ import annotations

import textwrap

from hypothesis import given, settings
from hypothesis import strategies as st
from rich.cells import cell_len

from desk.cjkwrap import wrap

CLOSING = "。，、；：？！）」』》】〉”’…—"
OPENING = "（「『《【〈“‘"
ASCII_CLOSING = ".,;:?!)]}"  # only after Chinese
ASCII_OPENING = "([{"  # only before Chinese


def is_wide(ch: str) -> bool:
    return cell_len(ch) == 2


def kinsoku_faults(lines: list[str]) -> list[str]:
    """The lines that break a rule, each with what it breaks."""
    faults = []
    for before, line in zip(["", *lines[:-1]], lines, strict=True):
        if line[:1] in set(CLOSING) or (line[:1] in set(ASCII_CLOSING) and before and is_wide(before[-1])):
            faults.append(f"starts with a closing mark: {line!r}")
    for line, after in zip(lines, [*lines[1:], ""], strict=True):
        if line[-1:] in set(OPENING) or (line[-1:] in set(ASCII_OPENING) and after and is_wide(after[0])):
            faults.append(f"ends with an opening mark: {line!r}")
    return faults


def too_wide(lines: list[str], width: int) -> list[str]:
    """The lines wider than `width` (a single character that is wider by itself may be)."""
    return [line for line in lines if cell_len(line) > width and sum(cell_len(ch) > 0 for ch in line) > 1]


def rejoins(text: str, width: int) -> bool:
    """True if wrapping `text` gives, paragraph by paragraph, the paragraph
    in order with nothing missing or repeated but spaces at the cuts."""
    lines = wrap(text, width)
    by_para = [wrap(para, width) for para in text.split("\n")]
    if lines != [line for para_lines in by_para for line in para_lines]:
        return False
    for para, para_lines in zip(text.split("\n"), by_para, strict=True):
        if len(para_lines) > 1 and not all(para_lines):
            return False
        pos = 0
        for line in para_lines:
            while not para.startswith(line, pos) and para[pos : pos + 1] == " ":
                pos += 1
            if not para.startswith(line, pos):
                return False
            pos += len(line)
        if para[pos:].strip(" "):
            return False
    return True


# -- the lines that users saw ------------------------------------------------------


def test_a_full_stop_never_sits_alone_on_a_line() -> None:
    """The character before 。 moves down with it instead of leaving 。 on a line by itself."""
    assert wrap("好的，请您稍等，正在为您查询。", 14) == ["好的，请您稍", "等，正在为您查", "询。"]


def test_an_enumeration_comma_does_not_lead_the_line() -> None:
    """The line '、密码或验证码。' becomes '号、密码或验证码。': 号 comes down with the 、."""
    text = "3. 激活免费。激活后建议先做一笔小额查询或交易确认卡片正常。请勿在对话中发送完整卡号、密码或验证码。"
    assert wrap(text, 28) == [
        "3. 激活免费。激活后建议先做",
        "一笔小额查询或交易确认卡片正",
        "常。请勿在对话中发送完整卡",
        "号、密码或验证码。",
    ]


def test_a_comma_stays_with_the_clause_it_ends() -> None:
    """'，暂停非柜面交易' no longer starts a line; the comma ends the line with 户."""
    text = "账户长期未使用可能被列为久悬户，暂停非柜面交易。如需继续使用，请本人携带身份证到网点激活；如不再使用，可一并办理销户。"
    lines = wrap(text, 30)
    assert lines[:2] == ["账户长期未使用可能被列为久悬", "户，暂停非柜面交易。如需继续使"]
    assert kinsoku_faults(lines) == []


def test_a_phrase_with_fill_in_slots_keeps_its_brackets_and_commas_in_place() -> None:
    """'，注意不要超过' and ']]元' no longer lead a line, nor '[[' end one, at 20 cells."""
    text = (
        "您本次需转账[[金额]]元，节假日期间可拆分为[[笔数]]笔、每笔不超过5万元分别转出，"
        "注意不要超过单日转账限额。剩余部分也可在[[下一个工作日]]一次转出。"
    )
    lines = wrap(text, 20)
    assert "分别转出，" in "".join(lines[3:4]) and not any(line.startswith(("，", "]")) for line in lines)
    assert kinsoku_faults(lines) == [] and too_wide(lines, 20) == []


def test_opening_brackets_and_quotes_go_down_with_what_they_open() -> None:
    """A line never ends with 【, 「 or “: the mark starts the next line with its word."""
    assert wrap("请点击【设置】按钮", 8) == ["请点击", "【设置】", "按钮"]
    lines = wrap("打开手机银行「我的」→「卡管理」→「激活新卡」", 18)
    assert kinsoku_faults(lines) == [] and too_wide(lines, 18) == []
    assert wrap("他说：“好的。”", 8) == ["他说：", "“好的。”"]
    assert wrap("“好的。”“请稍等。”", 10) == ["“好的。”", "“请稍等。”"]


def test_an_ellipsis_is_not_split_and_does_not_lead() -> None:
    """…… stays whole and on the line of the character before it."""
    lines = wrap("好的……请您稍等", 6)
    assert lines == ["好的……", "请您稍", "等"]


# -- what stays as it was ---------------------------------------------------------


def test_text_that_fits_comes_back_unchanged() -> None:
    """A paragraph that fits its width is one line, spaces and all."""
    assert wrap("  您好，请问有什么可以帮您？ ", 40) == ["  您好，请问有什么可以帮您？ "]


def test_newlines_start_new_lines_and_empty_text_is_one_empty_line() -> None:
    """Each \\n starts a line, blank lines stay, and '' wraps to ['']."""
    assert wrap("", 10) == [""]
    assert wrap("第一行\n\n第三行\n", 10) == ["第一行", "", "第三行", ""]


def test_zero_or_negative_width_only_splits_at_newlines() -> None:
    """Width 0 or less means 'do not wrap': the paragraphs come back as they are."""
    assert wrap("很长很长的一行，不换行\n第二行", 0) == ["很长很长的一行，不换行", "第二行"]


def test_english_wraps_at_spaces_and_cuts_only_words_too_long_for_a_line() -> None:
    """English breaks at spaces (dropped there); a word wider than the line is cut."""
    assert wrap("Please keep your card, PIN and codes to yourself.", 12) == [
        "Please keep",
        "your card,",
        "PIN and",
        "codes to",
        "yourself.",
    ]
    assert wrap("see https://bank.example/cards/lost", 10) == ["see", "https://ba", "nk.example", "/cards/los", "t"]


def test_english_between_chinese_keeps_its_words_whole() -> None:
    """A Latin word inside Chinese is never cut when it fits; the break goes beside it."""
    assert wrap("请在手机银行App里点击挂失", 14) == ["请在手机银行", "App里点击挂失"]
    assert wrap("您好 hello 世界。", 6) == ["您好", "hello", "世界。"]


@settings(max_examples=300, deadline=None)
@given(
    words=st.lists(st.text(alphabet="abcdefghijklmnopqrstuvwxyz,.", min_size=1, max_size=8), min_size=1, max_size=30),
    width=st.integers(8, 80),
)
def test_english_wraps_like_textwrap(words: list[str], width: int) -> None:
    """Plain English (no word wider than the line) wraps exactly as textwrap does, using the full width."""
    text = " ".join(words)
    assert wrap(text, width) == (textwrap.wrap(text, width, break_on_hyphens=False) or [""])


# -- the rules, on generated sentences --------------------------------------------

HANZI = "您好请问有什么可以帮的卡号密码验证码账户转账挂失激活网点身份证手机银行额度限额每笔交易时间工作日客服人员"
CJK_AFTER = ["。", "，", "、", "；", "：", "？", "！", "……", "——"]
CJK_AFTER_RUN = ["。”", "！）", "？」"]  # not after a bracket: （好）。” would be 9 cells no rule lets us cut
ASCII_AFTER = [",", ".", ";", ":", "?", "!"]
PAIRS = ["（）", "「」", "『』", "《》", "【】", "〈〉", "“”", "‘’", "()", "[]", "[[]]"]

hanzi = st.text(alphabet=HANZI, min_size=1, max_size=8)
latin = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABC0123456789", min_size=1, max_size=6)


@st.composite
def sentences(draw: st.DrawFn) -> str:
    """A customer-service sentence: Chinese runs and English words, punctuated."""
    out = ""
    for _ in range(draw(st.integers(1, 14))):
        kind = draw(st.sampled_from(["hanzi", "hanzi", "hanzi", "latin", "pair"]))
        if kind == "hanzi":
            piece = draw(hanzi)
        elif kind == "latin":
            piece = draw(latin)
            if out and draw(st.booleans()):
                piece = " " + piece + " "
        else:
            pair = draw(st.sampled_from(PAIRS))
            half = len(pair) // 2
            piece = pair[:half] + draw(st.one_of(hanzi, latin)) + pair[half:]
        out += piece
        if draw(st.integers(0, 2)) == 0:
            marks = CJK_AFTER if kind == "pair" else CJK_AFTER + CJK_AFTER_RUN
            out += draw(st.sampled_from(marks + ASCII_AFTER if piece[-1:].isascii() else marks))
    return out.strip(" ")


@settings(max_examples=400, deadline=None)
@given(text=sentences(), width=st.integers(8, 80))
def test_generated_sentences_follow_the_rules_fit_and_lose_nothing(text: str, width: int) -> None:
    """Mixed Chinese/English sentences at 8..80 cells: no closing mark leads, no opening mark ends, every line fits, nothing is lost."""
    lines = wrap(text, width)
    assert kinsoku_faults(lines) == []
    assert too_wide(lines, width) == []
    assert rejoins(text, width), lines


# -- pathological input ---------------------------------------------------------


def test_a_run_of_punctuation_wider_than_the_line_is_cut_to_fit() -> None:
    """When no place obeys the rules, the line is still cut to fit, and nothing is lost."""
    assert wrap("。。。。。。。。。。", 4) == ["。。", "。。", "。。", "。。", "。。"]
    assert wrap("好！！！！！！", 6) == ["好！！", "！！！", "！"]
    lines = wrap("好的（是）。”", 8)  # （是）。” is 9 cells and may not be cut anywhere
    assert too_wide(lines, 8) == [] and "".join(lines) == "好的（是）。”"


def test_a_word_cut_by_force_does_not_leave_punctuation_to_lead() -> None:
    """A word cut because it is too long hands its last letter to the 。 after it."""
    assert wrap("abcdefgh。", 8) == ["abcdefg", "h。"]


def test_tiny_widths_give_one_character_per_line_at_most() -> None:
    """At widths 1 and 2 each line holds what fits; a wide character alone is allowed at width 1."""
    assert wrap("中文。", 1) == ["中", "文", "。"]
    assert wrap("中文。", 2) == ["中", "文", "。"]
    assert wrap("x  y", 1) == ["x", "y"]
    assert wrap("     ", 2) == [""]


@settings(max_examples=500, deadline=None)
@given(
    text=st.text(alphabet="中文好。，、！？…—（）「」“”【】abc.,!?()[] \n\u0301", max_size=60),
    width=st.integers(1, 12),
)
def test_any_text_at_any_small_width_fits_and_loses_nothing(text: str, width: int) -> None:
    """Arbitrary runs of marks, spaces, combining accents and newlines: it ends, fits and loses nothing."""
    lines = wrap(text, width)
    assert too_wide(lines, width) == []
    assert rejoins(text, width), lines

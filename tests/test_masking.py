"""Card numbers never reach storage; IDs and phones are masked on screen."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from server.masking import has_full_card, luhn_ok, mask_at_rest, mask_for_display


def luhn_complete(prefix: str) -> str:
    for d in "0123456789":
        if luhn_ok(prefix + d):
            return prefix + d
    raise AssertionError


def test_a_card_number_in_chinese_text_keeps_only_its_last_four() -> None:
    card = luhn_complete("622202123456789012")  # 19 digits
    text = f"我的卡号是{card[:4]} {card[4:8]} {card[8:12]} {card[12:16]} {card[16:]}，麻烦查一下"
    masked = mask_at_rest(text)
    assert card[-4:] in masked and not has_full_card(masked)
    assert masked.startswith("我的卡号是") and masked.endswith("，麻烦查一下")


def test_numbers_that_are_not_cards_are_left_alone() -> None:
    valid = luhn_complete("123456789012")
    invalid = valid[:-1] + str((int(valid[-1]) + 1) % 10)
    assert mask_at_rest(f"流水号 {invalid} 元") == f"流水号 {invalid} 元"
    assert mask_at_rest("订单号 20261125") == "订单号 20261125"


def test_security_codes_are_never_stored() -> None:
    assert "123" not in mask_at_rest("卡背后三位数是123")
    assert "456" not in mask_at_rest("CVV: 456")


def test_display_masks_id_and_phone_numbers() -> None:
    shown = mask_for_display("身份证110101199003074578，手机13812345678")
    assert "110101199003074578" not in shown and "4578" in shown
    assert "13812345678" not in shown and "5678" in shown


@given(
    body=st.text(alphabet="0123456789", min_size=12, max_size=18),
    sep=st.sampled_from(["", " ", "-"]),
    before=st.text(alphabet="您好我的卡号是请帮忙查一下，。 ", max_size=12),
    after=st.text(alphabet="您好我的卡号是请帮忙查一下，。 ", max_size=12),
)
def test_no_luhn_valid_card_survives_masking(body: str, sep: str, before: str, after: str) -> None:
    card = luhn_complete(body)
    grouped = sep.join(card[i : i + 4] for i in range(0, len(card), 4))
    masked = mask_at_rest(before + grouped + after)
    assert not has_full_card(masked)
    assert card[-4:] in masked.replace(" ", "").replace("-", "")

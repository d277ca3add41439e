"""Customer data on screen and at rest.

Card numbers (Luhn-valid, 13-19 digits, spaces or dashes allowed) are masked
to the last four *before* a message is stored, so no full card number ever
reaches the database or a log. ID and phone numbers are kept (agents may need
them) but masked for display, with an audited reveal on the desk.
"""

from __future__ import annotations

import re

# Separators people type between card digit groups, on any keyboard: spaces
# (also U+3000), hyphens (also full-width and the U+2010-2015 dashes).
_SEP = "[ \u3000\\-\uFF0D\u2010-\u2015]"
# 13-19 digits (\d also matches full-width ones), grouped by up to three
# separator characters, not glued to other digits (so a longer number is not
# partly masked).
_CARD = re.compile(rf"(?<!\d)(?:\d{_SEP}{{0,3}}){{12,18}}\d(?!\d)")
_DIGIT = re.compile(r"\d")
# Security codes the customer volunteers near a keyword: never stored.
_CVV = re.compile(
    r"(?i)(cvv2?码?|cvc2?码?|安全码|校验码|验证码后三位|(?:卡片?)?背面?(?:的)?(?:后|最后)?三位(?:数字|数|码)?)"
    r"([^\d]{0,6}?)(\d{3,4})(?!\d)"
)
# Mainland resident ID: 17 digits + digit or X.
_ID = re.compile(r"(?<![\dA-Za-z])(\d{6})(\d{8})(\d{3}[\dXx])(?![\dA-Za-z])")
# Mainland mobile numbers, optionally +86.
_PHONE = re.compile(r"(?<!\d)((?:\+?86[ -]?)?1[3-9]\d)[ -]?(\d{4})[ -]?(\d{4})(?!\d)")


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)  # also full-width digits
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _mask_card(match: re.Match[str]) -> str:
    raw = match.group(0)
    digits = "".join(_DIGIT.findall(raw))
    if not 13 <= len(digits) <= 19 or not luhn_ok(digits):
        return raw
    return "*" * (len(digits) - 4) + digits[-4:]


_THREE_DIGITS = re.compile(r"\d\D{0,3}\d\D{0,3}\d")


def mask_at_rest(text: str) -> str:
    """What may be stored: card numbers to the last four, security codes gone."""
    if _THREE_DIGITS.search(text) is None:
        return text  # most chat lines: nothing that could be a card or a code
    text = _CARD.sub(_mask_card, text)
    return _CVV.sub(lambda m: f"{m.group(1)}{m.group(2)}***", text)


def mask_for_display(text: str) -> str:
    """What an agent sees by default: ID and phone numbers masked too."""
    text = mask_at_rest(text)
    text = _ID.sub(lambda m: f"{m.group(1)}{'*' * 8}{m.group(3)[-4:]}", text)
    return _PHONE.sub(lambda m: f"{m.group(1)}****{m.group(3)}", text)


def has_full_card(text: str) -> bool:
    """True if `text` still holds a Luhn-valid card number (used by tests and audits)."""
    for match in _CARD.finditer(text):
        digits = "".join(_DIGIT.findall(match.group(0)))
        if 13 <= len(digits) <= 19 and luhn_ok(digits):
            return True
    return False

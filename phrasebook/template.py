"""Placeholders the desk fills in, and slots the agent must fill in.

Two kinds of holes, deliberately written differently:

* `{customer}`, `{agent}`, `{date}`, `{time}`, `{queue_wait}`, `{bank}`,
  `{hotline}` are *placeholders*: the desk knows the value and `render` fills
  them from a context mapping. `{{` and `}}` are literal braces. An unknown
  `{x}`, or a known one the context lacks, is left visible and reported, never
  silently dropped.
* `[[label]]` / `[[label:hint]]` (a full-width `：` works too, since it is what
  a Chinese IME types) are *slots*: only the agent knows the value (amount,
  date, branch, reference number). They stay in the text, their spans are
  reported so the UI can Tab through them, and `can_send` stays False until
  none is left: an unfilled slot can never reach a customer by accident.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

KNOWN_PLACEHOLDERS: frozenset[str] = frozenset(
    {"customer", "agent", "date", "time", "queue_wait", "bank", "hotline"}
)

BANK_NAME = {"zh": "示例银行", "en": "Example Bank"}
HOTLINE = "400-820-9588"
# Mainland China has one time zone; the desk shows local dates and times.
CHINA_TZ = dt.timezone(dt.timedelta(hours=8), "Asia/Shanghai")

# One pass over the template finds every token; order matters ("{{" before a
# placeholder so "{{x}}" is the literal text "{x}").
_TOKEN_RE = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}|\[\[([^\[\]\n]*)\]\]")
# Slots in a draft (after rendering): any [[...]] on one line, even empty.
SLOT_RE = re.compile(r"\[\[([^\[\]\n]*)\]\]")
_KNOWN_LEFTOVER_RE = re.compile(r"\{(" + "|".join(sorted(KNOWN_PLACEHOLDERS)) + r")\}")


@dataclass(frozen=True, slots=True)
class Slot:
    """A `[[label:hint]]` the agent must replace; `start`/`end` index the text."""

    start: int
    end: int
    label: str
    hint: str | None = None

    @property
    def markup(self) -> str:
        """The slot as written, e.g. `[[金额]]`."""
        return f"[[{self.label}]]" if self.hint is None else f"[[{self.label}:{self.hint}]]"


@dataclass(frozen=True, slots=True)
class Rendered:
    """The result of `render`: text to put in the reply box, and what is left."""

    text: str
    slots: tuple[Slot, ...] = ()
    unknown: tuple[str, ...] = ()  # `{x}` names that are not placeholders at all
    missing: tuple[str, ...] = ()  # known placeholders the context had no value for

    @property
    def can_send(self) -> bool:
        return can_send(self.text)


def _split_slot(body: str) -> tuple[str, str | None]:
    # First ':' or '：' separates label from hint; hints may contain colons.
    for i, ch in enumerate(body):
        if ch in ":：":
            hint = body[i + 1 :].strip()
            return body[:i].strip(), hint or None
    return body.strip(), None


def render(text: str, context: Mapping[str, object] | None = None) -> Rendered:
    """Fill placeholders from `context` and locate the slots in the result.

    Values are inserted literally (never re-parsed), so a customer called
    "{agent}" cannot inject anything. Slot spans index the returned text.
    """
    ctx = context or {}
    out: list[str] = []
    slots: list[Slot] = []
    unknown: list[str] = []
    missing: list[str] = []
    pos = 0
    length = 0
    for m in _TOKEN_RE.finditer(text):
        if m.start() > pos:
            chunk = text[pos : m.start()]
            out.append(chunk)
            length += len(chunk)
        pos = m.end()
        tok = m.group(0)
        name, slot = m.group(1), m.group(2)
        if tok == "{{":
            piece = "{"
        elif tok == "}}":
            piece = "}"
        elif name is not None:
            value = ctx.get(name)
            if value is None or value == "":
                piece = tok
                bucket = missing if name in KNOWN_PLACEHOLDERS else unknown
                if name not in bucket:
                    bucket.append(name)
            else:
                piece = str(value)
        else:
            label, hint = _split_slot(slot or "")
            piece = tok
            slots.append(Slot(length, length + len(tok), label, hint))
        out.append(piece)
        length += len(piece)
    out.append(text[pos:])
    return Rendered("".join(out), tuple(slots), tuple(unknown), tuple(missing))


def unfilled_slots(text: str) -> list[Slot]:
    """Every `[[...]]` still in `text` (a draft), with spans into `text`."""
    result = []
    for m in SLOT_RE.finditer(text):
        label, hint = _split_slot(m.group(1))
        result.append(Slot(m.start(), m.end(), label, hint))
    return result


def send_blockers(text: str) -> list[str]:
    """Why `text` must not be sent yet; empty when it may be sent.

    Blocks on unfilled slots (the agent's job) and on a known placeholder left
    raw (the desk lacked the value: "{customer}您好" must not reach a customer).
    Unknown `{x}` does not block: it may be legitimate text.
    """
    reasons = []
    if not text.strip():
        reasons.append("the reply is empty")
    slots = unfilled_slots(text)
    if slots:
        labels = "、".join(s.label or "?" for s in slots)
        reasons.append(f"fill in {len(slots)} slot(s): {labels}")
    left = sorted({m.group(1) for m in _KNOWN_LEFTOVER_RE.finditer(text)})
    if left:
        reasons.append("placeholder(s) without a value: " + ", ".join("{" + n + "}" for n in left))
    return reasons


def can_send(text: str) -> bool:
    """False while any `[[...]]` slot (or a raw known placeholder) remains, or if blank."""
    return not send_blockers(text)


def fill_slot(text: str, slot: Slot, value: str) -> str:
    """Replace `slot` in `text` with `value`; raises if the slot moved or was edited."""
    current = text[slot.start : slot.end]
    if not SLOT_RE.fullmatch(current):
        raise ValueError(f"no slot at {slot.start}:{slot.end} any more (found {current!r})")
    return text[: slot.start] + value + text[slot.end :]


def next_slot(text: str, cursor: int, *, backwards: bool = False) -> Slot | None:
    """The slot Tab (or Shift+Tab) should jump to from `cursor`, wrapping around."""
    slots = unfilled_slots(text)
    if not slots:
        return None
    if backwards:
        before = [s for s in slots if s.end <= cursor]
        return before[-1] if before else slots[-1]
    after = [s for s in slots if s.start >= cursor]
    return after[0] if after else slots[0]


def template_problems(text: str) -> list[str]:
    """Authoring errors in a phrase text (used by Phrase validation).

    An unknown placeholder is almost always a typo ({custmer}); a lone brace
    must be doubled; a slot needs a label the agent can read.
    """
    problems = []
    pos = 0
    for m in _TOKEN_RE.finditer(text):
        problems.extend(_stray_braces(text[pos : m.start()]))
        pos = m.end()
        name, slot = m.group(1), m.group(2)
        if name is not None and name not in KNOWN_PLACEHOLDERS:
            known = ", ".join("{" + k + "}" for k in sorted(KNOWN_PLACEHOLDERS))
            problems.append(f"unknown placeholder {{{name}}} (known: {known})")
        if slot is not None and not _split_slot(slot)[0]:
            problems.append(f"slot [[{slot}]] needs a label, e.g. [[金额]]")
    problems.extend(_stray_braces(text[pos:]))
    return problems


def _stray_braces(chunk: str) -> list[str]:
    if "{" in chunk or "}" in chunk:
        return ["a lone { or } must be written {{ or }}"]
    return []


def combine(parts: Iterable[str], lang: str = "zh") -> str:
    """Join several phrases into one reply, keeping their slots and placeholders.

    Blank parts and immediate repeats are dropped. A part ending in a comma or
    colon (a greeting such as "{customer}您好，") runs on into the next one;
    otherwise parts go on separate lines, which reads well in chat and keeps
    step-by-step lists intact.
    """
    pieces: list[str] = []
    for raw in parts:
        part = raw.strip()
        if not part or (pieces and pieces[-1] == part):
            continue
        pieces.append(part)
    if not pieces:
        return ""
    out = pieces[0]
    for part in pieces[1:]:
        if out[-1] in "，,：:、":
            out += ("" if lang == "zh" or out[-1] in "，：、" else " ") + part
        else:
            out += "\n" + part
    return out


def _as_datetime(now: float | dt.datetime | None, tz: dt.tzinfo) -> dt.datetime:
    if now is None:
        return dt.datetime.now(tz)
    if isinstance(now, dt.datetime):
        return now.astimezone(tz) if now.tzinfo else now.replace(tzinfo=tz)
    return dt.datetime.fromtimestamp(now, tz)


def format_wait(seconds: float | None, lang: str = "zh") -> str | None:
    """Human wait time for `{queue_wait}`: "约3分钟" / "about 3 minutes"."""
    if seconds is None:
        return None
    minutes = round(seconds / 60)
    if lang == "en":
        if minutes < 1:
            return "less than a minute"
        return "about 1 minute" if minutes == 1 else f"about {minutes} minutes"
    return "不到1分钟" if minutes < 1 else f"约{minutes}分钟"


def make_context(
    *,
    customer: str | None = None,
    agent: str | None = None,
    now: float | dt.datetime | None = None,
    queue_wait_s: float | None = None,
    lang: str = "zh",
    bank: str | None = None,
    hotline: str = HOTLINE,
    tz: dt.tzinfo = CHINA_TZ,
) -> dict[str, str]:
    """The placeholder values the desk knows, formatted for the chat's language.

    Pass `now` explicitly in tests; it defaults to the current time. A value
    left None is omitted, so `render` reports it as missing instead of
    printing "None" to a customer.
    """
    t = _as_datetime(now, tz)
    ctx = {
        "bank": bank or BANK_NAME.get(lang, BANK_NAME["zh"]),
        "hotline": hotline,
        "date": f"{t.year}年{t.month}月{t.day}日" if lang == "zh" else t.strftime("%d %b %Y"),
        "time": t.strftime("%H:%M"),
    }
    wait = format_wait(queue_wait_s, lang)
    for key, value in (("customer", customer), ("agent", agent), ("queue_wait", wait)):
        if value:
            ctx[key] = value
    return ctx

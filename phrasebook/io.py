"""YAML and CSV import/export of phrase libraries.

Centres edit the team library in Excel, so CSV is first-class: UTF-8 with a
BOM by default (without it Excel shows mojibake), GB18030 accepted on import
(what Excel saves as "CSV" on Chinese Windows), Chinese column headers
accepted, and cells that Excel would run as formulas escaped with a leading
apostrophe (CSV injection), which the loader removes again.

Every problem is reported with its line number, all at once, so a spreadsheet
can be fixed in one go. Import then export is exact: `load_*(dump_*(x)) == x`.

YAML accepts flat records (one per phrase, with `lang`) and "twin" records
that hold both languages of one phrase::

    - code: gs
      category: 挂失
      topic: card-lost
      zh: {title: 借记卡挂失, text: ..., tags: [挂失]}
      en: {title: Report a lost debit card, text: ..., tags: [lost card]}

Shared keys (code, category, topic, scope, owner, tags, updated_at) apply to
both languages; `id` defaults to `derive_id(...)`. All plain scalars are read
as strings (no YAML 1.1 surprises such as code `no` becoming False or `110`
becoming a number).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
import os
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

import yaml

from .model import TAG_SEPARATORS, Phrase, PhraseError, derive_id, twin_key
from .template import CHINA_TZ

FIELDS = (
    "code",
    "lang",
    "title",
    "text",
    "category",
    "tags",
    "topic",
    "scope",
    "owner",
    "id",
    "updated_at",
)
REQUIRED = ("code", "title", "text", "category")
SHARED = ("code", "category", "topic", "scope", "owner", "tags", "updated_at")
PER_LANG = ("id", "title", "text", "tags", "updated_at")
TAG_JOIN = "|"
# Headers centres actually type in Excel.
HEADER_ALIASES = {
    "短语码": "code",
    "快捷码": "code",
    "简码": "code",
    "代码": "code",
    "语言": "lang",
    "标题": "title",
    "内容": "text",
    "正文": "text",
    "话术": "text",
    "分类": "category",
    "类别": "category",
    "标签": "tags",
    "主题": "topic",
    "知识点": "topic",
    "范围": "scope",
    "所有者": "owner",
    "坐席": "owner",
    "编号": "id",
    "更新时间": "updated_at",
}
COMMENT_HEADERS = ("备注", "note", "notes", "comment", "comments")
_FORMULA_START = "=+-@\t\r"
MAX_REPORTED = 50


@dataclass(frozen=True, slots=True)
class ImportProblem:
    line: int  # 1-based line in the file; 0 when it concerns the whole file
    field: str | None
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line else "file"
        return f"{where}{', ' + self.field if self.field else ''}: {self.message}"


class PhraseImportError(ValueError):
    """A file could not be imported; `problems` lists every bad line."""

    def __init__(self, source: str, problems: list[ImportProblem]) -> None:
        self.source = source
        self.problems = problems
        shown = "\n".join(f"  {p}" for p in problems[:MAX_REPORTED])
        more = len(problems) - MAX_REPORTED
        tail = f"\n  ... and {more} more" if more > 0 else ""
        super().__init__(f"{source}: {len(problems)} problem(s)\n{shown}{tail}")


# -- shared record handling ---------------------------------------------------


class _Record(dict):
    """A mapping with the line of each key (from YAML) or of the row (CSV)."""

    def __init__(self, line: int) -> None:
        super().__init__()
        self.line = line
        self.lines: dict[str, int] = {}
        self.duplicates: list[str] = []

    def line_of(self, key: str) -> int:
        return self.lines.get(key, self.line)


def _parse_time(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("not a time")
    if isinstance(value, int | float):
        result = float(value)
    elif isinstance(value, dt.datetime | dt.date):
        result = _datetime_ts(value)
    else:
        text = str(value).strip()
        try:
            result = float(text)
        except ValueError:
            result = _datetime_ts(dt.datetime.fromisoformat(text))
    if not math.isfinite(result):
        raise ValueError("not a finite time")
    return result


def _datetime_ts(value: dt.date) -> float:
    # A bank in China: a time without a zone is Beijing time.
    if not isinstance(value, dt.datetime):
        value = dt.datetime(value.year, value.month, value.day)
    if value.tzinfo is None:
        value = value.replace(tzinfo=CHINA_TZ)
    return value.timestamp()


def _split_tags(value: Any) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, list | tuple):
        return tuple(str(t).strip() for t in value)
    text = str(value)
    for sep in TAG_SEPARATORS[1:]:
        text = text.replace(sep, TAG_SEPARATORS[0])
    return tuple(t.strip() for t in text.split(TAG_SEPARATORS[0]) if t.strip())


def _opt(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _to_phrase(
    rec: _Record, defaults: dict[str, Any], problems: list[ImportProblem]
) -> Phrase | None:
    for key in rec.duplicates:
        problems.append(ImportProblem(rec.line_of(key), key, "given twice in one record"))
    # Report unknown fields but keep checking the record, so one pass over a
    # file lists every problem in it.
    unknown = [k for k in rec if k not in FIELDS]
    for k in unknown:
        problems.append(
            ImportProblem(
                rec.line_of(str(k)), str(k), f"unknown field (known: {', '.join(FIELDS)})"
            )
        )
    missing = [k for k in REQUIRED if _opt(rec.get(k)) is None]
    for k in missing:
        problems.append(ImportProblem(rec.line, k, "is required"))
    if missing:
        return None
    values: dict[str, Any] = {k: str(rec[k]) for k in ("code", "title", "text", "category")}
    values["lang"] = _opt(rec.get("lang")) or defaults.get("lang", "zh")
    values["scope"] = _opt(rec.get("scope")) or defaults.get("scope", "team")
    values["owner"] = _opt(rec.get("owner")) or (
        defaults.get("owner") if values["scope"] == "personal" else None
    )
    values["topic"] = _opt(rec.get("topic"))
    values["tags"] = _split_tags(rec.get("tags"))
    raw_time = rec.get("updated_at")
    if _opt(raw_time) is None:
        values["updated_at"] = defaults["updated_at"]
    else:
        try:
            values["updated_at"] = _parse_time(raw_time)
        except ValueError:
            problems.append(
                ImportProblem(
                    rec.line_of("updated_at"),
                    "updated_at",
                    f"{raw_time!r} is neither a unix time nor a date such as 2025-01-06T09:00",
                )
            )
            return None
    values["id"] = _opt(rec.get("id")) or derive_id(
        values["scope"], values["owner"], values["code"].strip(), values["lang"]
    )
    try:
        phrase = Phrase(**values)
    except PhraseError as exc:
        problems.append(ImportProblem(rec.line_of(exc.field), exc.field, exc.message))
        return None
    return None if unknown else phrase


def _check_library(phrases: list[tuple[int, Phrase]], problems: list[ImportProblem]) -> None:
    ids: dict[str, int] = {}
    codes: dict[tuple[str, str | None, str, str], int] = {}
    for line, p in phrases:
        key = (p.scope, p.owner, p.code, p.lang)
        if key in codes:
            # Reported as a code clash only: a derived id clashes as a result.
            problems.append(
                ImportProblem(
                    line,
                    "code",
                    f"{p.code!r} ({p.lang}) already used on line {codes[key]}; "
                    "a shortcode must be unique per language",
                )
            )
        elif p.id in ids:
            problems.append(ImportProblem(line, "id", f"{p.id!r} already used on line {ids[p.id]}"))
        codes.setdefault(key, line)
        ids.setdefault(p.id, line)


def _finish(
    source: str, parsed: list[tuple[int, Phrase]], problems: list[ImportProblem]
) -> list[Phrase]:
    _check_library(parsed, problems)
    if problems:
        problems.sort(key=lambda p: p.line)
        raise PhraseImportError(source, problems)
    return [p for _, p in parsed]


def _default_time(default_updated_at: float | None) -> float:
    return time.time() if default_updated_at is None else float(default_updated_at)


# -- YAML ---------------------------------------------------------------------


_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_BaseLoader):  # type: ignore[misc, valid-type]
    """Safe loader that keeps line numbers and reads scalars as strings."""

    # Only `null`/`~`/empty stay special; everything else is a string.
    yaml_implicit_resolvers: ClassVar[dict[str, list[tuple[str, Any]]]] = {
        first: [(tag, rx) for tag, rx in resolvers if tag == "tag:yaml.org,2002:null"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> _Record:
    rec = _Record(node.start_mark.line + 1)
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str):
            key = str(key)
        if key in rec:
            rec.duplicates.append(key)
        rec[key] = loader.construct_object(value_node, deep=True)
        rec.lines[key] = key_node.start_mark.line + 1
    return rec


_Loader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)


def loads_yaml(
    text: str, *, source: str = "<yaml>", default_updated_at: float | None = None
) -> list[Phrase]:
    """Parse a YAML phrase library; raises PhraseImportError with line numbers."""
    try:
        doc = yaml.load(text, Loader=_Loader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 0
        raise PhraseImportError(
            source, [ImportProblem(line, None, f"not valid YAML: {exc}")]
        ) from None
    problems: list[ImportProblem] = []
    defaults: dict[str, Any] = {}
    if doc is None:
        return []
    if isinstance(doc, _Record):
        records = doc.get("phrases")
        for key in doc:
            if key not in ("version", "phrases", "updated_at", "scope", "owner", "lang"):
                problems.append(ImportProblem(doc.line_of(key), key, "unknown top-level key"))
        if doc.get("version") not in (None, "1"):
            problems.append(
                ImportProblem(doc.line_of("version"), "version", "only version 1 is known")
            )
        for key in ("scope", "owner", "lang"):
            if _opt(doc.get(key)):
                defaults[key] = _opt(doc.get(key))
        if _opt(doc.get("updated_at")) is not None:
            try:
                defaults["updated_at"] = _parse_time(doc["updated_at"])
            except ValueError:
                problems.append(
                    ImportProblem(doc.line_of("updated_at"), "updated_at", "not a time")
                )
        if records is None:
            records = []
    else:
        records = doc
    if not isinstance(records, list):
        raise PhraseImportError(
            source, [ImportProblem(0, "phrases", "expected a list of phrase records")]
        )
    defaults.setdefault("updated_at", _default_time(default_updated_at))
    parsed: list[tuple[int, Phrase]] = []
    for rec in records:
        if not isinstance(rec, _Record):
            problems.append(
                ImportProblem(0, None, f"a phrase record must be a mapping, got {rec!r}")
            )
            continue
        for flat in _expand_twins(rec, problems):
            p = _to_phrase(flat, defaults, problems)
            if p is not None:
                parsed.append((flat.line, p))
    return _finish(source, parsed, problems)


def _expand_twins(rec: _Record, problems: list[ImportProblem]) -> list[_Record]:
    langs = [k for k in ("zh", "en") if k in rec]
    if not langs:
        return [rec]
    out = []
    for lang in langs:
        sub = rec[lang]
        if not isinstance(sub, _Record):
            problems.append(
                ImportProblem(rec.line_of(lang), lang, "must be a mapping of title/text/...")
            )
            continue
        flat = _Record(sub.line)
        for key in rec:
            if key in ("zh", "en"):
                continue
            if key not in SHARED:
                problems.append(
                    ImportProblem(
                        rec.line_of(key), key, f"not shared by both languages; put it under {lang}:"
                    )
                )
                continue
            flat[key] = rec[key]
            flat.lines[key] = rec.line_of(key)
        for key in sub:
            if key not in PER_LANG:
                problems.append(ImportProblem(sub.line_of(key), key, f"not allowed under {lang}:"))
                continue
            flat[key] = sub[key]
            flat.lines[key] = sub.line_of(key)
        flat.duplicates = rec.duplicates + sub.duplicates
        flat["lang"] = lang
        out.append(flat)
    return out


class _Dumper(yaml.SafeDumper):
    pass


class _FlowList(list):
    pass


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


def _represent_flow(dumper: yaml.SafeDumper, data: list) -> yaml.SequenceNode:
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=True)


_Dumper.add_representer(str, _represent_str)
_Dumper.add_representer(_FlowList, _represent_flow)


def _lang_part(p: Phrase, default_time: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if p.id != derive_id(p.scope, p.owner, p.code, p.lang):
        out["id"] = p.id
    out["title"] = p.title
    out["text"] = p.text
    if p.tags:
        out["tags"] = _FlowList(p.tags)
    if p.updated_at != default_time:
        out["updated_at"] = p.updated_at
    return out


def _common_head(p: Phrase) -> dict[str, Any]:
    out: dict[str, Any] = {"code": p.code, "category": p.category}
    if p.topic is not None:
        out["topic"] = p.topic
    if p.scope != "team":
        out["scope"] = p.scope
        out["owner"] = p.owner
    return out


def dumps_yaml(phrases: Iterable[Phrase]) -> str:
    """The library as YAML, zh/en twins grouped; `loads_yaml` reads it back exactly."""
    items = list(phrases)
    times = Counter(p.updated_at for p in items)
    default_time = times.most_common(1)[0][0] if items else 0.0
    groups: dict[tuple[str, str | None, str], list[Phrase]] = {}
    for p in items:
        groups.setdefault(twin_key(p), []).append(p)
    records: list[dict[str, Any]] = []
    done: set[tuple[str, str | None, str]] = set()
    for p in items:
        key = twin_key(p)
        group = groups[key]
        langs = sorted(q.lang for q in group)
        twins = (
            langs == ["en", "zh"]
            and group[0].category == group[1].category
            and group[0].topic == group[1].topic
        )
        if twins:
            if key in done:
                continue
            done.add(key)
            zh = next(q for q in group if q.lang == "zh")
            en = next(q for q in group if q.lang == "en")
            rec = _common_head(zh)
            rec["zh"] = _lang_part(zh, default_time)
            rec["en"] = _lang_part(en, default_time)
        else:
            rec = _common_head(p)
            rec["lang"] = p.lang
            rec.update(_lang_part(p, default_time))
        records.append(rec)
    doc: dict[str, Any] = {"version": 1, "updated_at": default_time, "phrases": records}
    return yaml.dump(doc, Dumper=_Dumper, allow_unicode=True, sort_keys=False, width=1000, indent=2)


def load_yaml(
    path: str | os.PathLike[str], *, default_updated_at: float | None = None
) -> list[Phrase]:
    """Read a YAML phrase library (see module doc for the format)."""
    with open(path, encoding="utf-8-sig") as f:
        text = f.read()
    return loads_yaml(text, source=os.fspath(path), default_updated_at=default_updated_at)


def dump_yaml(phrases: Iterable[Phrase], path: str | os.PathLike[str]) -> None:
    """Write `phrases` as YAML (UTF-8)."""
    text = dumps_yaml(phrases)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)


# -- CSV ----------------------------------------------------------------------


def _excel_escape(cell: str) -> str:
    # A leading = + - @ makes Excel evaluate the cell; an apostrophe stops it.
    if cell and (cell[0] in _FORMULA_START or cell[0] == "'"):
        return "'" + cell
    return cell


def _excel_unescape(cell: str) -> str:
    if len(cell) >= 2 and cell[0] == "'" and (cell[1] in _FORMULA_START or cell[1] == "'"):
        return cell[1:]
    return cell


def dumps_csv(phrases: Iterable[Phrase], *, excel_safe: bool = True) -> str:
    """The library as CSV text (one phrase per row, tags joined with `|`)."""
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(FIELDS)
    for p in phrases:
        row = [
            p.code,
            p.lang,
            p.title,
            p.text,
            p.category,
            TAG_JOIN.join(p.tags),
            p.topic or "",
            p.scope,
            p.owner or "",
            p.id,
            repr(p.updated_at),
        ]
        writer.writerow([_excel_escape(c) for c in row] if excel_safe else row)
    return buf.getvalue()


def dump_csv(
    phrases: Iterable[Phrase],
    path: str | os.PathLike[str],
    *,
    bom: bool = True,
    excel_safe: bool = True,
) -> None:
    """Write CSV; `bom=True` (UTF-8 with BOM) is what Excel needs to read Chinese."""
    text = dumps_csv(phrases, excel_safe=excel_safe)
    with open(path, "w", encoding="utf-8-sig" if bom else "utf-8", newline="") as f:
        f.write(text)


def loads_csv(
    text: str, *, source: str = "<csv>", default_updated_at: float | None = None
) -> list[Phrase]:
    """Parse CSV text; raises PhraseImportError with line numbers."""
    text = text.removeprefix("\ufeff")
    reader = csv.reader(io.StringIO(text, newline=""))
    problems: list[ImportProblem] = []
    header: list[str | None] | None = None
    parsed: list[tuple[int, Phrase]] = []
    defaults = {"updated_at": _default_time(default_updated_at)}
    prev_end = 0
    try:
        for row in reader:
            line = prev_end + 1
            prev_end = reader.line_num
            if not any(c.strip() for c in row):
                continue
            if header is None:
                header = _read_header(row, line, problems)
                if problems:
                    break
                continue
            if len(row) > len(header) and any(c.strip() for c in row[len(header) :]):
                problems.append(
                    ImportProblem(
                        line, None, f"has {len(row)} cells but the header has {len(header)}"
                    )
                )
                continue
            rec = _Record(line)
            for name, cell in zip(header, row, strict=False):
                if name is not None:
                    rec[name] = _excel_unescape(cell)
            p = _to_phrase(rec, defaults, problems)
            if p is not None:
                parsed.append((line, p))
    except csv.Error as exc:
        problems.append(ImportProblem(reader.line_num, None, f"broken CSV: {exc}"))
    if header is None and not problems:
        return []
    return _finish(source, parsed, problems)


def _read_header(row: list[str], line: int, problems: list[ImportProblem]) -> list[str | None]:
    names: list[str | None] = []
    for cell in row:
        raw = cell.strip().removeprefix("\ufeff")
        key = HEADER_ALIASES.get(raw, raw.lower())
        if key in FIELDS:
            if key in names:
                problems.append(ImportProblem(line, key, "column appears twice"))
            names.append(key)
        elif not raw or raw.startswith("#") or raw.lower() in COMMENT_HEADERS:
            names.append(None)  # a notes column for the editors, ignored
        else:
            problems.append(
                ImportProblem(line, raw, f"unknown column (known: {', '.join(FIELDS)})")
            )
            names.append(None)
    for key in REQUIRED:
        if key not in names:
            problems.append(ImportProblem(line, key, "required column is missing"))
    return names


def load_csv(
    path: str | os.PathLike[str],
    *,
    encoding: str | None = None,
    default_updated_at: float | None = None,
) -> list[Phrase]:
    """Read a CSV library: UTF-8 (with or without BOM), else GB18030 from Excel."""
    with open(path, "rb") as f:
        data = f.read()
    source = os.fspath(path)
    if encoding is not None:
        text = data.decode(encoding)
    else:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            try:
                text = data.decode("gb18030")
            except UnicodeDecodeError:
                raise PhraseImportError(
                    source,
                    [ImportProblem(0, None, "not UTF-8 or GB18030 text; save as 'CSV UTF-8'")],
                ) from None
    return loads_csv(text, source=source, default_updated_at=default_updated_at)

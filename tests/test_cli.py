"""The `desk` command as README.md shows it, run in-process against a scratch database."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from desk import cli

ROOT = Path(__file__).resolve().parent.parent


def desk(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """Run `desk ARGS` in this process; (exit code, stdout + stderr)."""
    try:
        code = cli.main(list(args))
    except SystemExit as exc:  # argparse refusing the command line
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out + out.err


@pytest.fixture
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory like the repository's: the README's relative paths resolve."""
    for folder in ("phrasebook", "server"):
        (tmp_path / folder).symlink_to(ROOT / folder, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TEXTUAL_FPS", "120")  # main() sets it when missing: keep it local
    return tmp_path


def readme_commands() -> list[list[str]]:
    """Each `desk` invocation of README's "Running it for real", with `a | b | c`
    alternatives spelled out (`desk user list | disable ID` is two commands)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"## Running it for real\s+```sh\n(.*?)```", text, re.S)
    assert block, "README.md has no 'Running it for real' block"
    commands: list[list[str]] = []
    for line in block.group(1).splitlines():
        for part in line.split(";"):
            words = shlex.split(part, comments=True)
            if not words or not words[0].endswith("bin/desk"):
                continue
            first, *alternatives = " ".join(words[1:]).split(" | ")
            head = first.split()
            commands.append(head)
            commands += [[head[0], *alt.replace("ID", "a1").split()] for alt in alternatives]
    return commands


def test_db_may_come_after_the_subcommand_as_well_as_before(scratch: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`desk user add a1 --name 李娜 --db X.db` writes X.db, like `desk user --db X.db add ...`."""
    code, out = desk(capsys, "user", "add", "a1", "--name", "李娜", "--db", "after.db", "--password", "secret1")
    assert code == 0, out
    code, out = desk(capsys, "user", "--db", "before.db", "add", "a2", "--name", "王芳", "--password", "secret1")
    assert code == 0, out
    assert (scratch / "after.db").exists() and (scratch / "before.db").exists()
    assert not (scratch / "desk.db").exists()
    code, out = desk(capsys, "user", "list", "--db", "after.db")
    assert code == 0 and re.search(r"^a1\s+agent\s+李娜", out, re.M) and "a2" not in out, out
    # Given twice, the one nearer the end wins.
    code, out = desk(capsys, "user", "--db", "after.db", "list", "--db", "before.db")
    assert code == 0 and "a2" in out and "a1 " not in out, out
    for args in (("phrases", "import", "phrasebook/data/team.yaml", "--db", "after.db"),
                 ("phrases", "list", "--search", "guashi", "--db", "after.db"),
                 ("kb", "misses", "--db", "after.db"),
                 ("audit", "verify", "--db", "after.db")):  # fmt: skip
        code, out = desk(capsys, *args)
        assert code == 0, (args, out)
    assert "intact" in out
    assert not (scratch / "desk.db").exists()


def test_reading_commands_refuse_a_database_that_is_not_there(scratch: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A mistyped --db is an error, not a fresh empty database reported as fine."""
    for args in (("audit", "verify", "--db", "typo.db"), ("user", "list", "--db", "typo.db"),
                 ("report", "--db", "typo.db")):  # fmt: skip
        code, out = desk(capsys, *args)
        assert code == 2 and "no database at typo.db" in out, (args, out)
    assert not (scratch / "typo.db").exists()


def test_every_readme_command_runs_as_written(scratch: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The admin commands of README's "Running it for real" work, in that order, on one new database
    (the hub and the simulator are long-running and tested elsewhere)."""
    commands = [c for c in readme_commands() if c[0] not in ("hub", "simulate")]
    assert ["report", "--db", "desk.db", "--from", "2026-11-16", "--to", "2026-11-22", "--out", "review/"] in commands
    assert ["user", "set", "a1", "--max", "4", "--groups", "cards"] in commands
    for args in commands:
        code, out = desk(capsys, *args)
        assert code == 0, (args, out)
    for name in ("agents.csv", "days.csv", "dissatisfied.csv"):
        assert (scratch / "review" / name).exists()
    assert (scratch / "team.csv").exists()
    code, out = desk(capsys, "user", "list")
    assert re.search(r"^a1\s+agent\s+李娜\s+4\s+disabled\s+cards$", out, re.M), out  # the README disables it
    assert re.search(r"^sup\s+supervisor\s+值班主管", out, re.M), out


def test_report_refuses_a_range_that_ends_before_it_starts(scratch: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--from after --to, or a day that is not one, is an error naming the option."""
    desk(capsys, "user", "add", "a1", "--name", "李娜", "--password", "secret1")
    code, out = desk(capsys, "report", "--from", "2026-11-22", "--to", "2026-11-16")
    assert code == 2 and "--from 2026-11-22 is after --to 2026-11-16" in out
    code, out = desk(capsys, "report", "--from", "2026-13-01")
    assert code == 2 and "not a day" in out
    assert not (scratch / "review").exists()


def test_user_list_columns_line_up_with_chinese_names(scratch: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A two-cell Chinese character counts as two: the max column stays in one place."""
    desk(capsys, "user", "add", "a1", "--name", "李娜", "--password", "secret1")
    desk(capsys, "user", "add", "a2", "--name", "Bob", "--password", "secret1")
    code, out = desk(capsys, "user", "list")
    from rich.cells import cell_len

    rows = [ln for ln in out.splitlines() if ln.startswith(("a1 ", "a2 "))]
    ends = {cell_len(ln[: ln.index(" 5 ") + 2]) for ln in rows}
    assert code == 0 and len(rows) == 2 and len(ends) == 1, out

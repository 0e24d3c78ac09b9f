"""`reason logs`: every run kept in SQLite, read back through the real CLI.

Each test has its own history file (conftest sets REASON_LOGS_PATH), so none touches the user's.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest
from cli_run import Run, interrupted_vote, run_cli

from reasoncli.history import RunFilter, list_runs, record_run, record_served_run
from reasoncli.results import BranchResult, Result, Timings, VoteGroup
from reasoncli.strategies.base import StrategyOptions

TINY_RUN = ("-n", "3", "--max-tokens", "12")


def logs_json(*args: str) -> Any:
    proc = run_cli("logs", *args, "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def one_error_line(proc: subprocess.CompletedProcess[str] | Run) -> str:
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


def a_result(question: str = "2+2?", model: str = "m", strategy: str = "vote") -> Result:
    """A result with every optional field filled, so a round trip checks them all."""
    branches = [
        BranchResult(
            0, "so 4", "4", 5, "eos", thinking="hmm", confidence=0.75, reward={"total": 1.0}
        ),
        BranchResult(1, "it is 5", "5", 6, "length", parent=0, forced_tokens=2, score=0.25),
        BranchResult(2, "", None, 0, "error", label="pilot", error="server said 500"),
    ]
    return Result(
        question=question,
        strategy=strategy,
        model=model,
        answer="4",
        share=0.5,
        votes=[VoteGroup("4", 1, 1.5, [0]), VoteGroup("5", 1, 0.5, [1])],
        branches=branches,
        prompt_tokens=30,
        generated_tokens=11,
        timings=Timings(0.1, 0.2, 0.3, 0.6),
        stop_reason="beta rule",
        details={"pilot": [1, 2]},
        backend={"name": "cpu", "threads": 2},
    )


def test_ask_and_think_round_trip_through_logs_show(tiny_gguf: Path) -> None:
    ask = run_cli("ask", "What is 2+2?", "-m", str(tiny_gguf), *TINY_RUN, "--json")
    assert ask.returncode == 0, ask.stderr
    assert ask.stderr == ""
    think = run_cli("think", "Is 7 prime?", "-m", str(tiny_gguf), "--max-tokens", "8", "--json")
    assert think.returncode == 0, think.stderr

    listed = logs_json("list")
    assert [r["strategy"] for r in listed] == ["think", "vote"]  # newest first
    assert all(r["status"] == 0 and r["source"] == "cli" for r in listed)
    assert logs_json("list", "--strategy", "think")[0]["question"] == "Is 7 prime?"

    for run, printed in zip(listed, (think, ask), strict=True):
        shown = logs_json("show", str(run["id"]))
        assert shown["result"] == json.loads(printed.stdout)  # branches, votes, timings, all
        assert shown["interrupted"] is False and shown["error"] is None
    ask_run = logs_json("show", str(listed[1]["id"]))
    assert ask_run["options"]["branches"] == 3 and ask_run["options"]["max_tokens"] == 12
    assert ask_run["options"]["sampling"] is None

    text = run_cli("logs", "show", str(listed[1]["id"]))
    assert text.returncode == 0 and text.stderr == ""
    assert "question: What is 2+2?" in text.stdout
    assert "answer:" in text.stdout and "vote · tiny" in text.stdout


def test_every_field_round_trips_and_list_filters(capfd: pytest.CaptureFixture[str]) -> None:
    options = StrategyOptions(branches=3, expect="4")
    first = record_run("2+2?", "m", "vote", options, a_result(), 0, False)
    record_run("3+3?", "other", "best-of-n", options, a_result("3+3?", "other", "best-of-n"))
    record_served_run("m", "4+4?", "vote", None, None, RuntimeError("engine failed"))

    shown = logs_json("show", str(first))
    assert shown["result"] == a_result().to_json()
    assert shown["options"]["expect"] == "4" and shown["options"]["branches"] == 3

    assert [r["question"] for r in logs_json("list")] == ["4+4?", "3+3?", "2+2?"]
    assert [r["question"] for r in logs_json("list", "-n", "1")] == ["4+4?"]
    assert [r["question"] for r in logs_json("list", "--model", "other")] == ["3+3?"]
    assert [r["question"] for r in logs_json("list", "--strategy", "vote")] == ["4+4?", "2+2?"]
    assert [r["question"] for r in logs_json("list", "--search", "3+3")] == ["3+3?"]
    served = logs_json("list", "--search", "4+4")[0]
    assert served["source"] == "serve" and served["status"] == 1 and served["answer"] is None
    failed = logs_json("show", str(served["id"]))
    assert failed["result"] is None and failed["error"] == "engine failed"

    table = run_cli("logs", "list")
    assert table.returncode == 0 and "best-of-n" in table.stdout and "3+3?" in table.stdout
    assert "engine failed" in run_cli("logs", "show", str(served["id"])).stdout


def test_no_log_flag_and_env_skip_the_history(tiny_gguf: Path, _private_history: Path) -> None:
    run = ("ask", "2+2?", "-m", str(tiny_gguf), "-n", "1", "--max-tokens", "2", "--json")
    assert run_cli(*run, "--no-log").returncode == 0
    assert run_cli(*run, env={"REASON_NO_LOG": "1"}).returncode == 0
    assert (
        run_cli(
            "think", "2+2?", "-m", str(tiny_gguf), "--max-tokens", "2", "--no-log", "--json"
        ).stderr
        == ""
    )
    assert not _private_history.exists()
    assert logs_json("list") == []
    assert not _private_history.exists()  # reading does not create it


def test_two_processes_writing_at_once_lose_nothing(_private_history: Path) -> None:
    """Both start on a file that does not exist yet, so they also race to create the schema."""
    writer = textwrap.dedent(
        """
        import sys
        from reasoncli.history import record_run
        from reasoncli.results import Result
        for i in range(150):
            r = Result(f"{sys.argv[1]}-{i}", "vote", "m", str(i), 1.0)
            record_run(r.question, "m", "vote", None, r)
        """
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", writer, name], stderr=subprocess.PIPE, text=True)
        for name in ("a", "b")
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    runs = list_runs(RunFilter(limit=1000))
    assert len(runs) == 300 and len({r.id for r in runs}) == 300
    assert {r.question for r in runs} == {f"{n}-{i}" for n in "ab" for i in range(150)}
    with sqlite3.connect(_private_history) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_threads_of_one_server_writing_at_once_lose_nothing() -> None:
    def write(name: str) -> None:
        for i in range(50):
            record_served_run("m", f"{name}-{i}", "vote", None, a_result(f"{name}-{i}"), None)

    threads = [threading.Thread(target=write, args=(str(n),)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    runs = list_runs(RunFilter(limit=1000))
    assert len(runs) == 200 and {r.source for r in runs} == {"serve"}


def test_threads_creating_a_new_history_at_once_all_get_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Creating the file races: the WAL switch and the owner check must not refuse a history
    that another thread is creating at that moment."""
    for trial in range(15):
        monkeypatch.setenv("REASON_LOGS_PATH", str(tmp_path / f"h{trial}.db"))
        errors: list[BaseException] = []

        def write(name: str, errors: list[BaseException]) -> None:
            try:
                for i in range(3):
                    record_served_run("m", f"{name}-{i}", "vote", None, a_result(), None)
            except BaseException as exc:  # noqa: BLE001 - collected for the assert below
                errors.append(exc)

        threads = [threading.Thread(target=write, args=(str(n), errors)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == [] and len(list_runs(RunFilter(limit=100))) == 12


def test_a_version_1_history_is_migrated_and_keeps_its_runs(_private_history: Path) -> None:
    from reasoncli.history.store import APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION

    conn = sqlite3.connect(_private_history)
    conn.executescript(MIGRATIONS[0])
    conn.execute(
        "INSERT INTO runs (created_at, source, question, model, strategy, options, status, "
        "interrupted, has_result) VALUES ('2026-12-01T00:00:00', 'cli', 'old?', 'm', 'vote', "
        "'{}', 0, 0, 0)"
    )
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    result = a_result()
    result.timings = Timings(0.1, 0.2, 0.3, 0.6, prompt_tokens_decoded=41, decode_calls=9)
    new = record_run("2+2?", "m", "vote", StrategyOptions(), result, 0, False)
    assert [r["question"] for r in logs_json("list")] == ["2+2?", "old?"]
    assert logs_json("show", str(new))["result"]["timings"]["prompt_tokens_decoded"] == 41
    conn = sqlite3.connect(_private_history)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
    conn.close()


def test_an_empty_file_becomes_a_history(_private_history: Path) -> None:
    _private_history.touch()
    run_id = record_run("q", "m", "vote", None, a_result("q"))
    assert logs_json("show", str(run_id))["result"] == a_result("q").to_json()


def _text_file(path: Path) -> None:
    path.write_text("my notes, not a database\n")


def _foreign_sqlite(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE notes (body TEXT)")
        conn.execute("INSERT INTO notes VALUES ('mine')")
    conn.close()


def _newer_history(path: Path) -> None:
    record_run("q", "m", "vote", None, a_result())
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 99")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def _damaged_sqlite(path: Path) -> None:
    _foreign_sqlite(path)
    data = bytearray(path.read_bytes())
    data[100:] = b"\xff" * (len(data) - 100)  # a valid header over garbage pages
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (_text_file, "not an SQLite file"),
        (_foreign_sqlite, "something else"),
        (_newer_history, "newer reason"),
        (_damaged_sqlite, "cannot be used"),
    ],
)
def test_a_file_that_is_not_our_history_is_refused_and_left_alone(
    _private_history: Path, make: Any, words: str
) -> None:
    make(_private_history)
    before = _private_history.read_bytes()
    for args in (("list",), ("show", "1"), ("rm", "1"), ("rm", "--all")):
        proc = run_cli("logs", *args)
        assert proc.returncode == 4, (args, proc.stderr)
        line = one_error_line(proc)
        assert line.startswith("Error: ") and words in line and str(_private_history) in line
        assert proc.stdout == ""
    assert _private_history.read_bytes() == before
    assert not Path(f"{_private_history}-wal").exists() or make is _newer_history


def test_a_history_that_cannot_be_written_does_not_lose_the_answer(
    tiny_gguf: Path, _private_history: Path
) -> None:
    _text_file(_private_history)
    before = _private_history.read_bytes()
    proc = run_cli("ask", "2+2?", "-m", str(tiny_gguf), "-n", "2", "--max-tokens", "4", "--json")
    assert proc.returncode == 0
    assert json.loads(proc.stdout)["branches"]  # the whole answer is on stdout
    line = one_error_line(proc)
    assert line.startswith("Warning: this run was not logged: ") and "not an SQLite" in line
    assert _private_history.read_bytes() == before


def test_rm_one_run_or_all_and_path(_private_history: Path) -> None:
    ids = [record_run(f"q{i}", "m", "vote", None, a_result(f"q{i}")) for i in range(3)]
    path = run_cli("logs", "path")
    assert path.returncode == 0 and path.stdout.strip() == str(_private_history)

    proc = run_cli("logs", "rm", str(ids[1]))
    assert proc.returncode == 0 and proc.stdout == ""
    assert [r["id"] for r in logs_json("list")] == [ids[2], ids[0]]
    with sqlite3.connect(_private_history) as conn:  # its branches and votes went with it
        for table in ("branches", "votes"):
            sql = f"SELECT count(*) FROM {table} WHERE run_id = ?"
            assert conn.execute(sql, [ids[1]]).fetchone()[0] == 0
            assert conn.execute(sql, [ids[0]]).fetchone()[0] > 0
    conn.close()

    again = run_cli("logs", "rm", str(ids[1]))
    assert again.returncode == 4 and "no run" in one_error_line(again)
    assert run_cli("logs", "show", "999").returncode == 4
    assert run_cli("logs", "rm").returncode == 2
    assert run_cli("logs", "rm", "1", "--all").returncode == 2

    everything = run_cli("logs", "rm", "--all")
    assert everything.returncode == 0 and "removed 2 run(s)" in everything.stderr
    assert logs_json("list") == []


def test_ctrl_c_run_is_logged_with_its_partial_vote(tiny_gguf: Path) -> None:
    printed = interrupted_vote(tiny_gguf)
    assert printed.pop("event") == "result" and printed["interrupted"] is True

    (run,) = logs_json("list")
    assert run["interrupted"] is True and run["status"] == 130
    shown = logs_json("show", str(run["id"]))
    assert shown["result"] == printed
    assert len(shown["result"]["branches"]) == 4
    assert all(b["tokens"] > 0 for b in shown["result"]["branches"])
    text = run_cli("logs", "show", str(run["id"])).stdout
    assert "interrupted" in text

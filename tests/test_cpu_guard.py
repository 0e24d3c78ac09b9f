"""The AMX guard, core sharing between processes, and the one-line native crash report (#26).

The decision logic is tested with both answers of the probe, and for a machine without AMX by
the rule's inputs; the list editing, the probe and the crash report run for real, in child
processes, since each acts once per process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_run import reason, run_cli

from reasoncli.engine import core_share, cpu_buffers
from reasoncli.engine.cpu_buffers import decide, kept_types, requested_mode
from reasoncli.errors import UsageError

AMX_BUILD = ("AMX", "CPU_REPACK")
PLAIN_BUILD = ("CPU_REPACK",)


class ProbeLog:
    """A probe answering from a table, recording what it was asked."""

    def __init__(self, answers: dict[str, bool]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    def __call__(self, mode: str) -> bool:
        self.asked.append(mode)
        return self.answers[mode]


def test_without_amx_the_rule_keeps_every_buffer_and_never_probes() -> None:
    probe = ProbeLog({})
    assert decide("auto", PLAIN_BUILD, probe)[:2] == ("on", "rule")
    assert decide("auto", (), probe)[:2] == ("on", "rule")
    assert probe.asked == []


def test_amx_that_runs_stays_on() -> None:
    probe = ProbeLog({"on": True})
    assert decide("auto", AMX_BUILD, probe)[:2] == ("on", "probe")
    assert probe.asked == ["on"]


def test_amx_that_crashes_is_dropped_and_the_repack_kept() -> None:
    probe = ProbeLog({"on": False, "repack": True})
    mode, source, reason = decide("auto", AMX_BUILD, probe)
    assert (mode, source) == ("repack", "probe")
    assert "AMX crashed" in reason
    assert kept_types(AMX_BUILD, mode) == ("CPU_REPACK",)


def test_when_everything_crashes_no_extra_buffer_is_used() -> None:
    probe = ProbeLog({"on": False, "repack": False})
    assert decide("auto", AMX_BUILD, probe)[0] == "off"
    assert kept_types(AMX_BUILD, "off") == ()


@pytest.mark.parametrize("mode", ["on", "repack", "off"])
def test_a_setting_wins_without_probing(mode: str) -> None:
    probe = ProbeLog({})
    assert decide(mode, AMX_BUILD, probe)[:2] == (mode, "setting")
    assert probe.asked == []


def test_requested_mode_reads_flag_then_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(cpu_buffers.ENV_VAR, " OFF ")
    assert requested_mode() == "off"
    assert requested_mode("repack") == "repack"
    monkeypatch.delenv(cpu_buffers.ENV_VAR)
    assert requested_mode() == "auto"
    monkeypatch.setenv(cpu_buffers.ENV_VAR, "amx")
    with pytest.raises(UsageError, match="REASON_CPU_EXTRA_BUFFERS must be one of"):
        requested_mode()


def test_cpu_flags_of_a_machine_with_and_without_amx() -> None:
    spr = "processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_vnni amx_bf16 amx_tile amx_int8\n"
    zen3 = "processor\t: 0\nflags\t\t: fpu sse avx2 fma\n"
    assert cpu_buffers.cpu_flags(spr) == [
        "avx2",
        "avx512f",
        "avx512_vnni",
        "amx_tile",
        "amx_int8",
        "amx_bf16",
    ]
    assert cpu_buffers.cpu_flags(zen3) == ["avx2"]
    assert cpu_buffers.cpu_flags("") == []


def _python(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=180,
    )


LIST_AFTER_LOAD = """
import json
from reasoncli.engine import cpu_buffers
from reasoncli.engine.model import load_llama_cpp
load_llama_cpp()
choice = cpu_buffers.current()
print(json.dumps({"mode": choice.mode, "source": choice.source,
                  "available": list(choice.available),
                  "list": list(cpu_buffers.ExtraBufferList().names())}))
"""


@pytest.mark.parametrize("mode", ["off", "repack"])
def test_the_setting_edits_llama_cpps_buffer_list(mode: str) -> None:
    done = _python(LIST_AFTER_LOAD, {cpu_buffers.ENV_VAR: mode})
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert (out["mode"], out["source"]) == (mode, "setting")
    assert "AMX" not in out["list"]
    assert out["list"] == list(kept_types(tuple(out["available"]), mode))


def test_the_probe_runs_once_then_answers_from_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, smollm2_path: Path
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    probe, ran = cpu_buffers.cached_probe("machine-a", smollm2_path)
    assert probe("off") is True  # a real child process loaded and decoded the embedded model
    assert ran == {"off": True}
    again, ran_again = cpu_buffers.cached_probe("machine-a", smollm2_path)
    assert again("off") is True
    assert ran_again == {}
    cached = json.loads((tmp_path / "reason" / "cpu-extra-buffers.json").read_text())
    assert cached["machine-a"]["probes"] == {"off": True}
    other, ran_other = cpu_buffers.cached_probe("machine-b", None)
    assert other("on") is False  # nothing to probe with: AMX stays off
    assert ran_other == {"on": False}


@pytest.mark.embedded
def test_the_embedded_model_answers_on_this_cpu(tmp_path: Path) -> None:
    """The README's first command, end to end, with the default (auto) choice: on an AMX
    machine whose AMX faults it crashed with exit 139 before the guard."""
    env: dict[str, str | None] = {cpu_buffers.ENV_VAR: None}
    done = reason("ask", "What is 2 + 3?", "--branches", "4", "--json", env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["answer"] == "5"
    in_use = result["backend"]["cpu_extra_buffers"]
    doctor = reason("doctor", "--json", env=env, timeout=300)
    report = json.loads(doctor.stdout)["cpu"]["extra_buffers"]
    assert report["in_use"] == in_use
    assert report["mode"] in ("on", "repack", "off")
    assert report["source"] in ("rule", "probe", "cached probe")


def test_a_bad_setting_is_a_usage_error_before_any_model_loads() -> None:
    done = run_cli("ask", "What is 2 + 3?", env={cpu_buffers.ENV_VAR: "sometimes"})
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        "Error: REASON_CPU_EXTRA_BUFFERS must be one of auto, on, repack, off (got 'sometimes')"
    ]
    flag = run_cli("--cpu-extra-buffers", "x", "doctor")
    assert flag.returncode == 2
    assert "--cpu-extra-buffers must be one of" in flag.stderr


# --------------------------------------------------------------------------------------------
# A native crash is one line
# --------------------------------------------------------------------------------------------

CRASH = """
import ctypes
from reasoncli import crash_watch
crash_watch.arm()
assert crash_watch.start()
ctypes.string_at(0)  # a real SIGSEGV in native code
"""


def test_a_native_crash_prints_one_line_and_keeps_a_report(tmp_path: Path) -> None:
    done = _python(CRASH, {"XDG_CACHE_HOME": str(tmp_path)})
    assert done.returncode == -11
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("Error: llama.cpp crashed the process (Segmentation fault")
    assert "REASON_CPU_EXTRA_BUFFERS=off" in lines[0]
    report = tmp_path / "reason" / "last-crash.txt"
    assert str(report) in lines[0]
    assert "Fatal Python error: Segmentation fault" in report.read_text()


def test_a_clean_exit_and_an_unarmed_process_say_nothing(tmp_path: Path) -> None:
    clean = _python(
        "from reasoncli import crash_watch\ncrash_watch.arm()\nassert crash_watch.start()\n",
        {"XDG_CACHE_HOME": str(tmp_path)},
    )
    assert (clean.returncode, clean.stderr) == (0, "")
    unarmed = _python("from reasoncli import crash_watch\nassert not crash_watch.start()\n")
    assert (unarmed.returncode, unarmed.stderr) == (0, "")
    assert not (tmp_path / "reason" / "last-crash.txt").exists()


# --------------------------------------------------------------------------------------------
# Concurrent processes share the cores
# --------------------------------------------------------------------------------------------


def test_the_registry_counts_fresh_marks_and_removes_stale_ones(tmp_path: Path) -> None:
    ours = core_share.DecodingRegistry(tmp_path, pid=101)
    theirs = core_share.DecodingRegistry(tmp_path, pid=202)
    now = time.time()
    assert ours.decoding(now) == 1  # an empty or missing directory: alone
    ours.touch(now)
    theirs.touch(now)
    assert ours.decoding(now) == 2
    assert ours.decoding(now + core_share.FRESH_S + 0.5) == 1  # both idle: counts as alone
    old = tmp_path / "303"
    old.touch()
    past = now - core_share.STALE_S - 10
    os.utime(old, (past, past))
    ours.decoding(now)
    assert not old.exists()
    ours.remove()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["202"]


def test_threads_follow_the_number_of_decoding_processes() -> None:
    assert core_share.shared_threads(2, 1) == 2
    assert core_share.shared_threads(2, 2) == 1
    assert core_share.shared_threads(2, 3) == 1
    assert core_share.shared_threads(16, 3) == 5


def test_a_context_drops_to_its_share_and_back(
    tiny_model: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reasoncli.engine.branches import BranchEngine
    from reasoncli.engine.sizing import ContextPlan

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.delenv("REASON_SHARE_CORES", raising=False)
    monkeypatch.setattr(core_share, "_registry", core_share.DecodingRegistry(tmp_path))
    model = tiny_model
    plan = ContextPlan(n_seq_max=2, n_ctx_seq=64, n_batch=64, kv_bytes=0)
    with BranchEngine.open(model, plan) as engine:  # type: ignore[arg-type]
        lib, ctx = engine.lib, engine.ctx
        share = core_share.ThreadShare(2, 2)
        share.before_decode(lib, ctx)
        assert lib.llama_n_threads(ctx) == engine.n_threads
        other = tmp_path / "999999"
        other.touch()  # another process decoding right now
        share._checked = 0.0
        share.before_decode(lib, ctx)
        assert lib.llama_n_threads(ctx) == 1
        past = time.time() - 2 * core_share.FRESH_S
        os.utime(other, (past, past))  # it finished
        share._checked = 0.0
        share.before_decode(lib, ctx)
        assert lib.llama_n_threads(ctx) == 2


def test_the_users_settings_turn_sharing_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.delenv("REASON_SHARE_CORES", raising=False)
    assert core_share.ThreadShare(2, 2).enabled
    assert not core_share.ThreadShare(2, 2, fixed=True).enabled  # --threads given
    assert not core_share.ThreadShare(1, 1).enabled
    monkeypatch.setenv("OMP_WAIT_POLICY", "passive")
    assert not core_share.ThreadShare(2, 2).enabled
    monkeypatch.delenv("OMP_WAIT_POLICY")
    monkeypatch.setenv("REASON_SHARE_CORES", "0")
    assert not core_share.ThreadShare(2, 2).enabled

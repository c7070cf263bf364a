"""precision="auto" on a CPU: bf16 only where it measured faster; env override and cache."""

from __future__ import annotations

import json

import pytest

from cnnlab.training import bf16_probe


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CNNLAB_CACHE", str(tmp_path))
    monkeypatch.delenv("CNNLAB_CPU_BF16", raising=False)
    monkeypatch.setattr(bf16_probe, "_ANSWERS", {})
    return tmp_path / "bf16.json"


@pytest.mark.parametrize("env,expect", [("1", True), ("0", False)])
def test_env_overrides_everything(cache, monkeypatch, env, expect):
    monkeypatch.setenv("CNNLAB_CPU_BF16", env)
    monkeypatch.setattr(bf16_probe, "measure_speedup", lambda: pytest.fail("measured"))
    assert bf16_probe.bf16_pays() is expect
    assert not cache.exists()


@pytest.mark.parametrize("speedup,expect", [(0.45, False), (1.05, False), (1.1, True), (2.0, True)])
def test_cached_speedup_decides_without_measuring(cache, monkeypatch, speedup, expect):
    cache.write_text(json.dumps({bf16_probe._cpu_key(): {"speedup": speedup}}))
    monkeypatch.setattr(bf16_probe, "measure_speedup", lambda: pytest.fail("measured"))
    assert bf16_probe.bf16_pays() is expect


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"other cpu": {"speedup": 9}}'])
def test_missing_or_broken_cache_is_measured_once_and_written(cache, monkeypatch, content):
    cache.write_text(content)
    calls = []
    monkeypatch.setattr(bf16_probe, "measure_speedup", lambda: calls.append(1) or 0.5)
    assert bf16_probe.bf16_pays() is False
    assert bf16_probe.bf16_pays() is False
    assert calls == [1]
    entry = json.loads(cache.read_text())[bf16_probe._cpu_key()]
    assert entry == {"speedup": 0.5, "bf16": False}


def test_measured_speedup_is_a_positive_ratio():
    assert bf16_probe.measure_speedup(repeats=1) > 0

"""The conformance suite itself: it fails a provider that breaks the rules, with messages
that say which rule, as a plugin author would see it (pytester runs a plugin's test file)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from plugway.testing.gateway_process import plugin_site

SLOPPY = Path(__file__).parent / "plugin_pkgs" / "broken_provider" / "plugway_sloppy.py"


def test_suite_fails_a_provider_that_breaks_the_rules(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(plugin_site([SLOPPY], tmp_path / "site")))
    pytester.makepyfile(
        test_sloppy="""
        from plugway.testing.conformance import ProviderConformance

        class TestSloppy(ProviderConformance):
            provider_type = "sloppy"
        """
    )
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider", "-k", "not gateway")
    text = result.stdout.str()
    assert "ConfigError" not in text, text
    result.assert_outcomes(failed=6)
    assert "a ChunkStream must not yield [DONE]; the core adds it" in text
    # assertion rewriting is on for the suite: the failing usage is shown
    assert "assert (7 + 12) == 20" in text, text

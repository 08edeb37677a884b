"""The README documents every config key and names the two set-up commands."""

from pathlib import Path

import config

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def test_every_config_key_is_documented_with_its_default():
    for key in config.DEFAULTS:
        row = next((line for line in README.splitlines() if line.startswith(f"| `{key}` |")), None)
        assert row is not None, key
        assert config.help_table([key]).splitlines()[-1] == row, key


def test_the_two_set_up_commands_come_first():
    setup = README.index("## Set-up")
    assert README.index("./run_pykan_mit.sh") > setup
    assert README.index("./run_tests.sh") > setup
    assert setup < README.index("## Quick start")

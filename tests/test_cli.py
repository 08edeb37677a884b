"""cli.py: bad arguments and user mistakes end as one line and exit 2."""

import pytest

import cli
from errors import UserError


def test_a_bad_argument_raises_a_user_error_not_a_usage_dump():
    parser = cli.ArgumentParser(prog="tool")
    parser.add_argument("--n", type=int)
    with pytest.raises(UserError, match=r"argument --n: invalid int value: 'x' \(see --help\)"):
        parser.parse_args(["--n", "x"])


def test_run_turns_a_user_error_into_one_line_and_exit_2(capsys):
    def main(argv):
        raise UserError(f"bad {argv[0]}")

    assert cli.run(main, ["thing"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == "error: bad thing\n"


def test_run_passes_the_exit_code_and_lets_programming_errors_raise():
    assert cli.run(lambda argv: 130, []) == 130
    assert cli.run(lambda argv: None, []) == 0
    with pytest.raises(ZeroDivisionError):
        cli.run(lambda argv: 1 / 0, [])


def test_a_message_quoting_control_characters_stays_one_line(capsys):
    def main(argv):
        raise UserError("unknown key 'a\nb\x1ec\u2028d'")

    assert cli.run(main, []) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == ["error: unknown key 'a\\nb\\x1ec\\u2028d'"]

"""Reading a JSON config file safely: one line for every way a file can be wrong."""

import json
from pathlib import Path

from errors import ConfigError


def show(value: object, limit: int = 60) -> str:
    """The value as the user wrote it (JSON), shortened for a one-line message."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def read_json_object(path: str) -> dict:
    """The JSON object in the UTF-8 file at ``path`` (a BOM allowed); a missing or unreadable
    file, invalid JSON, a key given twice, too deep nesting or a top level that is no object
    raise ConfigError with one line naming the file."""

    def no_duplicates(pairs: list[tuple[str, object]]) -> dict:
        result: dict = {}
        for key, value in pairs:
            if key in result:
                raise ConfigError(f"{path}: key '{key}' appears more than once")
            result[key] = value
        return result

    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"config file '{path}' not found") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text file") from None
    except OSError as error:
        raise ConfigError(f"{path}: cannot read ({error.strerror})") from None
    try:
        data = json.loads(text, object_pairs_hook=no_duplicates)
    except json.JSONDecodeError as error:
        raise ConfigError(
            f"{path} line {error.lineno}, column {error.colno}: invalid JSON ({error.msg})"
        ) from None
    except RecursionError:
        data = [[]] * (MAX_NESTING + 1)  # refused just below
    check_nesting(data, path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a JSON object {{...}}, got {show(data)}")
    return data


MAX_NESTING = 16  # lists / objects within each other: more is no config (and no recursion limit)


def check_nesting(value: object, where: str) -> None:
    """Refuse JSON nested deeper than MAX_NESTING (checked without recursion)."""
    level, depth = [value], 0
    while True:
        containers = [item for item in level if isinstance(item, list | dict)]
        if not containers:
            return
        depth += 1
        if depth > MAX_NESTING:
            raise ConfigError(f"{where}: lists / objects nested deeper than {MAX_NESTING} levels")
        level = [v for c in containers for v in (c.values() if isinstance(c, dict) else c)]

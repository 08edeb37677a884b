"""Progress bars for long loops (training, data generation), behind the `training.Progress`
callback."""

import sys


class ProgressBar:
    """A tqdm bar on stderr; ``notebook=True`` uses tqdm.auto (a widget in a notebook).

    `write` prints a line above the bar without breaking it (a log writer for the run folder).
    """

    def __init__(self, notebook: bool = False):
        if notebook:
            from tqdm.auto import tqdm
        else:
            from tqdm import tqdm
        self._tqdm = tqdm
        self._bar = None

    @staticmethod
    def wanted(enabled: bool) -> bool:
        """A bar is shown when enabled and stderr is a terminal."""
        return enabled and sys.stderr.isatty()

    def start(self, total: int, label: str, unit: str | None = None) -> None:
        """A bar of ``total`` units (default: steps for training, else rows; "B": bytes)."""
        unit = unit or ("step" if label in ("train", "finetune") else "row")
        self._bar = self._tqdm(
            total=total,
            desc=label,
            unit=unit,
            unit_scale=unit == "B",
            leave=False,
            dynamic_ncols=True,
        )

    def update(self, done: int, train_rmse: float | None = None) -> None:
        self._bar.update(done - self._bar.n)
        if train_rmse is not None:
            self._bar.set_postfix_str(f"rmse {train_rmse:.3e}")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def write(self, line: str) -> None:
        self._tqdm.write(line)

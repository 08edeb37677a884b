"""Standardised training coordinates: the network learns in units where every input spans
[-1, 1] and every output has mean 0 and standard deviation 1, whatever the data's own units.

So penalties, learning rates and grid settings mean the same for data in [0, 1000] or in
[-1e-3, 1e-3]. Inputs are mapped by their training range (x' = (x - centre) / half-range: a
spline on linearly mapped knots is the same function space, so only the initialisation and
the base activation see the change), outputs by their training mean and standard deviation
(with the structure search, by their root mean square alone: a product law must stay one).
After training the model takes the map in (`SimpleKAN.set_units`), so the saved model,
prediction and plots are in the data's units again, and the formula composed in standardised
symbols is mapped back (`raw_formulas`) before its constants are refitted and snapped in the
data's units (formula_snap.py).
"""

from dataclasses import dataclass, replace

import torch

from datasets import Data


@dataclass(frozen=True)
class Units:
    """x' = (x - in_shift) / in_scale, y = y' * out_scale + out_shift; each (n,) float64."""

    in_shift: torch.Tensor
    in_scale: torch.Tensor
    out_shift: torch.Tensor
    out_scale: torch.Tensor

    def inputs(self, x: torch.Tensor | None) -> torch.Tensor | None:
        return None if x is None else (x - self.in_shift.to(x)) / self.in_scale.to(x)

    def outputs(self, y: torch.Tensor | None) -> torch.Tensor | None:
        """Data outputs → standardised ones."""
        return None if y is None else (y - self.out_shift.to(y)) / self.out_scale.to(y)

    @property
    def rmse_factor(self) -> float:
        """A standardised RMSE times this is the RMSE in the data's units (exact for one output;
        for several, the root mean square of their scales)."""
        return float(torch.sqrt(torch.mean(self.out_scale**2)))


def units_of(data: Data, keep_origin: bool = False) -> Units:
    """The map of the training set: input ranges, output mean and standard deviation (a
    constant column keeps scale 1); with ``keep_origin`` the outputs keep their zero and are
    scaled by their root mean square (a product law stays a product)."""
    x = data.x_train.detach().to(torch.float64)
    y = data.y_train.detach().to(torch.float64)
    lo, hi = x.min(dim=0).values, x.max(dim=0).values
    half = (hi - lo) / 2
    std = y.std(dim=0, unbiased=False) if len(y) > 1 else torch.zeros(y.shape[1])
    shift = y.mean(dim=0)
    if keep_origin:
        std, shift = y.square().mean(dim=0).sqrt(), torch.zeros_like(shift)
    one = torch.ones_like
    return Units(
        (hi + lo) / 2,
        torch.where(half > 0, half, one(half)),
        shift,
        torch.where(std > 0, std, one(std)),
    )


def standardized(data: Data, units: Units) -> Data:
    """The same data in standardised coordinates (the input range mapped too)."""
    rng = data.input_range.to(torch.float64)
    mapped = (rng - units.in_shift[:, None]) / units.in_scale[:, None]
    return replace(
        data,
        x_train=units.inputs(data.x_train),
        y_train=units.outputs(data.y_train),
        x_test=units.inputs(data.x_test),
        y_test=units.outputs(data.y_test),
        x_val=units.inputs(data.x_val),
        y_val=units.outputs(data.y_val),
        input_range=mapped.to(data.input_range),
        target=None,
    )


def raw_history(record: dict, units: Units) -> dict:
    """history.json's RMSE columns in the data's units."""
    factor = units.rmse_factor
    out = dict(record)
    for key in ("train_rmse", "test_rmse", "val_rmse"):
        if key in out:
            out[key] = [v * factor for v in out[key]]
    return out


def raw_formulas(exprs, symbols, units: Units) -> list:
    """Formulas in standardised symbols → formulas in the data's symbols and units."""
    import sympy

    to_raw = {
        s: (s - float(c)) / float(h)
        for s, c, h in zip(symbols, units.in_shift.tolist(), units.in_scale.tolist())
    }
    return [
        sympy.Float(float(scale)) * e.xreplace(to_raw) + sympy.Float(float(shift))
        for e, scale, shift in zip(exprs, units.out_scale.tolist(), units.out_shift.tolist())
    ]


def adopt(model, raw: Data, units: Units) -> Data:
    """Give ``model`` (trained on `standardized` data, maybe pruned to fewer inputs) the map to
    the data's units; returns the raw data with the inputs the model kept."""
    kept = [raw.input_names.index(n) for n in model.input_names]
    if kept != list(range(len(raw.input_names))):
        raw = raw.select_inputs(kept)
    model.set_units(replace(units, in_shift=units.in_shift[kept], in_scale=units.in_scale[kept]))
    model.input_range = raw.input_range.tolist()
    return raw

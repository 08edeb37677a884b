"""scikit-learn estimators: `KANRegressor` and `KANClassifier`, a `SimpleKAN` trained by
`fitting.fit` (the classifier with ``task: "classification"``: one logit per class, the
cross-entropy loss, probabilities by the softmax).

scikit-learn is an optional dependency, imported only here. The parameters are the config keys
that shape the network (``hidden_dims``, ``grid_size``, ``spline_degree``, ``base_activation``,
``dtype``) and the training keys (the rest), with the config's defaults except where noted;
`fitting.fit` checks them with the config's rules. The first layer's grid spans the range of
the training inputs; the grid range then follows the data as in every run. ``dtype`` defaults
to float64 (small tabular data sets; predictions then do not depend on the batch order even in
the last bits) and ``progress_bar`` to off (estimators are fitted many times inside searches).

`check_estimator` passes for both; we skip none of its checks. scikit-learn itself skips two
per estimator where an optional part is absent: check_array_api_input (SCIPY_ARRAY_API unset)
and check_regressor_data_not_an_array / check_classifier_data_not_an_array (pandas not
installed).
"""

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

import config
import fitting
from arrays import to_numpy
from simple_kan import SimpleKAN

_D = config.DEFAULTS


class KANRegressor(RegressorMixin, BaseEstimator):
    """A KAN regressor: ``[n_features, *hidden_dims, n_outputs]``; y of shape (N,) or (N, k).

    Fitted attributes: ``model_`` (the `SimpleKAN`), ``history_`` (what `fitting.fit`
    returned), ``n_features_in_``, ``n_outputs_``.
    """

    def __init__(
        self,
        hidden_dims=(4, 8, 4),
        grid_size=_D["grid_size"],
        spline_degree=_D["spline_degree"],
        base_activation=_D["base_activation"],
        dtype="float64",
        learning_rate=_D["learning_rate"],
        num_steps=_D["num_steps"],
        optimizer=_D["optimizer"],
        batch_size=_D["batch_size"],
        update_strategy=_D["update_strategy"],
        fixed_update_interval=_D["fixed_update_interval"],
        max_grid_size=_D["max_grid_size"],
        adaptive_k=_D["adaptive_k"],
        knot_placement=_D["knot_placement"],
        use_regularization=_D["use_regularization"],
        l1_weight=_D["l1_weight"],
        entropy_weight=_D["entropy_weight"],
        early_stopping_patience=_D["early_stopping_patience"],
        validation_fraction=_D["validation_fraction"],
        seed=_D["seed"],
        progress_bar=False,
    ):
        self.hidden_dims = hidden_dims
        self.grid_size = grid_size
        self.spline_degree = spline_degree
        self.base_activation = base_activation
        self.dtype = dtype
        self.learning_rate = learning_rate
        self.num_steps = num_steps
        self.optimizer = optimizer
        self.batch_size = batch_size
        self.update_strategy = update_strategy
        self.fixed_update_interval = fixed_update_interval
        self.max_grid_size = max_grid_size
        self.adaptive_k = adaptive_k
        self.knot_placement = knot_placement
        self.use_regularization = use_regularization
        self.l1_weight = l1_weight
        self.entropy_weight = entropy_weight
        self.early_stopping_patience = early_stopping_patience
        self.validation_fraction = validation_fraction
        self.seed = seed
        self.progress_bar = progress_bar

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    MODEL_PARAMS = ("hidden_dims", "grid_size", "spline_degree", "base_activation", "dtype")

    def fit(self, X, y):
        X, y = validate_data(self, X, y, multi_output=True, y_numeric=True, dtype=np.float64)
        y2 = y.reshape(len(y), -1)
        self.n_outputs_, self._y_1d = y2.shape[1], y.ndim == 1
        self._fit_model(X, y2, self.n_outputs_, {})
        return self

    def _fit_model(self, X, targets, n_out: int, keys: dict) -> None:
        """Build ``model_`` ([n_features, *hidden_dims, n_out]) and train it on targets."""
        params = self.get_params()
        model_keys = {k: params.pop(k) for k in self.MODEL_PARAMS}
        dims = [X.shape[1], *model_keys["hidden_dims"], n_out]
        checked = config.check_keys(
            {
                "layer_dims": dims,
                **{k: v for k, v in model_keys.items() if k != "hidden_dims"},
            },
            type(self).__name__,
        )
        lo, hi = X.min(axis=0), X.max(axis=0)
        flat = lo == hi
        ranges = np.stack([np.where(flat, lo - 0.5, lo), np.where(flat, hi + 0.5, hi)], axis=1)
        with torch.random.fork_rng(devices=[]):  # the initial weights, without touching torch's RNG
            torch.manual_seed(self.seed)
            model = SimpleKAN(
                checked["layer_dims"],
                grid_size=checked["grid_size"],
                spline_degree=checked["spline_degree"],
                grid_range=ranges,
                base_activation=checked["base_activation"],
                dtype=getattr(torch, checked["dtype"]),
            )
        self.history_ = fitting.fit(model, X, targets, log=None, **params, **keys)
        self.model_ = model.eval()

    def _outputs(self, X) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        like = self.model_.layers[0].knots
        with torch.no_grad():
            return to_numpy(self.model_(torch.tensor(X).to(like)))

    def predict(self, X):
        y = self._outputs(X)
        return y[:, 0] if self._y_1d else y


class KANClassifier(ClassifierMixin, KANRegressor):
    """A KAN classifier: ``[n_features, *hidden_dims, n_classes]`` logits trained with the
    cross-entropy (``task: "classification"``); labels of any kind (integers, text).

    Fitted attributes: ``classes_``, ``model_``, ``history_``, ``n_features_in_``. A target
    with one class only gives one output whose probability is 1.
    """

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = False
        tags.regressor_tags = None  # set by KANRegressor's RegressorMixin further up the chain
        return tags

    def fit(self, X, y):
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        self.classes_, index = np.unique(y, return_inverse=True)
        onehot = np.eye(len(self.classes_))[index]
        self._fit_model(X, onehot, len(self.classes_), {"task": "classification"})
        return self

    def predict_proba(self, X):
        logits = self._outputs(X)
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def predict(self, X):
        best = self._outputs(X).argmax(axis=1)  # checks first that the estimator is fitted
        return self.classes_[best]

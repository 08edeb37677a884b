import json

import pytest

import config
import symbolic_fit
from config import DEFAULTS, KEYS, load_config, validate_config
from errors import ConfigError, UserError


def write_json(tmp_path, data, name="run.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return str(path)


def test_defaults_are_complete_and_valid():
    cfg = load_config(None)
    assert list(cfg) == list(DEFAULTS)
    for key, value in DEFAULTS.items():
        if key not in ("input_range", "grid_range_update_every"):
            assert cfg[key] == value, key
    assert cfg["input_range"] == [[-1.0, 1.0], [-1.0, 1.0]]
    assert cfg["grid_range_update_every"] == config.RANGE_EVERY  # null: resolved for Adam


def test_every_key_has_help_text_and_a_row_in_the_help_table():
    assert list(KEYS) == list(DEFAULTS)
    assert all(key.help.strip() for key in KEYS.values())
    table = config.help_table()
    assert all(f"| `{key}` |" in table for key in DEFAULTS)


def test_developer_keys_start_after_the_product_keys():
    assert config.DEVELOPER_KEYS[0] == "adaptive_patience"
    assert config.DEVELOPER_KEYS[-1] == "lbfgs_max_iter"


def test_resolved_config_is_a_fresh_copy():
    cfg = load_config(None)
    cfg["layer_dims"].append(7)
    assert DEFAULTS["layer_dims"] == [2, 4, 8, 4, 1]


def test_file_overrides_defaults_and_set_overrides_file(tmp_path):
    path = write_json(tmp_path, {"num_steps": 50, "grid_size": 4, "seed": 3})
    cfg = load_config(path, ["num_steps=7", "seed=9"])
    assert (cfg["num_steps"], cfg["grid_size"], cfg["seed"]) == (7, 4, 9)
    assert cfg["spline_degree"] == DEFAULTS["spline_degree"]


def test_set_values_parse_as_json_or_fall_back_to_text():
    cfg = load_config(
        None,
        ["target_function=x1*x2", "layer_dims=[2,5,1]", "batch_size=null", "device=cpu"],
    )
    assert cfg["target_function"] == "x1*x2"
    assert cfg["layer_dims"] == [2, 5, 1]
    assert cfg["batch_size"] is None
    assert cfg["device"] == "cpu"


def test_set_keeps_text_keys_as_text_when_they_look_like_numbers():
    cfg = load_config(None, ["project_name=2024", "target_function=2"])
    assert cfg["project_name"] == "2024"
    assert cfg["target_function"] == "2"


def test_unknown_key_in_file_suggests_the_closest_key(tmp_path):
    path = write_json(tmp_path, {"num_step": 5})
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert str(error.value) == f"{path}: unknown key 'num_step' (did you mean 'num_steps'?)"


def test_unknown_key_in_set_names_the_argument():
    with pytest.raises(ConfigError, match=r"^--set lerning_rate=1: unknown key 'lerning_rate' "):
        load_config(None, ["lerning_rate=1"])


def test_set_without_equals_is_rejected():
    with pytest.raises(ConfigError, match=r"^--set num_steps: expected key=value$"):
        load_config(None, ["num_steps"])


def test_malformed_json_names_file_line_and_column(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{\n  "num_steps": 5,\n  "seed": ,\n}\n')
    with pytest.raises(ConfigError, match=r"bad\.json line 3, column 11: invalid JSON"):
        load_config(str(path))


def test_top_level_must_be_an_object(tmp_path):
    path = write_json(tmp_path, [1, 2])
    with pytest.raises(ConfigError, match="top level must be a JSON object"):
        load_config(path)


def test_missing_config_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_config(str(tmp_path / "absent.json"))


def test_duplicate_key_in_file_is_rejected(tmp_path):
    path = tmp_path / "dup.json"
    path.write_text('{"seed": 1, "seed": 2}')
    with pytest.raises(ConfigError, match="key 'seed' appears more than once"):
        load_config(str(path))


@pytest.mark.parametrize(
    "key, value",
    [("num_steps", True), ("seed", False), ("use_regularization", 1), ("learning_rate", True)],
)
def test_bool_and_int_do_not_stand_in_for_each_other(tmp_path, key, value):
    path = write_json(tmp_path, {key: value})
    with pytest.raises(ConfigError, match=rf"^{path}: {key} must be .*, got {json.dumps(value)}$"):
        load_config(path)


def test_integral_float_is_not_an_integer(tmp_path):
    path = write_json(tmp_path, {"num_steps": 100.0})
    with pytest.raises(ConfigError, match=r"num_steps must be an integer >= 0 \(write 100, not"):
        load_config(path)


def test_int_is_accepted_for_a_float_key_and_converted():
    cfg = load_config(None, ["learning_rate=1", "l1_weight=0"])
    assert cfg["learning_rate"] == 1.0 and isinstance(cfg["learning_rate"], float)
    assert isinstance(cfg["l1_weight"], float)


def test_negative_num_steps_is_rejected():
    with pytest.raises(ConfigError) as error:
        load_config(None, ["num_steps=-5"])
    assert str(error.value) == "--set num_steps=-5: num_steps must be an integer >= 0, got -5"


@pytest.mark.parametrize(
    "setting",
    [
        "spline_degree=0",
        "spline_degree=6",
        "learning_rate=0",
        "learning_rate=NaN",
        "grid_size=0",
        "seed=-1",
        "batch_size=0",
        "validation_fraction=1",
        "validation_fraction=0",
        "adaptive_threshold=1",
        "grid_eps=1.5",
        "symbolic_r2_threshold=0",
        "l1_weight=-0.1",
        "early_stopping_patience=0",
        "checkpoint_interval=0",
        'project_name=""',
        'data_file=""',
        "layer_dims=[2]",
        "layer_dims=[2,0,1]",
        "layer_dims=2",
    ],
)
def test_out_of_range_values_are_rejected_naming_the_key(setting):
    key = setting.split("=")[0]
    with pytest.raises(ConfigError, match=rf"^--set {key}=.*: {key} must be "):
        load_config(None, [setting])


def test_bad_enum_lists_the_valid_values():
    with pytest.raises(ConfigError) as error:
        load_config(None, ["device=gpu"])
    assert str(error.value) == (
        '--set device=gpu: device must be one of "auto", "cpu", "cuda", got "gpu"'
    )


def test_data_file_with_an_explicit_target_function_is_two_data_sources(tmp_path):
    path = write_json(tmp_path, {"target_function": "x1*x2"})
    with pytest.raises(ConfigError) as error:
        load_config(path, ["data_file=points.csv"])
    assert str(error.value) == (
        f'--set data_file=points.csv and {path}: two data sources, data_file "points.csv" '
        'and target_function "x1*x2": set one of them to null'
    )
    path = write_json(tmp_path, {"target_function": "x1", "data_file": "points.csv"})
    with pytest.raises(ConfigError, match=r"two data sources.*set one of them to null"):
        load_config(path)


def test_data_file_alone_resolves_target_function_to_null(tmp_path):
    path = write_json(tmp_path, {"data_file": "points.csv"})
    assert load_config(path)["target_function"] is None
    explicit_null = load_config(None, ["data_file=points.csv", "target_function=null"])
    assert explicit_null["target_function"] is None


def test_no_data_source_is_rejected():
    with pytest.raises(ConfigError, match="no data source"):
        load_config(None, ["target_function=null"])


def test_single_input_range_pair_is_expanded_per_input():
    cfg = load_config(None, ["layer_dims=[3,2,1]", "target_function=x1+x2+x3", "input_range=[0,2]"])
    assert cfg["input_range"] == [[0.0, 2.0]] * 3


def test_input_range_may_give_one_pair_per_input():
    cfg = load_config(None, ["input_range=[[0,1],[-2,5]]"])
    assert cfg["input_range"] == [[0.0, 1.0], [-2.0, 5.0]]


@pytest.mark.parametrize(
    "value, message",
    [
        ("[[0,1],[0,1],[0,1]]", "input_range has 3 pairs, but layer_dims"),
        ("[1,0]", "input_range must be a pair"),
        ("[[0,1],[2,2]]", "input_range must be a pair"),
        ("[0,1,2]", "input_range must be a pair"),
    ],
)
def test_bad_input_range_is_rejected(value, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [f"input_range={value}"])


def test_grid_schedule_must_strictly_increase():
    assert load_config(None, ["grid_schedule=[3,5,10]"])["grid_schedule"] == [3, 5, 10]
    for value in ("[5,5]", "[]", "[0,3]", "[10,5]"):
        with pytest.raises(ConfigError, match="grid_schedule must be"):
            load_config(None, [f"grid_schedule={value}"])


def test_max_grid_size_must_not_be_below_grid_size():
    with pytest.raises(ConfigError, match=r"max_grid_size \(5\) must be >= grid_size \(10\)"):
        load_config(None, ["max_grid_size=5"])


def test_target_function_list_must_match_the_outputs():
    cfg = load_config(None, ["layer_dims=[2,3,2]", 'target_function=["x1*x2", "sin(x1)"]'])
    assert cfg["target_function"] == ["x1*x2", "sin(x1)"]
    with pytest.raises(ConfigError, match="one expression but layer_dims has 2 outputs"):
        load_config(None, ["layer_dims=[2,3,2]"])
    with pytest.raises(ConfigError, match="has 1 expressions but layer_dims has 2 outputs"):
        load_config(None, ["layer_dims=[2,3,2]", 'target_function=["x1"]'])


def test_bad_expression_fails_when_the_config_is_loaded():
    with pytest.raises(ConfigError) as error:
        load_config(None, ["target_function=x1*x3"])
    assert str(error.value) == (
        "--set target_function=x1*x3: unknown variable 'x3' in target_function (inputs are x1..x2)"
    )
    with pytest.raises(ConfigError, match="syntax error"):
        load_config(None, ["target_function=sin(x1"])


def test_symbolic_library_names_are_checked():
    known = list(symbolic_fit.LIBRARY)
    assert (
        load_config(None, [f"symbolic_library={json.dumps(known[:2])}"])["symbolic_library"]
        == (known[:2])
    )
    with pytest.raises(ConfigError, match=r"symbolic_library has unknown function 'not_a_func'"):
        load_config(None, ['symbolic_library=["not_a_func"]'])


def test_validate_config_accepts_a_resolved_config_after_a_json_round_trip():
    for overrides in ([], ["data_file=points.csv"]):
        cfg = load_config(None, overrides)
        assert validate_config(json.loads(json.dumps(cfg)), "run/config.json") == cfg


def test_validate_config_names_the_source_and_fills_missing_keys():
    with pytest.raises(ConfigError, match=r"^run/config\.json: unknown key 'grid'"):
        validate_config({"grid": 5}, "run/config.json")
    assert validate_config({"seed": 4}, "run/config.json")["num_steps"] == DEFAULTS["num_steps"]


def test_grid_range_updates_default_to_every_5_lbfgs_steps_and_100_adam_steps():
    target = ['target_function="x1"', "layer_dims=[1, 1]"]
    assert load_config(None, [*target, 'optimizer="lbfgs"'])["grid_range_update_every"] == 5
    assert load_config(None, target)["grid_range_update_every"] == 100
    given = load_config(None, [*target, 'optimizer="lbfgs"', "grid_range_update_every=40"])
    assert given["grid_range_update_every"] == 40

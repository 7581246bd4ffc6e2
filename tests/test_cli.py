"""The ``sktorch-mlp`` command line: fit and predict on a CSV table, and its error messages."""

import contextlib
import io
import re
import subprocess
import sys

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline

import sktorch_mlp._cli as cli
from sktorch_mlp import TorchMLPRegressor

# A network small enough to train on the tiny table in well under a second.
FAST = [
    *("--param", "max_epochs=2"),
    *("--param", "hidden_layer_sizes=(8,)"),
    *("--param", "ensemble_size=1"),
    *("--param", "embedding=none"),  # not a Python literal: passed as the string "none"
]


def write_table(path, n_rows=60):
    """A numeric column, a numeric column with missing values, a text column and the target."""
    rng = np.random.default_rng(0)
    rooms = rng.uniform(1, 8, n_rows).round(2)
    area = rng.uniform(20, 200, n_rows).round(1)
    area[::7] = np.nan
    city = rng.choice(["north", "south", "east"], n_rows)
    price = 30 * rooms + np.where(city == "north", 50, 0) + rng.normal(0, 5, n_rows)
    table = pd.DataFrame({"rooms": rooms, "area": area, "city": city, "price": price.round(1)})
    table.to_csv(path, index=False)
    return table


def run(argv):
    """Run the command in-process; return (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = cli.main(argv)
        except SystemExit as exc:
            status = exc.code
    return status, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """One ``fit`` run shared by the tests: its folder, table, model path and output."""
    folder = tmp_path_factory.mktemp("cli")
    table = write_table(folder / "houses.csv")
    model = folder / "model.joblib"
    status, out, err = run(["fit", str(folder / "houses.csv"), "--target", "price", *FAST])
    assert status == 2 and "--out" in err  # --out is required
    status, out, err = run(
        ["fit", str(folder / "houses.csv"), "--target", "price", *FAST, "--out", str(model)]
    )
    assert status == 0, err
    return {"folder": folder, "table": table, "model": model, "out": out, "err": err}


def test_fit_reports_train_and_test_rmse_and_saves_the_pipeline(fitted):
    out = fitted["out"]
    assert "60 rows, 3 feature columns (2 numeric, 1 categorical or text)" in out
    assert "Training on 48 rows, testing on 12." in out
    assert "Train RMSE: " in out and "Test RMSE:  " in out
    assert "Training" in fitted["err"] and "2/2" in fitted["err"]  # the default progress bar
    model = joblib.load(fitted["model"])
    assert isinstance(model, Pipeline) and isinstance(model[-1], TorchMLPRegressor)
    mlp = model[-1]
    assert mlp.hidden_layer_sizes == (8,) and mlp.embedding == "none" and mlp.n_iter_ == 2
    assert mlp.verbose == 1 and mlp.random_state == 0


def test_fit_with_cv_and_no_test_rows(fitted, tmp_path):
    model = tmp_path / "model.joblib"
    houses = str(fitted["folder"] / "houses.csv")
    status, out, err = run(
        ["fit", houses, "--target", "price", "--cv", "2", "--test-size", "0", *FAST]
        + ["--param", "verbose=0", "--out", str(model)]
    )
    assert status == 0, err
    assert "2-fold CV RMSE: " in out and "+/- " in out
    assert "Train RMSE: " in out and "Test RMSE" not in out
    assert err == ""  # verbose=0 silences the progress bar
    regressor = joblib.load(model)[-1]
    assert regressor.n_features_in_ == 3  # the table's columns, the city embedded inside
    assert regressor.is_categorical_.tolist() == [False, False, True]


def test_predict_writes_one_prediction_per_row_in_order(fitted, tmp_path):
    predictions = tmp_path / "predictions.csv"
    houses = fitted["folder"] / "houses.csv"
    status, out, err = run(
        ["predict", str(fitted["model"]), str(houses), "--out", str(predictions)]
    )
    assert status == 0, err
    assert f"Wrote 60 predictions to {predictions}" in out
    written = pd.read_csv(predictions)
    assert list(written.columns) == ["price"] and len(written) == 60
    features = fitted["table"].drop(columns="price")
    expected = joblib.load(fitted["model"]).predict(features)
    np.testing.assert_allclose(written["price"], expected, rtol=1e-12)


def test_predict_on_a_table_with_an_unseen_category_and_missing_values(fitted, tmp_path):
    table = fitted["table"].drop(columns="price").head(3).copy()
    table["city"] = ["west", None, "north"]  # unseen, missing, seen
    table.loc[0, "area"] = np.nan
    table.to_csv(tmp_path / "new.csv", index=False)
    status, out, err = run(["predict", str(fitted["model"]), str(tmp_path / "new.csv")])
    assert status == 0, err
    written = pd.read_csv(io.StringIO(out))
    assert len(written) == 3 and np.isfinite(written["price"]).all()


def test_predict_without_target_with_other_column_order_and_extra_columns(fitted, tmp_path):
    table = fitted["table"].drop(columns="price")[["city", "area", "rooms"]].head(5)
    table["comment"] = "extra"
    new_rows = tmp_path / "new.csv"
    table.to_csv(new_rows, index=False)
    status, out, err = run(["predict", str(fitted["model"]), str(new_rows)])  # to stdout
    assert status == 0, err
    written = pd.read_csv(io.StringIO(out))
    expected = joblib.load(fitted["model"]).predict(table[["rooms", "area", "city"]])
    np.testing.assert_allclose(written["price"], expected, rtol=1e-12)


def test_python_m_sktorch_mlp_runs_predict(fitted):
    houses = fitted["folder"] / "houses.csv"
    completed = subprocess.run(
        [sys.executable, "-m", "sktorch_mlp", "predict", str(fitted["model"]), str(houses)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert len(pd.read_csv(io.StringIO(completed.stdout))) == 60


def test_no_command_runs_the_demo_with_its_options(monkeypatch):
    calls = []
    monkeypatch.setattr(cli, "run_demo", lambda **kwargs: calls.append(kwargs))
    assert cli.main([]) == 0
    assert cli.main(["--test-size", "0.3", "--verbose", "2"]) == 0
    assert cli.main(["demo", "--random-state", "7"]) == 0
    assert calls == [
        {"test_size": 0.2, "random_state": 0, "verbose": 1},
        {"test_size": 0.3, "random_state": 0, "verbose": 2},
        {"test_size": 0.2, "random_state": 7, "verbose": 1},
    ]


def test_help_warns_that_predict_unpickles_the_model():
    status, out, _ = run(["predict", "--help"])
    help_text = " ".join(out.split())
    assert status == 0 and "only load such files if you trust them" in help_text
    assert "A .skops MODEL is loaded with skops.io" in help_text


def test_skops_model_file_saves_and_predicts_like_joblib(fitted, tmp_path):
    pytest.importorskip("skops")
    folder = fitted["folder"]
    model = tmp_path / "model.skops"
    argv = ["fit", str(folder / "houses.csv"), "--target", "price", *FAST, "--out", str(model)]
    assert run(argv)[0] == 0
    status, out, err = run(["predict", str(model), str(folder / "houses.csv")])
    assert status == 0, err
    _, expected, _ = run(["predict", str(fitted["model"]), str(folder / "houses.csv")])
    assert out == expected  # same seed, same pipeline: the same predictions, whatever the format


def test_skops_file_with_foreign_types_is_refused(fitted, tmp_path):
    sio = pytest.importorskip("skops.io")
    import operator

    from sklearn.preprocessing import FunctionTransformer

    pipeline = joblib.load(fitted["model"])
    # A file that would make a callable on load: exactly what skops lets us refuse.
    foreign = Pipeline([("call", FunctionTransformer(operator.attrgetter("T"))), *pipeline.steps])
    sio.dump(foreign, tmp_path / "foreign.skops")
    status, _, err = run(["predict", str(tmp_path / "foreign.skops"), str(fitted["model"])])
    assert status == 1
    assert err.startswith("sktorch-mlp: error: refusing to load")
    assert "operator.attrgetter" in err and "Traceback" not in err


def test_skops_file_that_is_not_one_is_refused(tmp_path):
    pytest.importorskip("skops")
    (tmp_path / "model.skops").write_text("not a zip archive")
    status, _, err = run(["predict", str(tmp_path / "model.skops"), str(tmp_path / "x.csv")])
    assert status == 1 and "not a file saved with skops" in err


@pytest.fixture(scope="module")
def bad_inputs(fitted):
    """Files that each break one expectation of fit or predict."""
    folder = fitted["folder"]
    table = fitted["table"]
    (folder / "empty.csv").write_text("")
    (folder / "header_only.csv").write_text("rooms,area,city,price\n")
    with_missing_target = table.copy()
    with_missing_target.loc[3, "price"] = np.nan
    with_missing_target.to_csv(folder / "missing_target.csv", index=False)
    table.drop(columns="city").to_csv(folder / "no_city.csv", index=False)
    (folder / "text.joblib").write_text("rooms,area\n1,2\n")
    joblib.dump(Ridge().fit([[0.0], [1.0]], [0.0, 1.0]), folder / "ridge.joblib")
    joblib.dump(Pipeline([("mlp", TorchMLPRegressor())]), folder / "unfitted.joblib")
    return folder


@pytest.mark.parametrize(
    ("argv", "status", "message"),
    [
        (["fit", "{d}/nope.csv", "--target", "price"], 1, "cannot read .*nope.csv: no such file"),
        (
            ["fit", "{d}/houses.csv", "--target", "prize"],
            1,
            "column 'prize' not found .* rooms, area, city, price",
        ),
        (["fit", "{d}/houses.csv", "--target", "city"], 1, "'city' must be numeric"),
        (["fit", "{d}/missing_target.csv", "--target", "price"], 1, "1 missing value"),
        (["fit", "{d}/header_only.csv", "--target", "price"], 1, "has a header but no rows"),
        (["fit", "{d}/empty.csv", "--target", "price"], 1, "empty.csv is empty"),
        (
            ["fit", "{d}/houses.csv", "--target", "price", "--param", "max_epoch=3"],
            2,
            "unknown parameter 'max_epoch'.*Did you mean 'max_epochs'",
        ),
        (
            ["fit", "{d}/houses.csv", "--target", "price", "--param", "max_epochs=0"],
            2,
            "'max_epochs' parameter of TorchMLPRegressor must be an int",
        ),
        (
            ["fit", "{d}/houses.csv", "--target", "price", "--param", "hidden_layer_sizes=(8, 0)"],
            2,
            "hidden_layer_sizes must be .* each >= 1",
        ),
        (["fit", "{d}/houses.csv", "--target", "price", "--param", "lr"], 2, "NAME=VALUE"),
        (["predict", "{d}/nope.joblib", "{d}/houses.csv"], 1, "no such file"),
        (["predict", "{d}/text.joblib", "{d}/houses.csv"], 1, "not a file saved with joblib"),
        (["predict", "{d}/ridge.joblib", "{d}/houses.csv"], 1, "holds a Ridge, not a Pipeline"),
        (["predict", "{d}/unfitted.joblib", "{d}/houses.csv"], 1, "is not fitted"),
        (["predict", "{d}/model.joblib", "{d}/no_city.csv"], 1, "lacks column.*: city"),
        (["predict", "{d}/model.joblib", "{d}/header_only.csv"], 1, "no rows"),
    ],
)
def test_errors_are_one_line_without_traceback(bad_inputs, argv, status, message):
    argv = [arg.format(d=bad_inputs) for arg in argv]
    if argv[0] == "fit":
        argv += ["--out", str(bad_inputs / "never_written.joblib")]
    exit_status, out, err = run(argv)
    assert exit_status == status
    assert err.startswith("sktorch-mlp: error: ") and err.count("\n") == 1, err
    assert re.search(message, err), err
    assert "Traceback" not in err and out == ""
    assert not (bad_inputs / "never_written.joblib").exists()

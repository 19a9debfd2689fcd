"""Helpers for registry tests: runs that log a real (tiny) scikit-learn model."""

from __future__ import annotations

import numpy as np

X = np.random.RandomState(0).rand(60, 3)
Y = (X[:, 0] + 0.2 * X[:, 1] > 0.6).astype(int)


def model(C: float):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=C).fit(X, Y)


def log_sklearn(estimator, name: str = "model"):
    """``mlflow.sklearn.log_model`` without MLflow's requirements inference (seconds per call,
    and beside the point here)."""
    import mlflow

    return mlflow.sklearn.log_model(
        estimator, name=name, input_example=X[:2], pip_requirements=["scikit-learn"]
    )


def train_run(
    experiment: str = "registry",
    C: float = 1.0,
    *,
    status: str = "FINISHED",
    metrics: dict[str, float] | None = None,
    params: dict[str, str] | None = None,
    log_model: bool = True,
    model_name: str = "model",
) -> str:
    """A run of ``experiment`` that logged a LogisticRegression(C) as an MLflow 3 LoggedModel;
    returns its id."""
    import mlflow

    mlflow.set_experiment(experiment)
    with mlflow.start_run() as run:
        if log_model:
            log_sklearn(model(C), model_name)
        mlflow.log_metrics(metrics or {"val_acc": round(0.5 + C / 100, 4), "val_loss": 1 / C})
        mlflow.log_params({"C": str(C), **(params or {})})
        run_id = run.info.run_id
        if status != "FINISHED":
            mlflow.end_run(status)
    return run_id


def predictions(loaded) -> list[int]:
    return [int(v) for v in loaded.predict(X)]

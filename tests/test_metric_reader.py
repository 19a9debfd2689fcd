"""Readers use the fast copy: metric histories from the run's local metric log, else its Parquet
artifact (downloaded once, then cached), merged with MLflow's history for the keys the log does
not have; a run without a log reads MLflow as before. Real MLflow stores, no mocks."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import numpy as np
import pyarrow as pa
import pytest

from nbtrack import record, settings, store
from nbtrack.query import curves as curvedata
from nbtrack.query import metric_points
from nbtrack.store import metric_log

T0 = 1_700_000_000_000


@pytest.fixture
def experiment(client, tmp_path) -> str:
    # Artifacts in a folder of the test's own, so a test can reach into the store's files.
    return client.create_experiment("reader", artifact_location=(tmp_path / "artifacts").as_uri())


def _run(client, experiment: str, name: str = "r") -> str:
    return client.create_run(experiment, run_name=name).info.run_id


def _points(key: str, n: int, start: int = 0) -> tuple[list, list, list, list]:
    steps = list(range(start, start + n))
    return [key] * n, steps, [T0 + s for s in steps], [1.0 / (s + 1) for s in steps]


def _table(*parts) -> pa.Table:
    keys, steps, stamps, values = ([], [], [], [])
    for k, s, t, v in parts:
        keys += k
        steps += s
        stamps += t
        values += v
    return pa.table(
        {"key": keys, "step": steps, "timestamp": stamps, "value": values},
        schema=metric_log.schema(),
    )


def _local_log(run_id: str, *files) -> Path:
    """A run's local log folder: the first file already sent to MLflow, the rest pending."""
    d = metric_log.open_run(settings.current().state_dir, run_id, store.tracking_uri())
    for i, (keys, steps, stamps, values) in enumerate(files):
        folder = d / metric_log.SENT_DIR if i == 0 and len(files) > 1 else d
        metric_log.write_points(folder, keys, steps, stamps, values, metric_log.file_name(i))
    return d


def _store_artifact(run_id: str, table: pa.Table, tmp_path: Path) -> None:
    from mlflow import MlflowClient

    folder, name = record.ARTIFACT_METRIC_LOG.rsplit("/", 1)
    path = tmp_path / name
    metric_log.to_parquet(table, path)
    MlflowClient(store.tracking_uri()).log_artifact(run_id, str(path), artifact_path=folder)


def _artifact_file(client, run_id: str) -> Path:
    uri = client.get_run(run_id).info.artifact_uri
    return Path(url2pathname(urlparse(uri).path)) / record.ARTIFACT_METRIC_LOG


def _series(data: curvedata.Curves) -> dict[str, tuple[list, list]]:
    return {s.key: (s.x.tolist(), s.y.tolist()) for s in data.series}


def test_a_live_run_is_read_from_its_local_log(client, experiment):
    run_id = _run(client, experiment)
    _local_log(run_id, _points("train_loss", 30), _points("train_loss", 20, start=30))

    data = curvedata.load([run_id])

    # MLflow has none of these points: they can only have come from the log.
    assert client.get_metric_history(run_id, "train_loss") == []
    [series] = data.series
    assert series.key == "train_loss" and series.total == 50
    assert series.x.tolist() == list(range(50))
    assert metric_points.read(run_id).source == metric_points.LOCAL


def test_a_finished_run_reads_its_artifact_once_then_the_cache(client, experiment, tmp_path):
    run_id = _run(client, experiment)
    _store_artifact(run_id, _table(_points("val_loss", 40), _points("val_acc", 40)), tmp_path)
    client.set_terminated(run_id, "FINISHED")
    downloads = metric_points.downloads

    first = metric_points.read(run_id)
    assert first.source == metric_points.ARTIFACT
    assert metric_points.downloads == downloads + 1
    assert (metric_points.cache_dir() / f"{run_id}.parquet").is_file()
    # The store's copy is gone: a second read that downloaded would find nothing.
    _artifact_file(client, run_id).unlink()

    second = metric_points.read(run_id)
    assert second.source == metric_points.CACHE
    assert metric_points.downloads == downloads + 1
    assert second.keys() == first.keys() == ["val_acc", "val_loss"]
    for key in ("val_acc", "val_loss"):
        for a, b in zip(first.history(key), second.history(key), strict=True):
            assert np.array_equal(a, b)
    assert len(_series(curvedata.load([run_id]))["val_loss"][0]) == 40
    # Nothing but the cached file is left in the cache folder (the download's temporary folder
    # is gone).
    assert [p.name for p in metric_points.cache_dir().iterdir()] == [f"{run_id}.parquet"]


def test_a_running_run_without_a_local_log_is_not_downloaded(client, experiment, tmp_path):
    run_id = _run(client, experiment)
    _store_artifact(run_id, _table(_points("loss", 5)), tmp_path)
    store.log_metric_points(run_id, [("loss", 9.0, T0, 0)])
    downloads = metric_points.downloads

    points = metric_points.read(run_id)

    assert points.source == metric_points.MLFLOW and metric_points.downloads == downloads
    assert points.history("loss")[2].tolist() == [9.0]
    assert not metric_points.cache_dir().exists()


def test_keys_logged_with_plain_mlflow_are_merged_with_the_log(client, experiment):
    run_id = _run(client, experiment)
    # lr only in MLflow; train_loss in both, MLflow holding the first 10 points the log holds
    # 25 of: a key in both comes from the log, the complete copy.
    store.log_metric_points(run_id, [("lr", 0.1 / (s + 1), T0 + s, s) for s in range(7)])
    keys, steps, stamps, values = _points("train_loss", 25)
    store.log_metric_points(run_id, list(zip(keys, values, stamps, steps, strict=True))[:10])
    _local_log(run_id, (keys, steps, stamps, values))

    got = _series(curvedata.load([run_id]))

    assert sorted(got) == ["lr", "train_loss"]
    assert got["lr"][0] == list(range(7))
    assert got["train_loss"][0] == list(range(25))
    assert got["train_loss"][1] == values
    assert len(_series(curvedata.load([run_id], metrics="loss"))["train_loss"][0]) == 25


def test_a_corrupt_pending_file_leaves_the_rest_shown(client, experiment):
    run_id = _run(client, experiment)
    d = _local_log(run_id, _points("loss", 10), _points("loss", 10, start=10))
    (d / f"{metric_log.file_name(99)}.arrow").write_bytes(b"not arrow at all")

    [series] = curvedata.load([run_id]).series

    assert series.x.tolist() == list(range(20))


def test_a_run_without_a_log_reads_mlflow_as_before(client, experiment):
    run_id = _run(client, experiment)
    store.log_metric_points(run_id, [("acc", s / 10, T0 + s, s) for s in range(12)])
    client.set_terminated(run_id, "FINISHED")

    points = metric_points.read(run_id)
    [series] = curvedata.load([run_id]).series

    assert points.source == metric_points.MLFLOW
    assert series.x.tolist() == list(range(12))
    for a, b in zip(points.history("acc"), store.metric_history(run_id, "acc"), strict=True):
        assert np.array_equal(a, b)
    assert metric_points.history(run_id, "missing")[0].tolist() == []


def test_the_log_gives_exactly_what_mlflow_gives(client, experiment):
    """Same points into MLflow and into a log: same arrays, in MLflow's order (timestamp, step,
    value), exact duplicates stored once, NaN kept, +-inf as MLflow keeps them."""
    nan, inf = float("nan"), float("inf")
    points = [  # (key, value, timestamp, step), out of order on purpose
        ("m", 3.0, T0 + 5, 2),
        ("m", 1.0, T0 + 1, 9),
        ("m", 2.0, T0 + 1, 3),
        ("m", 0.5, T0 + 1, 3),
        ("m", 2.0, T0 + 1, 3),  # an exact duplicate
        ("m", nan, T0 + 7, 4),
        ("m", nan, T0 + 7, 4),
        ("m", inf, T0 + 8, 5),
        ("m", -inf, T0 + 9, 6),
        ("n", 4.0, T0, 0),
        ("m", 0.0, T0 + 7, 4),
    ]
    in_mlflow = _run(client, experiment, "mlflow")
    store.log_metric_points(in_mlflow, points)
    in_log = _run(client, experiment, "log")
    keys, values, stamps, steps = (list(c) for c in zip(*points, strict=True))
    _local_log(in_log, (keys, steps, stamps, values))

    logged = metric_points.read(in_log)
    assert logged.source == metric_points.LOCAL
    for key in ("m", "n"):
        expected = store.metric_history(in_mlflow, key)
        got = logged.history(key)
        for a, b in zip(got, expected, strict=True):
            assert a.dtype == b.dtype
            np.testing.assert_array_equal(a, b)


def test_histories_reads_every_key_of_a_run_at_once(client, experiment, tmp_path):
    run_id = _run(client, experiment)
    _store_artifact(run_id, _table(_points("a", 3), _points("b", 4)), tmp_path)
    store.log_metric_points(run_id, [("c", 1.0, T0, 0)])
    client.set_terminated(run_id, "FINISHED")
    downloads = metric_points.downloads

    got = metric_points.histories(run_id)

    assert {k: len(v[0]) for k, v in got.items()} == {"a": 3, "b": 4, "c": 1}
    assert metric_points.downloads == downloads + 1

"""protocol=all end to end on real LFW: a seeded subset of identities, every image against every other."""

import mlflow
import numpy as np
import pandas as pd
import pytest

from facequant.config.sections import DatasetConfig
from facequant.data.lfw import identity_of, load_lfw, split_identities
from facequant.schema import (
    DRIFT_CSV,
    DRIFT_PNG,
    GENUINE_CSV,
    IMPOSTOR_HISTOGRAM_CSV,
    ROC_CSV,
    Metric,
)
from helpers import LFW_ROOT, job_runs, main, run_compare, share_aligned

IDENTITIES = 40
# What protocol=all measures of a model on a dataset; the folder copy of LFW must reproduce each exactly.
ALL_METRICS = (
    Metric.N_IMAGES,
    Metric.N_GENUINE_PAIRS,
    Metric.N_IMPOSTOR_PAIRS,
    Metric.TAR_FAR_1E3,
    Metric.FAR_RESOLUTION,
    Metric.ROC_AUC,
    Metric.EER,
    Metric.GENUINE_MEAN,
    Metric.IMPOSTOR_MEAN,
)
ALL = ["dataset.protocol=all", f"dataset.identities={IDENTITIES}"]


@pytest.fixture(scope="module")
def all_sweep(sweep, tmp_path_factory):
    """quant=fp32,dynamic under protocol=all on a seeded subset of identities: (workdir, its job runs)."""
    workdir = tmp_path_factory.mktemp("all")
    share_aligned(sweep[0], workdir, "onnx")  # the FP32 export; these identities' faces are mostly new
    proc = main(workdir, *ALL, "quant=fp32,dynamic", "benchmark.threads=[1]", multirun=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return workdir, job_runs(workdir)


def test_all_pairs_on_a_subset_of_identities(all_sweep, tmp_path):
    df = all_sweep[1]
    fp32, dynamic = (df[df["tags.mlflow.runName"] == name].iloc[0] for name in ("fp32", "int8_dynamic"))

    split = split_identities(load_lfw(DatasetConfig(root=str(LFW_ROOT))).images, 500, 0, IDENTITIES)
    reserved = {identity_of(i) for i in split.calibration}
    client = mlflow.MlflowClient()
    cosines = pd.read_csv(client.download_artifacts(dynamic.run_id, DRIFT_CSV, str(tmp_path)))
    genuine = pd.read_csv(client.download_artifacts(dynamic.run_id, GENUINE_CSV, str(tmp_path)))
    evaluated = {identity_of(i) for i in cosines.image}
    assert len(evaluated) == IDENTITIES and evaluated.isdisjoint(reserved)
    assert {identity_of(i) for i in pd.concat([genuine.left, genuine.right])} <= evaluated
    assert (genuine.left.map(identity_of) == genuine.right.map(identity_of)).all()

    n = len(cosines)
    for run in (fp32, dynamic):
        metric = lambda name, r=run: r[f"metrics.{name}"]  # noqa: E731
        assert metric(Metric.N_GENUINE_PAIRS) + metric(Metric.N_IMPOSTOR_PAIRS) == n * (n - 1) // 2
        assert metric(Metric.N_GENUINE_PAIRS) == len(genuine)
        assert metric(Metric.FAR_RESOLUTION) == 1 / metric(Metric.N_IMPOSTOR_PAIRS)
        assert 0.5 < metric(Metric.TAR_FAR_1E3) <= 1 and 0.9 < metric(Metric.ROC_AUC) <= 1
        assert np.isnan(run.get(f"metrics.{Metric.TAR_FAR_1E6}", np.nan))  # ~10k impostors cannot resolve 1e-6
        assert np.isnan(run.get(f"metrics.{Metric.ACCURACY}", np.nan))  # 10-fold accuracy is the pairs protocol's
    for name in (
        Metric.FLIPS_FAR_1E3,
        Metric.MCNEMAR_P_FAR_1E3,
        Metric.TAR_FAR_1E3_DROP_CI_LOW,
        Metric.TAR_FAR_1E3_DROP_CI_HIGH,
        Metric.EMBEDDING_COSINE_MEAN,
    ):
        assert not np.isnan(dynamic[f"metrics.{name}"]), name
    low, high = (dynamic[f"metrics.{m}"] for m in (Metric.TAR_FAR_1E3_DROP_CI_LOW, Metric.TAR_FAR_1E3_DROP_CI_HIGH))
    assert low <= dynamic[f"metrics.{Metric.TAR_FAR_1E3_DROP}"] <= high
    artifacts = {a.path for a in client.list_artifacts(dynamic.run_id)}
    assert {GENUINE_CSV, IMPOSTOR_HISTOGRAM_CSV, ROC_CSV, DRIFT_CSV, DRIFT_PNG} <= artifacts
    histogram = pd.read_csv(client.download_artifacts(dynamic.run_id, IMPOSTOR_HISTOGRAM_CSV, str(tmp_path)))
    assert histogram["count"].sum() == dynamic[f"metrics.{Metric.N_IMPOSTOR_PAIRS}"]

    report = run_compare(all_sweep[0], "far=1e-3", f"out={tmp_path / 'report'}")
    assert report.returncode == 0, report.stderr[-3000:]
    text = (tmp_path / "report" / "report.md").read_text()
    assert "every image against every other" in text and "TAR@FAR=1e-3 drop is <= 1.00 pt" in text


def test_folder_of_lfw_gives_exactly_the_lfw_metrics(all_sweep):
    """dataset=folder on lfw-deepfunneled lists the same images, so the same calibration identities and subset are
    drawn: the same faces (its embeddings come from the LFW run's cache entry) and the same metrics."""
    workdir, df = all_sweep
    folder = ["dataset=folder", f"dataset.root={LFW_ROOT / 'lfw-deepfunneled'}", f"dataset.identities={IDENTITIES}"]
    proc = main(workdir, *folder, "benchmark.threads=[1]", "hydra.run.dir=outputs/folder")
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = job_runs(workdir)
    lfw_run = df[df["tags.mlflow.runName"] == "fp32"].iloc[0]
    folder_run = runs[runs["params.dataset.name"] == "folder"].iloc[0]
    assert folder_run[f"metrics.{Metric.EVAL_CACHED}"] == 1  # the same model on the same faces
    names = [f"metrics.{m}" for m in ALL_METRICS]
    assert lfw_run[names].notna().all(), lfw_run[names]
    pd.testing.assert_series_equal(folder_run[names], lfw_run[names], check_names=False)

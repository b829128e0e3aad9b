"""Every MLflow call of the project: the store (store), credentials kept out of URIs (credentials), runs that always
end (runs), logging into the active run (log), datasets as run inputs (inputs), reading runs back as records
(records), and the model registry (registry)."""

from facequant.tracking.credentials import hide_credentials
from facequant.tracking.dead import end_dead_runs
from facequant.tracking.inputs import (
    log_calibration_set,
    log_evaluation_set,
    log_sensitivity_set,
    log_sweep_inputs,
    log_validation_set,
)
from facequant.tracking.log import (
    flatten,
    log_artifacts,
    log_metrics,
    log_onnx_model,
    log_params,
    log_text,
    set_tags,
)
from facequant.tracking.records import (
    ALL_SWEEPS,
    SelectionError,
    child_runs,
    download_artifact,
    log_report,
    record,
    select_runs,
)
from facequant.tracking.registry import RegistryError, register
from facequant.tracking.runs import Terminated, end_lost_runs, handle_sigterm, job_run, sweep_run
from facequant.tracking.store import TrackingError, probe, ui_link, use_store

__all__ = [
    "ALL_SWEEPS",
    "RegistryError",
    "SelectionError",
    "Terminated",
    "TrackingError",
    "child_runs",
    "download_artifact",
    "end_dead_runs",
    "end_lost_runs",
    "flatten",
    "handle_sigterm",
    "hide_credentials",
    "job_run",
    "log_artifacts",
    "log_calibration_set",
    "log_evaluation_set",
    "log_metrics",
    "log_onnx_model",
    "log_params",
    "log_report",
    "log_sensitivity_set",
    "log_sweep_inputs",
    "log_text",
    "log_validation_set",
    "probe",
    "record",
    "register",
    "select_runs",
    "set_tags",
    "sweep_run",
    "ui_link",
    "use_store",
]

"""A password in a tracking URI moves into MLflow's credential variables before Hydra sees the URI, and a URI that
still holds one is refused before anything is logged."""

import pytest

from facequant.tracking import TrackingError, hide_credentials, probe
from facequant.tracking.credentials import PASSWORD, TRACKING_URI, USERNAME, redact

SECRET = "s3cr!t@x-0123456789"  # a raw `@`, as a user may type it


@pytest.mark.parametrize("prefix", ["", "+", "++"])
def test_an_override_loses_its_userinfo_to_mlflows_variables(prefix):
    argv = ["main.py", "-m", f"{prefix}mlflow.tracking_uri=http://alice:{SECRET}@127.0.0.1:5000/", "quant=fp32"]
    environ: dict[str, str] = {}
    hide_credentials(argv, environ)
    assert argv == ["main.py", "-m", f"{prefix}mlflow.tracking_uri=http://127.0.0.1:5000/", "quant=fp32"]
    assert environ == {USERNAME: "alice", PASSWORD: SECRET}


def test_the_environments_uri_loses_its_userinfo_and_percent_escapes_are_decoded():
    environ = {TRACKING_URI: "https://bob:p%40ss%3Aword@mlflow.example.org", USERNAME: "older"}
    hide_credentials(["main.py"], environ)
    assert environ == {TRACKING_URI: "https://mlflow.example.org", USERNAME: "bob", PASSWORD: "p@ss:word"}


def test_uris_without_userinfo_and_database_uris_stay_as_they_are():
    argv = ["main.py", "mlflow.tracking_uri=postgresql://u:pw@db/mlflow", "dataset.root=/data/a@b"]
    environ = {TRACKING_URI: "sqlite:///mlflow.db"}
    hide_credentials(argv, environ)
    assert argv == ["main.py", "mlflow.tracking_uri=postgresql://u:pw@db/mlflow", "dataset.root=/data/a@b"]
    assert environ == {TRACKING_URI: "sqlite:///mlflow.db"}


@pytest.mark.parametrize(
    "uri", [f"http://alice:{SECRET}@127.0.0.1:9", "postgresql+psycopg://mlflow:pw-123@db.example.org:5432/mlflow"]
)
def test_a_uri_that_still_holds_a_password_is_refused_without_showing_it(uri):
    with pytest.raises(TrackingError, match="holds a password") as error:
        probe(uri)
    assert "pw-123" not in str(error.value) and SECRET not in str(error.value)
    assert "***@" in str(error.value) and PASSWORD in str(error.value)


def test_redact_hides_every_userinfo_in_a_text():
    text = f"from http://alice:{SECRET}@a:5000/x to https://b@c/ and sqlite:///d@e.db"
    assert redact(text) == "from http://***@a:5000/x to https://***@c/ and sqlite:///d@e.db"

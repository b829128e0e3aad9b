"""Tracking credentials stay in the process: userinfo in a tracking URI moves into MLflow's own variables before
Hydra sees the URI, so no config, Hydra file, run, artifact or message can hold it."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import MutableMapping, MutableSequence
from urllib.parse import unquote

USERNAME = "MLFLOW_TRACKING_USERNAME"
PASSWORD = "MLFLOW_TRACKING_PASSWORD"
TRACKING_URI = "MLFLOW_TRACKING_URI"

# `user:password@` (or `user@`) after the scheme; a password may hold a raw `@`, so up to the last one before the path
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/?#\s]+)@")

# the tracking URI as a Hydra override: key=value, +key=value or ++key=value
_URI_OVERRIDE = re.compile(r"^(?P<key>\+{0,2}mlflow\.tracking_uri=)(?P<value>.*)$", re.DOTALL)


def redact(text: str) -> str:
    """text with every `scheme://user:password@` shown as `scheme://***@`, for messages about a URI."""
    return _USERINFO.sub(r"\g<scheme>***@", text)


def has_password(uri: str) -> bool:
    """Whether uri holds a password (`user:password@`) before its host."""
    found = _USERINFO.search(uri)
    return found is not None and ":" in found["userinfo"]


def _move_userinfo(uri: str, environ: MutableMapping[str, str]) -> str:
    """An http(s) uri without its userinfo, which now sits in MLFLOW_TRACKING_USERNAME/PASSWORD (percent-decoded, as
    requests would send it). Other stores (a database URI) read no such variables: left as they are."""
    found = _USERINFO.search(uri)
    if found is None or found["scheme"].lower() not in ("http://", "https://"):
        return uri
    user, colon, password = found["userinfo"].partition(":")
    environ[USERNAME] = unquote(user)
    if colon:
        environ[PASSWORD] = unquote(password)
    return _USERINFO.sub(r"\g<scheme>", uri)


def hide_credentials(argv: MutableSequence[str] | None = None, environ: MutableMapping[str, str] | None = None) -> None:
    """Move userinfo out of a `mlflow.tracking_uri=` override and out of MLFLOW_TRACKING_URI into MLflow's credential
    variables. Called by main.py and compare.py before Hydra reads argv and the environment."""
    argv = sys.argv if argv is None else argv
    environ = os.environ if environ is None else environ
    if TRACKING_URI in environ:
        environ[TRACKING_URI] = _move_userinfo(environ[TRACKING_URI], environ)
    for i, arg in enumerate(argv):
        if (override := _URI_OVERRIDE.match(arg)) is not None:
            argv[i] = override["key"] + _move_userinfo(override["value"], environ)

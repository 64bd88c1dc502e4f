"""botocore's service models, read once per process for every boto3 session labkit makes.

Each boto3 Session owns a loader of botocore's data, and its cache lives and dies with it: a new session parses
each service's JSON model again (RDS's, with its endpoint rules, is 40-80 ms of a client's creation; EC2's more).
labkit makes a session per backend, and a notebook makes backends as it goes, so it paid that in every cell that
called AWS. The data is the same for every session of the process (it depends on the installed botocore and on
AWS_DATA_PATH, read once), so they share one loader; credentials, region and configuration stay each session's.
`preload` reads the models a lab asks first while the caller has nothing else to do (the sandbox's start).
"""

from __future__ import annotations

import threading
from typing import Any

import boto3
import botocore.loaders
import botocore.session

from labkit.aws.regions import botocore_data

FIRST_SERVICES = ("rds", "secretsmanager", "sts", "ec2", "iam", "ssm")  # a lab's calls, in the order they come


def shared_loader() -> botocore.loaders.Loader:
    """The process's one loader (botocore caches each model it reads in it): the one labkit reads botocore's region
    and partition data through (labkit.aws.regions)."""
    return botocore_data().get_component("data_loader")


_making = threading.Lock()


def new_session(**kwargs: Any) -> boto3.Session:
    """A boto3 Session (`kwargs` as boto3.Session takes them) that reads service models through the shared loader."""
    loader = shared_loader()
    core = botocore.session.get_session()
    core.register_component("data_loader", loader)
    with _making:  # boto3 appends its own data folder to the loader's search path at every session: kept once
        session = boto3.Session(botocore_session=core, **kwargs)
        loader.search_paths[:] = list(dict.fromkeys(loader.search_paths))
    return session


def preload(services: tuple[str, ...] = FIRST_SERVICES) -> threading.Thread:
    """Read the endpoint data and `services`' models in a background thread (started; returned for tests)."""
    thread = threading.Thread(target=_read, args=(services,), name="labkit-preload-models", daemon=True)
    thread.start()
    return thread


def _read(services: tuple[str, ...]) -> None:
    loader = shared_loader()
    try:
        for name in ("endpoints", "partitions", "sdk-default-configuration"):
            loader.load_data(name)
        for service in services:
            version = loader.load_service_model(service, "service-2")["metadata"]["apiVersion"]
            loader.load_service_model(service, "endpoint-rule-set-1", version)  # as a client asks: by its version
    except Exception:  # only a head start: a client that needs a model reads it itself and says why not
        pass

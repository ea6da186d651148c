"""docker-compose.yml: the api and the worker share the storage profile `minio`."""

from __future__ import annotations

import json

import pytest
import yaml

from storage.profiles import load_profiles
from tests.flows.test_compose import _compose_config


@pytest.mark.parametrize("service", ["api", "worker"])
def test_api_and_worker_name_the_minio_service_as_profile_minio(service: str) -> None:
    done = _compose_config(
        SECRET_KEY="s" * 48, MINIO_ROOT_USER="operator", MINIO_ROOT_PASSWORD="minio-password"
    )
    assert done.returncode == 0, done.stderr.decode()
    environment = yaml.safe_load(done.stdout)["services"][service]["environment"]

    profiles = load_profiles(json.loads(environment["FILEORG_PROFILES"]), None)

    minio = profiles["minio"]
    assert (minio.endpoint_url, minio.region) == ("http://minio:9000", "us-east-1")
    assert minio.key is not None and minio.key.get_secret_value() == "operator"
    assert minio.secret is not None and minio.secret.get_secret_value() == "minio-password"
    # `s3://` stays AWS: nothing in the environment sends the default profile to minio.
    assert not any(name.startswith("AWS_") for name in environment)

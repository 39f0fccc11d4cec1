"""The environment that keeps a run away from the user's AWS account and imgup config."""

from __future__ import annotations

import os
from pathlib import Path

# Fake credentials and no profile: the local stack needs no AWS account, and must not use one.
CLEAN_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "NO_COLOR": "1",
}
DROPPED = (
    "AWS_PROFILE",
    "AWS_ENDPOINT_URL",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "IMGUP_STACK_NAME",
    "IMGUP_REGION",
    "IMGUP_PROFILE",
    "IMGUP_CONCURRENCY",
    "IMGUP_RETRIES",
    "IMGUP_TIMEOUT",
    "IMGUP_TARGET",
    "IMGUP_DEBUG",
    "IMGUP_LOCAL_HANDLERS",
)


def isolated_env(config_dir: Path) -> dict[str, str]:
    """This process's environment, less the user's AWS and imgup settings, plus fake
    credentials and ``IMGUP_CONFIG_DIR=config_dir``."""
    env = {k: v for k, v in os.environ.items() if k not in DROPPED}
    env.update(CLEAN_ENV, IMGUP_CONFIG_DIR=str(config_dir))
    return env

"""Put a tuned policy into the model's entry of the user's models.yaml.

The entry is rewritten through the training registry's writer, which keeps the rest of the file
as written and validates the result as a catalog (the schema checks the policy) before it
replaces the file. A model that only the shipped registry knows gets a copy of its entry in
the user's file, which then overrides it as a whole.
"""

from __future__ import annotations

from pathlib import Path

from reasoncli.errors import UsageError
from reasoncli.models.catalog import load_catalog
from reasoncli.tune.policy import TunedPolicy

__all__ = ["write_policy"]


def write_policy(model: str, policy: TunedPolicy) -> Path:
    from reasoncli.train.registry import write_entry

    spec = load_catalog().find(model)
    if spec is None:
        raise UsageError(
            f"model {model!r} has no models.yaml entry to hold the policy; register it "
            "(`reason models list` shows the names) or pass --dry-run"
        )
    return write_entry(spec.model_copy(update={"policy": policy}))

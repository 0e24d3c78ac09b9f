"""Export a `--cold-start` run's fine-tuned weights (RUN_DIR/cold-start/, the cold start alone,
before GRPO) as an F16 GGUF with the think template, check it against transformers (greedy
tokens) and register it, so the cold start can be measured beside the GRPO-trained model.

    python benchmarks/export_cold_start.py runs/smollm2-think-cold smollm2-think-coldsft
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from reasoncli.models.catalog import load_catalog
from reasoncli.models.gguf_file import read_gguf_info
from reasoncli.models.resolve import resolve_model
from reasoncli.train.export import export_gguf
from reasoncli.train.policy import load_checkpoint
from reasoncli.train.prompts import is_chat
from reasoncli.train.registry import trained_spec, write_entry
from reasoncli.train.think_format import FORMATS
from reasoncli.train.verify import greedy_check


def main(argv: list[str]) -> int:
    run_dir, name = Path(argv[0]).absolute(), argv[1]
    settings = json.loads((run_dir / "run.json").read_text())
    fmt = FORMATS["think"]
    source = resolve_model(settings["model"], load_catalog())
    spec = fmt.training_spec(source.spec)
    policy = load_checkpoint(run_dir / "cold-start", spec.chat_template)
    out = run_dir / f"{name}-F16.gguf"
    export_gguf(
        policy.model.state_dict(),
        policy.model.config,
        source.path,
        out,
        file_type="f16",
        name=name,
        chat_template=fmt.chat_template,
    )
    chat = is_chat(spec, read_gguf_info(source.path).chat_template)
    check = greedy_check(
        policy, out, spec, "What is 18 - 12?", chat=chat, eos_ids={policy.tokenizer.eos_token_id}
    )
    print(json.dumps(check.to_json()))
    description = (
        f"The cold start alone of {settings['out']}: {source.spec.name} fine-tuned on "
        f"{settings['cold_start']} of its own right solutions in the think format, before GRPO "
        "(reason train grpo --cold-start)"
    )
    print(write_entry(trained_spec(name, fmt.registered_spec(spec), out, description)))
    return 0 if check.equal else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

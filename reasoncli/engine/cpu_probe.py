"""The child process of the CPU buffer probe: load a model, decode a prompt and a few steps.

Run as `python -m reasoncli.engine.cpu_probe MODEL.gguf` with `REASON_CPU_EXTRA_BUFFERS` set to
the mode under test. Exit 0 means llama.cpp ran with those buffers; a crash shows as a signal.
A prompt batch and single-token steps both run, since llama.cpp picks different matrix kernels
for them.
"""

from __future__ import annotations

import sys
from pathlib import Path


def main(model_path: str) -> int:
    from reasoncli.engine.branches import BranchEngine
    from reasoncli.engine.model import LlamaModel
    from reasoncli.engine.sampling import Sampling
    from reasoncli.engine.sizing import ContextRequest, plan_context

    with LlamaModel(Path(model_path)) as model:
        prompt = model.tokenize("Count from one to twenty: one, two, three, four, five, six,")
        plan = plan_context(
            ContextRequest(
                n_prompt=len(prompt),
                max_new_tokens=4,
                max_branches=2,
                n_ctx_train=model.n_ctx_train,
                kv_bytes_per_token=model.kv_bytes_per_token,
            )
        )
        with BranchEngine.open(model, plan) as engine:
            engine.set_prompt(prompt)
            for seed in range(2):
                engine.add_branch(Sampling(temperature=0.0, seed=seed), max_tokens=4)
            for _ in engine.run():
                pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

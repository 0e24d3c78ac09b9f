"""`reason train`: GRPO training of a small Llama GGUF with TRL, exported back to GGUF.

The pipeline, one module per step: `request` (the flags, declared once), `settings` (resumable
run settings), `data` (problems, with `arithmetic` built in, and a held-out split), `policy`
(GGUF or checkpoint to a trainable model, via `gguf_model`), `rewards` (TRL adapters over
`reasoncli.rewards`), `trainer` and `callbacks` (TRL wiring, progress, Ctrl-C), `export` (back
to Q8_0/F16 GGUF), `verify` (greedy tokens of the export against the trained model), `registry`
(the user's models.yaml), `runlog` and `plot` (the reward curve). `grpo` runs them in order;
`render` draws them.

Nothing here imports torch, transformers or TRL at import time: they are the `train` extra.
"""

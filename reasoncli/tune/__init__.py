"""`reason tune`: learn, from bench results, which strategy pays at which difficulty and budget.

`candidates` reads result files into configurations with per-question correctness and cost;
`difficulty` is the estimate `auto` can compute from its pilot; `fit` bins it, picks a strategy
per bin and budget and checks the pick out of sample; `policy` is what lands in models.yaml and
what `auto` follows; `generate` runs the bench jobs a tune needs.
"""

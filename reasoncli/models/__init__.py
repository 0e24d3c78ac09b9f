"""The model registry: which models exist, where their GGUF files are, and what a GGUF says.

Every run (`reason ask`, `think`, `bench`, `serve`) needs all of it before it loads a model
(which file, which prompt format, whether it fits in memory) and `reason models` displays it.
Nothing here imports llama_cpp, and GGUF headers are read without touching the weights, so this
stays cheap on every invocation.

One module per concern, each imported directly (this package re-exports nothing):

- `schema`: a models.yaml entry (`ModelSpec`, `Source` and its kinds), strictly validated.
- `loader`: models.yaml text -> entries, every problem as one line.
- `catalog`: the merged registry (`Catalog`, `load_catalog`): shipped, user's, pulled.
- `pulled`: pulled.yaml, which `reason models pull` and `rm` maintain.
- `install`: where an entry's file is and whether it is there (`check_installed`).
- `packaged`: models shipped in Python packages, and code-backed `resolver:` sources.
- `resolve`: a user's model argument -> spec + file (`resolve_model`).
- `gguf_file`: GGUF headers (`read_gguf_info`) and whole files for training (`read_header`).
- `filenames`: quantization tags and split parts in GGUF file names.
"""

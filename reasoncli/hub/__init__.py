"""Pull GGUF files from the Hugging Face Hub into reason's models folder, and remove them.

Built on huggingface_hub, so `HF_ENDPOINT` (a mirror, or the tests' local server), `HF_TOKEN`
(gated and private repos) and the Hub cache behave as in every other HF tool: a file already in
the Hub cache at the same commit is copied from there instead of downloaded again.

The transfer is huggingface_hub's `http_get` into a `.part` file of our own, because
`hf_hub_download` discards a partial download when the process dies, and because nothing may
be registered before it is checked. The order is: bytes into `.NAME.<etag>.part` (resumed with
an HTTP Range request, both after a dropped connection and in a later run) -> size -> sha256
against the Hub's LFS hash -> GGUF header -> atomic rename -> registry entry. A failed check
deletes the part file and registers nothing.

- `progress`: what a pull reports (`PullReporter`); the CLI renders it.
- `api`: the Hub's endpoints (listing, file metadata) and its errors as one line.
- `targets`: what a pull target names: a registry entry, `owner/repo[:QUANT]`, a file.
- `transfer`: the `.part` file: download, resume, size/sha256/header checks.
- `pull`: the whole pull, and the registry entry it writes (`pull`).
- `remove`: deleting what `pull` wrote (`remove`).
"""

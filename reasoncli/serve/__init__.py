"""`reason serve`: the strategies behind an OpenAI-compatible HTTP endpoint.

`request` turns an OpenAI request body into a strategy run within the server's `Limits`,
`app` holds the FastAPI routes, `responses` shapes results as OpenAI JSON or SSE chunks and
`schema` the /openapi.json document. The model lives in a separate engine process: `worker` is
that process (the shared context, a thread per run), `engine_proc` starts it, sends it runs and
restarts it when it dies. The CLI command lives in `reasoncli/cli/serve.py`.
"""

"""`reason serve`: the strategies behind an OpenAI-compatible HTTP endpoint.

`request` turns an OpenAI request body into a strategy run, `jobs` runs it on a worker thread
against the shared engine, `responses` shapes the result as OpenAI JSON or SSE chunks, and `app`
holds the FastAPI routes. The CLI command lives in `reasoncli/cli/serve.py`.
"""

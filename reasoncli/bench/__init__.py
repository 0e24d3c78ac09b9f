"""`reason bench` and `reason rollouts`: accuracy against compute on a user's own data.

The library half (datasets, the run loop, metrics, the report) is importable without the CLI;
`reasoncli.cli.bench` only parses flags and renders.
"""

"""The Jupyter server extension: nbgitpuller's `/git-pull` for Canvas and Google Drive links.

`extension` registers the handlers (ahead of nbgitpuller's), `handlers` serves the progress page
and the SSE stream, `events` speaks nbgitpuller's SSE protocol, `config` holds
`c.PrivatePuller.*`.
"""

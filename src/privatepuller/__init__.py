"""privatepuller: nbgitpuller links that pull private Canvas files and Google Drive folders."""

__version__ = "0.1.0"


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """The Jupyter server extension (enabled by jupyter-config/.../privatepuller.json).

    Its loader and start hook live in `privatepuller.server.extension`, imported only by a
    Jupyter server, so `import privatepuller` stays light.
    """
    return [{"module": "privatepuller.server.extension"}]

"""privatepuller: nbgitpuller links that pull private Canvas files and Google Drive folders."""

__version__ = "0.1.0"

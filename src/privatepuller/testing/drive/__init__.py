"""A fake Google Drive (Drive v3 API, downloads, exports, service-account tokens) for tests,
benchmarks and the demo.

`FakeDrive` is the server; `populate_demo` fills it with the demo course folder (`notebook`
makes its notebooks).
"""

from .demo import notebook
from .fake import FakeDrive, populate_demo

__all__ = ["FakeDrive", "notebook", "populate_demo"]

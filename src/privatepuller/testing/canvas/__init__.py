"""A fake Canvas (REST API, file store, OAuth2, throttling) for tests, benchmarks and the demo.

`FakeCanvas` is the server; `fake.populate_demo` fills it with the demo course.
"""

from .fake import FakeCanvas, populate_demo

__all__ = ["FakeCanvas", "populate_demo"]

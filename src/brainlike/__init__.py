"""brainlike: how brain-like is a deep network?

Rooms (import them explicitly; nothing is registered by import side effects):
``stimuli``, ``models``, ``features``, ``datasets``, ``linear``, ``encoding``,
``metrics``, ``scores``, ``pipeline``, ``report``, ``mapping``, ``cli``.
"""

__version__ = "0.1.0"

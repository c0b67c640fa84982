"""The config model, and loading it from YAML with file:line problems.

Public surface: the frozen model (``strangler.config.model``), ``load_config(path)``
which returns a ``Config`` or raises ``ConfigError`` with every problem, and
``legacy_only(url, listen)`` for the zero-config form.
"""

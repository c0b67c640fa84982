"""strangler: a strangler-fig migration proxy.

Put it in front of a legacy application; declarative routes move endpoints to new
services one at a time, and everything no route claims still goes to legacy.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]

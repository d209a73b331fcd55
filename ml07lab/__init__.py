"""ml07lab: a hands-on lab for OWASP ML07:2023, the transfer learning attack.

Importing the package does nothing but define names: no data, no GPU, no RNG.
Start with `from ml07lab.config import get_config`.
"""
__version__ = "0.1.0"

"""sparsa: co-design sparse DNNs and sparse systolic accelerators."""
__version__ = "0.1.0"

"""What people call: the Python API, the command line, the Estimator, ``show`` and ``time``."""

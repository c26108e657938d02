"""Deep learning for biology on minidl: DNA, protein and microscopy data.

The shipped datasets live in :mod:`minidl.bio.datasets`. Alphabets, encoders, models and
the ``minidl-bio`` command line are added by the bio issues.
"""

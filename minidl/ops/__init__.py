"""Differentiable operations, grouped by family.

Each module holds small :class:`~minidl.autograd.Function` classes (forward and backward
on arrays) and the lowercase public functions that wrap them.
"""

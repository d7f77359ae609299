"""Builds the cffi C book (native._book) during `pip install`; everything else lives in pyproject.toml."""

from setuptools import setup

setup(cffi_modules=["native/build_book.py:ffibuilder"])

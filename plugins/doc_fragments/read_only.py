# -*- coding: utf-8 -*-
"""Attributes of the toolkit's read-only modules: they inspect and never change a host."""
from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
attributes:
  check_mode:
    support: full
    description: Read-only; runs the same way in check mode.
  diff_mode:
    support: none
    description: Nothing to diff.
"""

"""Tests of the C kernels (blazews._native) and their pure-Python twin."""

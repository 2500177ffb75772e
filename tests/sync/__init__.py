"""Tests of the blocking front end, blazews.sync."""

"""Tests of the asyncio front end, blazews.asyncio."""

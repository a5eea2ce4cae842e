"""Fake identity providers: real aiohttp servers on 127.0.0.1, shared by the
tests, ``syncd demo`` and the benchmark."""

# blazews: `make run` starts the demo echo server, `make test` runs every test.
# Both set up .venv on first use (python3 >= 3.10, a C compiler for the fast path):
# `make run` with the package alone, `make install` (and `make test`, and every other
# target) with the test and benchmark tool chain as well.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
RUN_STAMP := $(VENV)/.installed-run
NATIVE := $(wildcard src/blazews/_native/*.c src/blazews/_native/*.h src/blazews/_native/*.pyx) \
	src/blazews/sansio/_protocol_py.py src/blazews/sansio/_protocol_c.pxd \
	src/blazews/sansio/_events_py.py src/blazews/sansio/_events_c.pxd \
	src/blazews/sansio/_sending_py.py src/blazews/sansio/_sending_c.pxd \
	src/blazews/sync/_frame_reader_py.py src/blazews/sync/_frame_reader_c.pxd \
	src/blazews/_buffers_py.py src/blazews/_buffers_c.pxd \
	src/blazews/asyncio/_readpath_py.py src/blazews/asyncio/_readpath_c.pxd \
	src/blazews/asyncio/_queued_py.py src/blazews/asyncio/_queued_c.pxd

.PHONY: install run test test-compiled test-pure test-levels test-noasm test-uvicorn test-release docs autobahn \
	autobahn-lane1 autobahn-lane2 unit-compiled unit-pure bench lint clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# Two installs, each with its stamp. What running needs: the package alone, editable
# (pip builds the extensions in an isolated environment, with the build tools that
# pyproject's build-system requires). From a fresh clone `make run` serves in about
# 45 s, against 60 s when it installed the tool chain as well (measured on 2 cores).
$(RUN_STAMP): $(PY) pyproject.toml setup.py $(NATIVE)
	$(PY) -m pip install -q -e .
	touch $(RUN_STAMP)

# What the tests, benchmarks, lint and fuzzing need: the package with its test and
# bench extras (pytest, kosoku, mypy, ruff, atheris, picows, aiohttp, matplotlib...).
# It holds the package too, so it stamps the run install as well: `make run` after
# `make test` installs nothing.
$(STAMP): $(PY) pyproject.toml setup.py $(NATIVE)
	$(PY) -m pip install -q -e '.[test,bench,docs]'
	touch $(RUN_STAMP) $(STAMP)

install: $(STAMP)

# The demo (python -m blazews serve): a page with an echo box, a chat room and live
# statistics at http://127.0.0.1:8765/, and a WebSocket echo at any other path.
run: $(RUN_STAMP)
	@echo "Starting the blazews demo: open http://127.0.0.1:8765/ in a browser"
	@echo "WebSocket echo on ws://127.0.0.1:8765/: $(PY) -m blazews connect ws://127.0.0.1:8765/"
	$(PY) -m blazews serve --host 127.0.0.1 --port 8765

# Every test, compiled and pure Python, Autobahn included; then the static checks.
# The Autobahn runs go in two lanes side by side (each run keeps about one core busy,
# with kosoku's fuzzer). `make test` gives every case (517) to the compiled asyncio
# server and client, and the quick set (301 cases: section 9 and most of the
# compression matrix left out) to every other front end and to the pure build;
# `make autobahn` runs all 517 cases everywhere (see tests/compliance/test_autobahn.py).
# The two unit runs report the line coverage of src/blazews (pytest-cov, set up in
# pyproject.toml), each build in its own data file under build/coverage/: the pure run
# must cover 90%; the compiled run only sees the modules that run as Python. They run
# side by side too (each keeps about one core busy: ~5 min together, not ~10 in turn).
COV := --cov --cov-report=term
test: install
	$(PY) -c 'import blazews; print("blazews", blazews.__version__, blazews.IMPLEMENTATION, blazews.simd_level())'
	$(MAKE) --no-print-directory -j2 --output-sync=target autobahn-lane1 autobahn-lane2
	$(MAKE) --no-print-directory -j2 --output-sync=target unit-compiled unit-pure
	$(MAKE) test-levels
	$(MAKE) test-noasm
	$(MAKE) test-uvicorn
	$(MAKE) test-release
	$(MAKE) lint

# The tests once more at every other SIMD level this CPU runs (the default level ran
# above; the kernel tests themselves cover every level), and against a NOASM build:
# the tests of the code that calls the kernels (masking, UTF-8, frames: the core, the
# blocking front end, the asyncio read and send paths), 2,150 of the ~2,550, in 45 s
# a level instead of 2 min. `make test-levels LEVEL_TESTS=tests` reruns every test
# (the harness smoke tests in tests/tools are always left out: they ran once above).
LEVEL_TESTS ?= tests/native tests/sansio tests/sync tests/asyncio/test_receive.py \
	tests/asyncio/test_receive_direct.py tests/asyncio/test_readpath.py \
	tests/asyncio/test_send.py tests/asyncio/test_mask_later.py
SMOKE := --ignore=tests/tools --ignore=tests/compliance
test-levels: install
	for level in $$($(PY) -c 'from blazews._native import _kernels as k; print(" ".join(l for l in k.available_levels() if l != k.simd_level()))'); do \
		echo "== BLAZEWS_SIMD=$$level"; \
		BLAZEWS_SIMD=$$level $(PY) -m pytest -q -x $(SMOKE) $(LEVEL_TESTS) || exit 1; \
	done

# The unit tests against a BLAZEWS_NOASM=1 build (scalar C kernels only, no SIMD
# compiled at all), made in a copy of the sources so that the dev build is untouched.
NOASM_DIR := build/noasm
test-noasm: install
	rm -rf $(NOASM_DIR) && mkdir -p $(NOASM_DIR)
	cp -R src setup.py pyproject.toml README.md $(NOASM_DIR)/
	find $(NOASM_DIR)/src -name '*.so' -delete
	$(PY) -m pip install -q "setuptools>=77" wheel "cython>=3.0"  # what the build needs, in the venv
	cd $(NOASM_DIR) && BLAZEWS_NOASM=1 $(CURDIR)/$(PY) setup.py -q build_ext --inplace
	PYTHONPATH=$(CURDIR)/$(NOASM_DIR)/src BLAZEWS_EXPECT_NOASM=1 $(PY) -m pytest -q -x \
		$(SMOKE) $(LEVEL_TESTS)

# uvicorn's own WebSocket test suite (tests/protocols/test_websocket.py of the installed
# uvicorn's sdist, fetched once into build/uvicorn-sdist) run against
# blazews.uvicorn:WebSocketProtocol, on both of uvicorn's HTTP protocols: ~160 cases,
# ~30 s. `$(PY) -m tests.asgi.uvicorn_suite --all` runs uvicorn's classes beside it.
# Then the Autobahn TestSuite against a Starlette echo under uvicorn with that class, a
# representative subset (125 cases, ~10 s; `make autobahn` runs every case).
test-uvicorn: install
	$(PY) -m tests.asgi.uvicorn_suite
	$(PY) -m pytest -q tests/compliance/test_autobahn_uvicorn.py

# The release checks (tests/release, once, compiled build): the sdist and the wheel
# built from a copy of the tree (the wheel compiles the extensions again), twine
# check, the sdist installed in a fresh venv without a C compiler (pure Python), the
# cibuildwheel table; the demo page in Debian's headless chromium; the docs site in
# strict mode. About 75 s on 2 quiet cores, most of it the wheel's compile (measured
# under the load of 6 agents: 125 s).
test-release: install
	$(PY) -m pip install -q "setuptools>=77" wheel "cython>=3.0"  # the builds run without isolation
	BLAZEWS_RELEASE_TESTS=1 $(PY) -m pytest -q -p no:cacheprovider tests/release

# The Autobahn runs in two lanes of about the same length: the compiled servers with
# the pure-Python clients, and the compiled clients with the pure-Python servers.
autobahn-lane1: install
	$(PY) -m pytest -q tests/compliance -k test_server
	BLAZEWS_NO_EXTENSIONS=1 $(PY) -m pytest -q tests/compliance -k test_client

autobahn-lane2: install
	$(PY) -m pytest -q tests/compliance -k test_client
	BLAZEWS_NO_EXTENSIONS=1 $(PY) -m pytest -q tests/compliance -k test_server

# The unit tests of `make test`, with coverage: one build each (see there).
unit-compiled: install
	COVERAGE_FILE=build/coverage/compiled $(PY) -m pytest -q --ignore=tests/compliance $(COV)

unit-pure: install
	BLAZEWS_NO_EXTENSIONS=1 COVERAGE_FILE=build/coverage/pure $(PY) -m pytest -q \
		--ignore=tests/compliance $(COV) --cov-fail-under=90

test-compiled: install
	$(PY) -m pytest -q

test-pure: install
	BLAZEWS_NO_EXTENSIONS=1 $(PY) -m pytest -q

# The Autobahn TestSuite alone, every case in every run: servers and clients, every
# front end, compiled and pure (about 13 min on 2 cores).
autobahn: install
	BLAZEWS_AUTOBAHN_FULL=1 $(MAKE) --no-print-directory autobahn-lane1 autobahn-lane2
	BLAZEWS_AUTOBAHN_FULL=1 $(PY) -m pytest -q tests/compliance/test_autobahn_uvicorn.py

# Every benchmark, side by side with websockets, aiohttp and picows in one run:
# the micro-benchmarks, then the end-to-end ones (both loops). Reports and plots
# go to benchmarks/results/. Run it on a quiet machine.
bench: install
	$(PY) -m benchmarks.micro
	$(PY) -m blazews bench
	$(PY) -m benchmarks.fanout

# Fan-out (broadcast vs websockets.broadcast, a send loop and the socket.send floor, to
# 1,000 and 10,000 connections, compression off and on), a RedisHub across two
# processes (needs redis-server), workers 1 vs 2: benchmarks/results/fanout.md + .json.
.PHONY: bench-fanout
bench-fanout: install
	$(PY) -m benchmarks.fanout

# The docs site (mkdocs-material, mkdocstrings): build/site/index.html. Strict: a
# broken link, a missing include or an unresolved reference fails the build.
docs: install
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict

lint: install
	$(PY) -m ruff check src tests examples
	$(PY) -m mypy

# The stamps go too: the compiled modules they stand for are gone.
clean:
	rm -rf build dist src/*.egg-info .pytest_cache .mypy_cache
	find src -name '*.so' -delete
	rm -f $(STAMP) $(RUN_STAMP)

# Endurance: each server front end (asyncio, Listener, blocking), compression on and
# off, in its own process: 1,000,000 messages through one connection, 10,000
# connect/close cycles, 1,000 slow readers, 1,000 clients vanishing mid-frame; RSS,
# descriptors and traced memory must stay flat. `make test` runs a reduced version
# (tests/tools/test_soak_smoke.py). SOAK_ARGS="--scale 0.1" shortens it. Writes
# benchmarks/results/soak.md + .json.
SOAK_ARGS ?=
.PHONY: soak
soak: install
	$(PY) -m benchmarks.soak $(SOAK_ARGS)

# Micro-benchmarks: masking and UTF-8 per SIMD level beside websockets and aiohttp, the
# seed's read_message table, the buffer pool. Writes benchmarks/results/micro.md + .json.
.PHONY: bench-micro
bench-micro: install
	$(PY) -c 'import aiohttp, websockets' 2>/dev/null || $(PY) -m pip install -q aiohttp websockets
	$(PY) -m benchmarks.micro

# Instructions per echoed message (1 in flight, server side) under callgrind, for every
# library: what the wall clock of a noisy machine cannot resolve. Needs valgrind.
# Writes benchmarks/results/instructions.md + .json. Then asyncio's smallest wake-up (a
# task awaiting a Future that a loop callback completes): the floor of what a
# coroutine API pays per message it waits for, and a callback API does not.
.PHONY: bench-instructions
bench-instructions: install
	$(PY) -m benchmarks.instructions
	$(PY) -m benchmarks.wake

# Fuzzing with atheris (libFuzzer): each target for FUZZ_TIME seconds, from the seeds in
# fuzzing/corpus/<target> (known crash-* inputs left out, so they do not stop the run);
# inputs it finds go to build/fuzz/<target>, crashes to fuzzing/corpus/<target>/crash-*
# (keep them: tests/tools/test_fuzz_smoke.py replays them).
FUZZ_TIME ?= 120
FUZZ_TARGETS := frames utf8 http frame_reader inflate
.PHONY: fuzz
fuzz: install
	$(PY) -c 'import atheris' 2>/dev/null || $(PY) -m pip install -q atheris
	@status=0; for t in $(FUZZ_TARGETS); do \
		mkdir -p build/fuzz/$$t; \
		cp fuzzing/corpus/$$t/seed-* build/fuzz/$$t/; \
		cp fuzzing/corpus/$$t/regression-* build/fuzz/$$t/ 2>/dev/null || true; \
		echo "== fuzz_$$t ($(FUZZ_TIME) s)"; \
		$(PY) fuzzing/fuzz_$$t.py build/fuzz/$$t \
			-max_total_time=$(FUZZ_TIME) -artifact_prefix=fuzzing/corpus/$$t/crash- \
			|| status=1; \
	done; exit $$status

# The README's two commands: `make demo` and `make test`. Each installs what it needs.
PY ?= python3
PYTEST = $(PY) -m pytest

.PHONY: install demo test test-slow bench lint

# Installs the package with its test tools and warms the Numba cache, so the
# first real run loads compiled kernels instead of compiling them: a small day
# under the whole policy compiles every kernel (simulator, dialer, model, pricing).
install:
	$(PY) -m pip install -q -e '.[dev]'
	$(PY) -m smartdial sim run configs/scenarios/small.yaml --policy smartdial --quiet --report none --json > /dev/null

demo: install
	$(PY) -m smartdial sim run

test: install
	$(PY) -m ruff check .
	$(PYTEST) -m "not slow" -q

# Long statistical and large-scale tests; CI runs them after `make test`.
test-slow: install
	$(PYTEST) -m slow -q; rc=$$?; [ $$rc -eq 0 ] || [ $$rc -eq 5 ]

bench: install
	$(PYTEST) benchmarks --benchmark-only --benchmark-columns=min,mean,max,rounds -q

lint:
	$(PY) -m ruff check .

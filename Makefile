# Two commands for a fresh machine:
#   make app   set up .venv and start the dashboard on the bundled digits data (http://localhost:8501)
#   make test  set up .venv (and Chromium for the browser test) and run the tests
#   make test-fast  the unit tests marked `fast` (under a minute), while working on the code
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt constraints.txt pyproject.toml | cksum | cut -d' ' -f1)
PORT ?= 8501

.PHONY: app test test-fast lint setup browser clean

setup: $(STAMP)

$(STAMP): requirements.txt constraints.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# requirements.txt: what the project imports; constraints.txt: every package under it, pinned
	$(PY) -m pip install --disable-pip-version-check -q -r requirements.txt -c constraints.txt
	# the project itself, editable: `tmu` on the venv's PATH, `import tmu_core` from anywhere
	$(PY) -m pip install --disable-pip-version-check -q --no-deps --no-build-isolation -e .
	rm -f $(VENV)/.installed-* && touch $@

# Debian's Chromium drives the real-browser test; installed when missing and we may (root), else the test skips.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	      || echo "warning: could not install chromium; the browser test will be skipped"; \
	  else echo "note: chromium is not installed (apt-get install chromium); the browser test will be skipped"; fi; }

app: setup
	$(VENV)/bin/streamlit run app.py --server.port $(PORT)

test: setup browser lint
	$(PY) -m pytest -q tests

# ruff (config in pyproject.toml): lint and formatting, checked before the tests
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test-fast: setup
	$(PY) -m pytest -q -m fast tests

clean:
	rm -rf $(VENV) .pytest_cache test-artifacts

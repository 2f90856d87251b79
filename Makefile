# webmeeting: `make run` starts the local platform, `make test` runs the whole suite.
# Both install what they need first (apt, pip); nothing is installed by hand.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TASKS_VENV := .venv-tasks
PAGE := functions/meeting_page
APT_PACKAGES := default-jre-headless chromium firefox-esr pulseaudio coturn iproute2 ffmpeg
FIRESTORE_JAR := /usr/lib/google-cloud-sdk/platform/cloud-firestore-emulator/cloud-firestore-emulator.jar

.PHONY: run test unit service lint system venv native clean openapi retention-doc signalling package terraform-data bench bench-janus demo screenshots

CHECKOV_VENV := .venv-checkov

venv: $(VENV)/.stamp $(TASKS_VENV)/.stamp $(CHECKOV_VENV)/.stamp $(PAGE)/node_modules/.stamp native

# The MCU's native per-packet path (mcu_vm/_fastfwd.c), built with the machine's gcc against this
# Python's headers; rebuilt when its source changes.
native: $(VENV)/.stamp
	$(PY) -m mcu_vm.native

# The meeting page's browser dependencies (pdf.js), from the npm registry, served by the portal.
$(PAGE)/node_modules/.stamp: $(PAGE)/package.json $(PAGE)/package-lock.json
	cd $(PAGE) && npm ci --no-audit --no-fund --omit=optional
	touch $@

$(VENV)/.stamp: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	touch $@

$(TASKS_VENV)/.stamp: infra/requirements-tasks-emulator.txt
	$(PYTHON) -m venv $(TASKS_VENV)
	$(TASKS_VENV)/bin/pip install -q --disable-pip-version-check -r infra/requirements-tasks-emulator.txt
	touch $@

# checkov (terraform checks) in a venv of its own: its pins clash with the platform's.
$(CHECKOV_VENV)/.stamp: infra/requirements-checkov.txt
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install -q --disable-pip-version-check -r infra/requirements-checkov.txt
	touch $@

# System packages: installed only when missing. The Firestore emulator is Google's jar from
# the Debian package google-cloud-cli-firestore-emulator (Google Cloud CLI apt repository).
system:
	@command -v java >/dev/null && command -v chromium >/dev/null && command -v firefox-esr >/dev/null && command -v pulseaudio >/dev/null && command -v turnserver >/dev/null && command -v ss >/dev/null && command -v ffprobe >/dev/null || \
		(apt-get update -q && apt-get install -y -q --no-install-recommends $(APT_PACKAGES))
	@test -f $(FIRESTORE_JAR) || apt-get install -y -q google-cloud-cli-firestore-emulator || \
		(echo "Firestore emulator missing: install the Debian package google-cloud-cli-firestore-emulator" && exit 1)

run: system venv
	$(PY) -m infra.run

# The tiers: unit (pure), service (in-process against the Firestore emulator only), then the
# launched platform (integration, security, e2e, platform, deploy) in one pytest session.
test: system venv lint service
	$(PY) -m pytest --ignore=tests/service

service: system venv
	$(PY) -m pytest tests/service

unit: venv
	$(PY) -m pytest tests/unit

lint: venv
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy
	@for f in functions/*/main.py; do $(PY) -m mypy $$f >/dev/null || $(PY) -m mypy $$f || exit 1; done

openapi: venv
	$(PY) -m webmeeting.cli.openapi > docs/openapi.json

package: venv
	$(PY) -m infra.package

terraform-data: venv
	$(PY) -m infra.terraform_data

signalling: venv
	$(PY) -m infra.signalling_doc

retention-doc: venv
	$(PY) -m infra.retention_doc > docs/retention.md

bench: system venv bench-janus
	$(PY) bench/sync_cost.py
	$(PY) bench/mcu_forwarding.py
	$(PY) bench/convert.py
	$(PY) bench/retention_sweep.py
	$(PY) bench/portal_load.py

# The MCU against Janus (Debian's janus, installed when missing), in a network namespace of its own.
bench-janus: system venv
	@command -v janus >/dev/null || (apt-get update -q && apt-get install -y -q --no-install-recommends janus)
	$(PY) bench/sfu_vs_janus.py

# Screenshots of the meeting room in docs/screenshots/ (a local platform, headless Chromium).
screenshots: system venv
	$(PY) -m infra.screenshots

clean:
	rm -rf $(VENV) $(TASKS_VENV) .local .pytest_cache .mypy_cache .ruff_cache mcu_vm/_fastfwd*.so

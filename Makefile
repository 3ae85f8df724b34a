# Steward: `make run` and `make test` work on a fresh Debian machine as root; each installs what is missing first.
SHELL := /bin/bash
.DEFAULT_GOAL := run

# What building and running need (`make run`), and what only the tests add (`make test`): the browser, pam_wrapper,
# the test fleet's sshd, debootstrap and systemd-nspawn, Prometheus (with promtool), Alertmanager and VictoriaMetrics, an SMTP server,
# apt and rpm repository tools.
RUN_APT_PACKAGES := libpam0g-dev libsqlite3-dev zlib1g-dev openssh-client ansible-core git restic
TEST_APT_PACKAGES := chromium chromium-driver python3-yaml libpam-wrapper openssh-server debootstrap systemd-container prometheus-node-exporter prometheus prometheus-alertmanager victoria-metrics python3-aiosmtpd curl apt-utils rpm createrepo-c rsyslog rsyslog-gnutls
BENCH_APT_PACKAGES := wrk nginx-light systemd-journal-remote
PYTHON ?= python3
PIP_PACKAGES := selenium==4.38.0 pytest openapi-spec-validator==0.9.0 openapi-python-client==0.29.1 schemathesis==4.32.5
DATA ?= /var/lib/steward
PREFIX ?= /usr/local
STEWARD_FLAGS ?=
# A variable given on make's command line reaches the recipes' environment too, where steward would read
# STEWARD_FLAGS as an unknown setting; it is only for this Makefile.
unexport STEWARD_FLAGS

.PHONY: run test deps test-deps build release unit-test e2e-test bench install clean pam user openapi

# Install whichever of the named Debian packages are missing (needs root only when something is missing).
define apt_ensure
	@missing=""; for p in $(1); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  if [ "$$(id -u)" != 0 ]; then echo "run as root, or install them yourself:$$missing" >&2; exit 1; fi; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	fi
endef

## deps: install the Debian packages that building and running need.
deps:
	$(call apt_ensure,$(RUN_APT_PACKAGES))

## test-deps: and the Debian and PyPI packages that only the tests use.
test-deps: deps
	$(call apt_ensure,$(TEST_APT_PACKAGES))
	@$(PYTHON) -c "import selenium, pytest, openapi_spec_validator, openapi_python_client, schemathesis" 2>/dev/null || $(PYTHON) -m pip install --quiet $(PIP_PACKAGES)

build: test-deps
	swift build

# The release binary is rebuilt only when a source is newer: SwiftPM spends half a minute deciding that nothing
# changed.
RELEASE_SOURCES := Package.swift $(shell find Sources -type f 2>/dev/null)
.build/release/steward: $(RELEASE_SOURCES)
	swift build -c release
	@touch $@

release: deps .build/release/steward

## pam: the PAM service Steward checks logins against, made from the system's common stacks when missing.
pam:
	@if [ ! -e /etc/pam.d/steward ]; then \
	  if [ "$$(id -u)" != 0 ]; then echo "run as root to create /etc/pam.d/steward" >&2; exit 1; fi; \
	  printf '# PAM service for the Steward web panel: the system password and account checks.\n@include common-auth\n@include common-account\n' > /etc/pam.d/steward; \
	  echo "created /etc/pam.d/steward"; \
	fi

## run: build a release binary and start Steward with its defaults (HTTPS on port 10000, data in $(DATA)).
run: release pam user
	.build/release/steward serve --data $(DATA) $(STEWARD_FLAGS)

# PAM tests run in a process of their own: pam_wrapper must be preloaded at start, and other tests' subprocesses
# should not inherit it.
PAM_FIXTURES := $(CURDIR)/Tests/StewardKitTests/Auth/pam
PAM_TEST_ENV := PAM_WRAPPER=1 PAM_WRAPPER_SERVICE_DIR=$(PAM_FIXTURES)/services PAM_MATRIX_PASSWD=$(PAM_FIXTURES)/passdb LD_PRELOAD=libpam_wrapper.so

unit-test: build
	swift build --build-tests
	swift test --skip-build
	$(PAM_TEST_ENV) .build/debug/stewardPackageTests.xctest --testing-library swift-testing --filter "PAMAuthenticatorTests|PAMLoginRouteTests"

e2e-test: build pam
	$(PYTHON) -m pytest -q --durations=20 Tests/e2e

## test: every test: the Swift suites, then the browser tests against the built binary.
test: unit-test e2e-test

## bench: HTTP throughput, latency and memory of the release binary (see bench/README.md).
bench: release pam
	$(call apt_ensure,$(BENCH_APT_PACKAGES))
	bench/http
	bench/api
	bench/engine
	bench/metrics
	bench/alerts
	bench/promql
	bench/backup
	bench/rollout
	bench/retention
	bench/hostviews
	bench/logs
	bench/slo

## user: the steward system user the web process runs as under privilege separation (no login, no home made).
user:
	@if ! getent passwd steward >/dev/null; then \
	  if [ "$$(id -u)" != 0 ]; then echo "run as root to create the steward system user" >&2; exit 1; fi; \
	  useradd --system --user-group --no-create-home --home-dir $(DATA) --shell /usr/sbin/nologin steward; \
	  echo "created the steward system user"; \
	fi
	@# The panel host's own journal, for the central logs, without root.
	@if getent group systemd-journal >/dev/null && ! id -nG steward | grep -qw systemd-journal; then \
	  usermod -a -G systemd-journal steward && echo "added the steward user to systemd-journal"; \
	fi

SYSTEMD_UNIT ?= /etc/systemd/system/steward.service

## install: binary in $(PREFIX)/bin, resources in $(PREFIX)/share/steward, where the binary looks for them, the
## steward user, and a hardened systemd unit (see docs/SECURITY.md for what each setting allows and why).
install: release pam user
	install -D -m 0755 .build/release/steward $(PREFIX)/bin/steward
	mkdir -p $(PREFIX)/share/steward
	cp -R Templates Public migrations $(PREFIX)/share/steward/
	@mkdir -p $(dir $(SYSTEMD_UNIT))
	@printf '%s\n' \
	  '[Unit]' \
	  'Description=Steward web administration panel' \
	  'After=network-online.target' \
	  'Wants=network-online.target' \
	  '' \
	  '[Service]' \
	  'ExecStart=$(PREFIX)/bin/steward serve --data $(DATA)' \
	  'Restart=on-failure' \
	  'LimitNOFILE=65536' \
	  'NoNewPrivileges=yes' \
	  'PrivateTmp=yes' \
	  'PrivateDevices=no' \
	  'ProtectKernelTunables=yes' \
	  'ProtectKernelModules=yes' \
	  'ProtectKernelLogs=yes' \
	  'ProtectControlGroups=yes' \
	  'ProtectClock=yes' \
	  'RestrictRealtime=yes' \
	  'LockPersonality=yes' \
	  'SystemCallArchitectures=native' \
	  'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK' \
	  'RestrictNamespaces=yes' \
	  'SystemCallFilter=~@cpu-emulation @debug @module @obsolete @raw-io @reboot @swap' \
	  'SystemCallErrorNumber=EPERM' \
	  'UMask=0077' \
	  '' \
	  '[Install]' \
	  'WantedBy=multi-user.target' > $(SYSTEMD_UNIT)
	@echo "installed $(SYSTEMD_UNIT); start it with: systemctl daemon-reload && systemctl enable --now steward"

clean:
	rm -rf .build

## openapi: write docs/openapi.json from the routes' declarations (a unit test fails until it is committed).
openapi: deps
	STEWARD_WRITE_OPENAPI=1 swift test --filter OpenAPIDocumentTests

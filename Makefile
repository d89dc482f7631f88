# Entry points. `make lab` brings up a local 3-member cluster; `make test` runs every test.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV      ?= .venv
PYTHON    ?= python3
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
# Versions the mirror holds: the lab default plus the ones tests and benches use.
ETCD_VERSION    ?= 3.5.30
MIRROR_VERSIONS ?= 3.5.30 3.5.16 3.4.23
LAB_INVENTORY   ?= inventories/lab/hosts.yml
MOLECULE_SCENARIOS ?= default volumes upgrade restore
# The artifact `ansible-galaxy collection build` makes, and where `make collection` installs it.
COLLECTION_VERSION := $(shell awk '/^version:/ {print $$2}' galaxy.yml)
COLLECTION_TARBALL := .cache/dist/controlplane-etcd-$(COLLECTION_VERSION).tar.gz
COLLECTION_INSTALL := .cache/collection-install

.PHONY: help venv engine image mirror tools setup hosts lab status lab-destroy dist collection lint sanity unit rules \
	molecule molecule-default molecule-volumes molecule-upgrade molecule-restore test bench bench-cross-az bench-backup \
	bench-upgrade bench-restore

help:
	@echo "make lab          local 3-member etcd lab plus Prometheus, over SSH (sets everything up)"
	@echo "make status       status table of the lab cluster"
	@echo "make lab-destroy  remove the lab containers (keeps .lab/ with the CA)"
	@echo "make test         lint, sanity, unit tests, rule tests and molecule scenarios, with a table of stage times"
	@echo "make collection   build the collection artifact and install it into $(COLLECTION_INSTALL)"
	@echo "make bench        provisioning benchmark (cold and re-run)"
	@echo "make bench-cross-az  leader changes on a bad 40 ms link (stalls of 1-2.5 s): default vs computed timeouts"
	@echo "make bench-backup    snapshot time of a ~1 GiB database; write p99 with and without a snapshot running"
	@echo "make bench-upgrade   3.5.16 -> 3.5.30 under a writer: upgrade.yml against a naive restart loop"
	@echo "make bench-restore   RTO of a ~1 GiB full-cluster restore: restore.yml against etcdutl restore + one start"

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements.txt
	touch $@

venv: $(VENV)/.installed

engine:
	lab/engine.sh

image: engine
	lab/image.sh

mirror:
	lab/mirror.py $(MIRROR_VERSIONS)

# promtool, unpacked from Debian's prometheus package into .cache/tools/bin.
tools:
	lab/tools.sh

setup: venv engine image mirror tools

hosts: image
	lab/up.sh

lab: venv mirror hosts
	ETCD_VERSION=$(ETCD_VERSION) ansible-playbook -i $(LAB_INVENTORY) playbooks/site.yml

status: venv
	ansible-playbook -i $(LAB_INVENTORY) playbooks/status.yml

lab-destroy:
	lab/down.sh

lint: venv
	yamllint -s .
	ansible-lint --profile production

# The artifact (dist), and the artifact installed the way a user would (collection; no
# Galaxy server needed). Only `collection` touches the installed copy the volumes scenario runs.
dist: venv
	rm -rf .cache/dist
	ansible-galaxy collection build --force --output-path .cache/dist

collection: dist
	rm -rf $(COLLECTION_INSTALL)
	ansible-galaxy collection install --offline --force -p $(COLLECTION_INSTALL) $(COLLECTION_TARBALL)

# ansible-test sanity on the artifact (the checks that need no containers).
sanity: dist
	tests/sanity/run.sh $(COLLECTION_TARBALL)

# Plugins import each other as ansible_collections.controlplane.etcd...: the checkout's
# collections/ folder links back to the repository root under that name.
unit: venv tools
	PYTHONPATH=$(CURDIR)/collections pytest -q tests/unit

# The alert rules load, and each one fires and stays quiet where its unit test says.
rules: tools
	.cache/tools/bin/promtool check rules roles/etcd_prometheus/files/etcd-alerts.yml
	.cache/tools/bin/promtool test rules tests/prometheus/etcd-alerts.test.yml

molecule: $(addprefix molecule-,$(MOLECULE_SCENARIOS))

molecule-default: venv mirror image
	molecule test -s default

# The volumes scenario runs the installed artifact, on fresh loop devices (stand-ins for
# NVMe disks) for each run.
molecule-volumes: venv mirror image collection
	lab/loopdevs.sh up
	set -a; . .cache/loopdevs.env; set +a; \
	  molecule test -s volumes || { rc=$$?; lab/loopdevs.sh down; exit $$rc; }
	lab/loopdevs.sh down

# Rolling upgrades under a writer: 3.4.23 -> 3.5.30 and 3.5.16 -> 3.5.30.
molecule-upgrade: venv mirror image
	molecule test -s upgrade

# Full-cluster restores: check mode, refusals, a killed run finished by a re-run.
molecule-restore: venv mirror image
	molecule test -s restore

# Every stage in order, then a table of the time each took.
test:
	tests/stages.sh setup lint sanity unit rules $(addprefix molecule-,$(MOLECULE_SCENARIOS))

bench: venv mirror hosts
	bench/provision.sh

bench-cross-az: venv mirror hosts
	bench/cross_az.sh

bench-backup: venv mirror hosts
	bench/backup.sh

bench-upgrade: venv mirror hosts
	bench/upgrade.sh

bench-restore: venv mirror hosts
	bench/restore.sh

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
MOLECULE_SCENARIOS ?= default volumes

.PHONY: help venv engine image mirror tools hosts lab status lab-destroy lint unit rules molecule test bench bench-cross-az bench-backup

help:
	@echo "make lab          local 3-member etcd lab plus Prometheus, over SSH (sets everything up)"
	@echo "make status       status table of the lab cluster"
	@echo "make lab-destroy  remove the lab containers (keeps .lab/ with the CA)"
	@echo "make test         lint, unit tests and molecule scenarios"
	@echo "make bench        provisioning benchmark (cold and re-run)"
	@echo "make bench-cross-az  leader changes on a bad 40 ms link (stalls of 1-2.5 s): default vs computed timeouts"
	@echo "make bench-backup    snapshot time of a ~1 GiB database; write p99 with and without a snapshot running"

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
	lab/mirror.sh $(MIRROR_VERSIONS)

# promtool, unpacked from Debian's prometheus package into .cache/tools/bin.
tools:
	lab/tools.sh

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

unit: venv tools
	pytest -q tests/unit

# The alert rules load, and each one fires and stays quiet where its unit test says.
rules: tools
	.cache/tools/bin/promtool check rules roles/etcd_prometheus/files/etcd-alerts.yml
	.cache/tools/bin/promtool test rules tests/prometheus/etcd-alerts.test.yml

# The volumes scenario gets fresh loop devices (stand-ins for NVMe disks) for each run.
molecule: venv mirror image
	set -e; for s in $(MOLECULE_SCENARIOS); do \
	  if [ $$s = volumes ]; then \
	    lab/loopdevs.sh up; set -a; . .cache/loopdevs.env; set +a; \
	    molecule test -s $$s || { rc=$$?; lab/loopdevs.sh down; exit $$rc; }; \
	    lab/loopdevs.sh down; \
	  else molecule test -s $$s; fi; \
	done

test: lint unit rules molecule

bench: venv mirror hosts
	bench/provision.sh

bench-cross-az: venv mirror hosts
	bench/cross_az.sh

bench-backup: venv mirror hosts
	bench/backup.sh

# Developer shortcuts. The test suite itself runs through ./run tests.
PYTHON ?= .venv/bin/python

.PHONY: proto proto-check

# Regenerate src/libcontainerd/_api/{containerd,cgroups} from src/libcontainerd/_api/protos.
proto:
	$(PYTHON) scripts/gen_proto.py

# Fail (and name the files) if the committed modules are stale.
proto-check:
	$(PYTHON) scripts/gen_proto.py --check

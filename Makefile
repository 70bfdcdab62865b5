# The two commands of the README: `make train` and `make test`. Each sets up .venv first when
# it is missing or pyproject.toml changed (scripts/setup_env.sh: CPU torch when there is no GPU).
VENV ?= .venv
STAMP := $(VENV)/.designgym-installed

.PHONY: train test setup clean-venv

# The suite's recipe (search distillation) on the quick env, then its score on the env's 200-case test split.
RUN := quickstart-$(shell date +%Y%m%d-%H%M%S)

train: $(STAMP)
	$(VENV)/bin/designgym train --env designgym/Extrusion-v2 --algo distill --timesteps 30000 --run-name $(RUN)
	$(VENV)/bin/designgym score --agent runs/$(RUN)

# -n auto: one pytest worker per core (pytest-xdist); --durations: the slowest tests, to keep the suite short.
test: $(STAMP)
	$(VENV)/bin/python -m pytest -q -n auto --durations=15

setup: $(STAMP)

$(STAMP): pyproject.toml scripts/setup_env.sh
	bash scripts/setup_env.sh $(VENV)
	touch $(STAMP)

clean-venv:
	rm -rf $(VENV)
